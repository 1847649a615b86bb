"""A process never runs against a database of another ENV (issue 9, item 9):
`oxp db migrate` without ENV does not turn production into development, and
the API, the worker and `oxp` refuse to start against it. Real processes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from support import OXP, free_port

SECRETS = {
    "JWT_PRIVATE_KEY": "a key is only checked for presence before start-up",
    "JWT_ADMIN_PRIVATE_KEY": "likewise",
    "TOTP_ENCRYPTION_KEY": "production-totp-key-of-32-characters-at-least",
}


def oxp(db_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`oxp` with only this database and `env` set: no ENV unless given."""
    clean = {k: v for k, v in os.environ.items() if k != "ENV" and not k.startswith("JWT_")}
    clean.update({"DATABASE_URL": db_url, "LOG_LEVEL": "WARNING", **(env or {})})
    return subprocess.run(
        [OXP, *args], env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def environment(db: psycopg.Connection) -> str:
    row = db.execute("select value #>> '{}' from crypto.settings where key = 'environment'")
    return str(row.fetchone()[0])  # type: ignore[index]


@pytest.fixture
def production(db: psycopg.Connection, db_url: str) -> str:
    done = oxp(db_url, "db", "migrate", env={"ENV": "production", **SECRETS})
    assert done.returncode == 0, done.stderr
    assert environment(db) == "production"
    return db_url


def test_migrate_without_env_does_not_turn_production_into_development(
    db: psycopg.Connection, production: str
) -> None:
    unset = oxp(production, "db", "migrate", "--json")
    assert unset.returncode != 0
    error = json.loads(unset.stdout)["error"]
    assert error["code"] == "ENVIRONMENT_MISMATCH"
    assert "ENV is unset" in error["detail"] and "ENV=production" in error["detail"]
    explicit = oxp(production, "db", "migrate", env={"ENV": "development"})
    assert explicit.returncode != 0 and "ENVIRONMENT_MISMATCH" in explicit.stderr
    assert "ENV=development" in explicit.stderr
    assert environment(db) == "production"
    # The way forward works: the same ENV as the database.
    again = oxp(production, "db", "migrate", env={"ENV": "production", **SECRETS})
    assert again.returncode == 0, again.stderr
    assert environment(db) == "production"


def test_the_api_the_worker_and_oxp_refuse_a_production_database_without_env(
    production: str, tmp_path: Path
) -> None:
    port = free_port()
    keys = {"JWT_PRIVATE_KEY_FILE": str(tmp_path / "jwt.pem")}
    serve = oxp(production, "serve", "--port", str(port), "--workers", "1", env=keys)
    assert serve.returncode != 0
    assert "ENVIRONMENT_MISMATCH" in serve.stderr and "ENV is unset" in serve.stderr
    worker = oxp(production, "worker")
    assert worker.returncode != 0 and "ENVIRONMENT_MISMATCH" in worker.stderr
    clock = oxp(production, "clock", "show", "--json")
    assert clock.returncode != 0
    assert json.loads(clock.stdout)["error"]["code"] == "ENVIRONMENT_MISMATCH"


def test_the_api_app_refuses_at_start_up_when_the_database_is_production(
    db: psycopg.Connection, production: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without `oxp serve`'s early check: the app itself (any ASGI server)."""
    from fastapi.testclient import TestClient

    from ox_sidecar.app import create_app
    from ox_sidecar.config import clear_settings
    from ox_sidecar.environment import EnvironmentMismatch

    monkeypatch.delenv("ENV", raising=False)
    monkeypatch.setenv("DATABASE_URL", production)
    monkeypatch.setenv("JWT_PRIVATE_KEY_FILE", str(tmp_path / "jwt.pem"))
    clear_settings()
    try:
        with pytest.raises(EnvironmentMismatch, match="ENV is unset"), TestClient(create_app()):
            pass
    finally:
        clear_settings()


def test_a_production_process_refuses_a_development_database(db_url: str) -> None:
    done = oxp(db_url, "clock", "show", env={"ENV": "production", **SECRETS})
    assert done.returncode != 0 and "ENVIRONMENT_MISMATCH" in done.stderr
    assert "migrate it with ENV=production first" in done.stderr


def rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_production_starts_with_real_settings_and_refuses_an_insecure_one(
    production: str,
) -> None:
    """Issue 10, item 6: `oxp serve` with ENV=production, its own keys and a
    real vendor answers /ready and publishes the key it was given; the same
    with a vendor over plain http does not start."""
    import httpx
    import jwt
    from cryptography.hazmat.primitives import serialization

    from support import running_api

    player_key = rsa_pem()
    settings = {
        "ENV": "production",
        "DATABASE_URL": production,
        "JWT_PRIVATE_KEY": player_key,
        "JWT_ADMIN_PRIVATE_KEY": rsa_pem(),
        "TOTP_ENCRYPTION_KEY": SECRETS["TOTP_ENCRYPTION_KEY"],
        "VENDOR_URL": "https://vendor.example/v1",
        "VENDOR_SECRET": "a vendor secret of 32 characters or more",
    }
    with running_api(env=settings) as base:  # returns once /ready answers 200
        assert httpx.get(f"{base}/ready").json()["status"] == "ready"
        published = {k["n"] for k in httpx.get(f"{base}/.well-known/jwks.json").json()["keys"]}
    public = serialization.load_pem_private_key(player_key.encode(), password=None).public_key()
    assert jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)["n"] in published

    insecure = oxp(
        production,
        "serve", "--port", str(free_port()), "--workers", "1",
        env={**settings, "VENDOR_URL": "http://vendor.example/v1"},
    )  # fmt: skip
    assert insecure.returncode != 0
    assert "VENDOR_URL must be https:// in production" in insecure.stderr


def test_the_migrate_step_needs_no_signing_key_other_commands_still_do(
    db: psycopg.Connection, db_url: str
) -> None:
    """Compose's migrate service has the owner's URL and the logins'
    passwords, no JWT or TOTP key: `oxp db migrate` and `oxp calendar sync`
    sign and decrypt nothing, so they run without them in production."""
    migrated = oxp(db_url, "db", "migrate", env={"ENV": "production"})
    assert migrated.returncode == 0, migrated.stderr
    assert environment(db) == "production"
    synced = oxp(
        db_url, "calendar", "sync", "--year", "2026", "--years", "1", env={"ENV": "production"}
    )
    assert synced.returncode == 0, synced.stderr
    # Nothing else is exempt: a command that may act on players still wants
    # production's settings whole.
    other = oxp(
        db_url,
        "calendar",
        "show",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-05",
        env={"ENV": "production"},
    )
    assert other.returncode != 0 and "JWT_PRIVATE_KEY" in other.stderr + other.stdout
