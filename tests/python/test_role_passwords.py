"""The login roles' passwords for docker compose (issue 14, item 2):
`python -m ox_sidecar.role_passwords` in the migrate step, so no one runs
ALTER ROLE by hand. Real PostgreSQL, real SCRAM logins."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ox_sidecar import role_passwords
from ox_sidecar.role_passwords import PasswordError, scram_verifier

GOOD = "0123456789abcdef0123456789abcdef"


def test_verifier_matches_rfc7677_exchange() -> None:
    """The server's check of RFC 7677's example proof passes against our
    stored key, and its server signature is the one the RFC shows."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt=salt)
    head, keys = verifier.split("$", 1)[1].split("$")
    assert head == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    signature = hmac.new(stored_key, auth.encode(), hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    server_signature = hmac.new(server_key, auth.encode(), hashlib.sha256).digest()
    assert (
        base64.b64encode(server_signature).decode()
        == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("short", "shorter than 16"),
        ("p@ssword-with-at-sign", "URLs must escape"),
        ("pässwordpässwordpässword", "printable ASCII"),
    ],
)
def test_unfit_passwords_are_refused(value: str, why: str) -> None:
    with pytest.raises(PasswordError, match=why):
        role_passwords.wanted({"SERVICE_PASSWORD": GOOD, "AUTHENTICATOR_PASSWORD": value})


def _rolpassword(db: psycopg.Connection, role: str) -> str | None:
    row = db.execute("select rolpassword from pg_authid where rolname = %s", (role,)).fetchone()
    assert row is not None
    return row[0]


def _run(db_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ox_sidecar.role_passwords"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_migrate_step_sets_every_given_role_and_nothing_on_a_bad_one(
    db: psycopg.Connection, db_url: str
) -> None:
    db.execute("alter role auditor password null")
    db.execute("alter role oxp_operator password null")
    bad = _run(db_url, AUDITOR_PASSWORD=GOOD, OPERATOR_PASSWORD="too-short")
    assert bad.returncode == 2
    assert "OPERATOR_PASSWORD is shorter than 16" in bad.stderr
    assert _rolpassword(db, "auditor") is None, "one bad value changes no role"

    done = _run(db_url, AUDITOR_PASSWORD=GOOD, OPERATOR_PASSWORD=GOOD[::-1])
    assert done.returncode == 0, done.stderr
    assert "auditor, oxp_operator" in done.stdout
    for role in ("auditor", "oxp_operator"):
        stored = _rolpassword(db, role)
        assert stored is not None and stored.startswith("SCRAM-SHA-256$4096:")
        assert GOOD not in stored and GOOD[::-1] not in stored
    assert _rolpassword(db, "auditor") != _rolpassword(db, "oxp_operator")

    assert _run("", AUDITOR_PASSWORD=GOOD).returncode == 2, "the owner's URL is required"
    # Roles are the cluster's: leave them as the other tests expect.
    db.execute("alter role auditor password null")
    db.execute("alter role oxp_operator password null")


def test_a_role_logs_in_with_its_password_over_scram(db: psycopg.Connection, db_url: str) -> None:
    """The cluster trusts 127.0.0.1; for one probe role it asks for SCRAM,
    as compose's PostgreSQL does, and our verifier lets the right password
    in and keeps a wrong one out."""
    probe = "oxp_scram_probe"
    db.execute(f"drop role if exists {probe}")
    db.execute(f"create role {probe} login")
    hba = Path(db.execute("show hba_file").fetchone()[0])  # type: ignore[index]
    original = hba.read_text()
    hba.write_text(f"host all {probe} 127.0.0.1/32 scram-sha-256\n{original}")
    try:
        db.execute("select pg_reload_conf()")
        assert role_passwords.apply(db, {probe: GOOD}) == [probe]
        url = make_conninfo(db_url, user=probe, password=GOOD)
        wrong = make_conninfo(db_url, user=probe, password=GOOD + "x")
        deadline = time.monotonic() + 5
        while True:  # the reload is a signal: wait until it took effect
            try:
                psycopg.connect(wrong, connect_timeout=2).close()
            except psycopg.OperationalError as exc:
                assert "password authentication failed" in str(exc)
                break
            assert time.monotonic() < deadline, "pg_hba.conf reload not seen"
            time.sleep(0.1)
        with psycopg.connect(url, connect_timeout=2) as conn:
            assert conn.execute("select current_user").fetchone() == (probe,)
    finally:
        hba.write_text(original)
        db.execute("select pg_reload_conf()")
        db.execute(f"drop role if exists {probe}")
