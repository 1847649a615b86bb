"""The login roles' passwords, for a deployment whose database checks them
(docker compose's PostgreSQL asks for SCRAM over the network; `make run`
and the tests trust 127.0.0.1 and need none).

The compose `migrate` step runs `python -m ox_sidecar.role_passwords`
after `oxp db migrate` (which creates the roles), as the owner: every
`*_PASSWORD` variable of ROLES that is set becomes that role's password, so
no one runs ALTER ROLE by hand, and changing one in `.env` and running
`docker compose up` again rotates it. The SCRAM-SHA-256 verifier is computed
here: the password itself never reaches the server, its logs or
pg_stat_statements. One transaction: a bad value changes no role."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sys
from collections.abc import Mapping

import psycopg
from psycopg import sql

# Environment variable -> login role. Only these roles, never one named by input.
ROLES: dict[str, str] = {
    "AUTHENTICATOR_PASSWORD": "authenticator",
    "ADMIN_AUTHENTICATOR_PASSWORD": "admin_authenticator",
    "SERVICE_PASSWORD": "oxp_service",
    "OPERATOR_PASSWORD": "oxp_operator",
    "AUDITOR_PASSWORD": "auditor",
    # The compose replica's streaming login (sql/0035).
    "REPLICATION_PASSWORD": "oxp_replicator",
}
MIN_LENGTH = 16
ITERATIONS = 4096  # PostgreSQL's scram_iterations default


class PasswordError(ValueError):
    """A password we refuse to set."""


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677).
    Printable ASCII only: SASLprep leaves it as is, so the client's and the
    server's normalisation cannot differ."""
    if not password.isascii() or not password.isprintable():
        raise PasswordError("passwords are printable ASCII (e.g. `openssl rand -hex 32`)")
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def wanted(environ: Mapping[str, str]) -> dict[str, str]:
    """role -> password for every variable of ROLES that is set; refuses the
    whole set if any one is unfit."""
    out: dict[str, str] = {}
    for var, role in ROLES.items():
        value = environ.get(var)
        if value is None or value == "":
            continue
        if not value.isascii() or not value.isprintable():
            raise PasswordError(f"{var} is not printable ASCII; use hex")
        if len(value) < MIN_LENGTH:
            raise PasswordError(f"{var} is shorter than {MIN_LENGTH} characters")
        if any(c in value for c in "@:/?#%[] "):
            # It is also a part of the services' postgresql:// URLs.
            raise PasswordError(f"{var} has a character that URLs must escape; use hex")
        out[role] = value
    return out


def apply(conn: psycopg.Connection, passwords: Mapping[str, str]) -> list[str]:
    """Sets each role's password in one transaction; returns the roles."""
    with conn.transaction():
        for role, password in passwords.items():
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
            if not exists:
                raise PasswordError(f"role {role} does not exist: run `oxp db migrate` first")
            conn.execute(
                sql.SQL("alter role {} password {}").format(
                    sql.Identifier(role), sql.Literal(scram_verifier(password))
                )
            )
    return sorted(passwords)


def main(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    url = env.get("DATABASE_URL")
    if not url:
        print("role_passwords: DATABASE_URL (the owner's) is required", file=sys.stderr)
        return 2
    try:
        passwords = wanted(env)
        with psycopg.connect(url, autocommit=True) as conn:
            done = apply(conn, passwords)
    except PasswordError as exc:
        print(f"role_passwords: {exc}; no password changed", file=sys.stderr)
        return 2
    print(f"role_passwords: set for {', '.join(done) or 'no role'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
