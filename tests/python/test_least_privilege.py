"""Least privilege between processes (issue 9, item 5): the API's two logins,
the per-request statement timeout, the worker without signing keys."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ox_sidecar.config import Settings, WorkerSettings, clear_settings, get_settings
from support import running_api


def as_login(db_url: str, user: str) -> str:
    parts = conninfo_to_dict(db_url)
    parts["user"] = user
    return make_conninfo(**parts)


def test_authenticator_cannot_become_app_admin(db_url: str) -> None:
    with psycopg.connect(as_login(db_url, "authenticator"), autocommit=True) as conn:
        for role in ("anon", "app_user", "auth_service"):
            conn.execute(f"set role {role}")
            conn.execute("reset role")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("set role app_admin")
    with psycopg.connect(as_login(db_url, "admin_authenticator"), autocommit=True) as conn:
        conn.execute("set role app_admin")
        conn.execute("reset role")
        for role in ("app_user", "anon", "auth_service", "oxp_service"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"set role {role}")


def test_admin_routes_use_their_own_login(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default admin URL is the owner's with admin_authenticator; one
    can be given (ADMIN_API_DATABASE_URL)."""
    assert conninfo_to_dict(get_settings().admin_api_url)["user"] == "admin_authenticator"
    assert conninfo_to_dict(get_settings().api_url)["user"] == "authenticator"
    monkeypatch.setenv("ADMIN_API_DATABASE_URL", "postgresql://admin_authenticator:s@db/oxp")
    clear_settings()
    assert get_settings().admin_api_url == "postgresql://admin_authenticator:s@db/oxp"


def test_a_lock_blocked_request_answers_503_timeout(
    env: None, db: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request waiting on a row lock ends at the request's statement
    timeout (set in its transaction: SET ROLE ignores the role's own) with a
    problem, and changes nothing."""
    monkeypatch.setenv("USER_STATEMENT_TIMEOUT_MS", "300")
    with running_api() as base, httpx.Client(base_url=base, timeout=30) as api:
        signed = api.post(
            "/v1/auth/signup",
            json={"email": "slow@example.com", "password": "correct horse battery"},
        )
        assert signed.status_code == 201, signed.text
        refresh = signed.json()["refresh_token"]
        holder = psycopg.connect(db_url)
        try:
            holder.execute(
                "select 1 from crypto.refresh_tokens as t join crypto.users as u on u.id = t.user_id"
                " where u.email = 'slow@example.com' for update of t"
            )
            started = time.monotonic()
            blocked = api.post("/v1/auth/logout", json={"refresh_token": refresh})
            waited = time.monotonic() - started
        finally:
            holder.rollback()
            holder.close()
        assert blocked.status_code == 503, blocked.text
        assert blocked.headers["content-type"].startswith("application/problem+json")
        assert blocked.json()["code"] == "TIMEOUT"
        assert waited < 5
        assert db.execute(
            "select count(*) from crypto.refresh_tokens where revoked_at is not null"
        ).fetchone() == (0,)
        # Once the lock is gone the same request goes through.
        assert api.post("/v1/auth/logout", json={"refresh_token": refresh}).status_code == 200


def test_the_worker_keeps_no_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """In production the API refuses to start without its keys; the worker
    needs none and drops any it is given."""
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("WORKER_DATABASE_URL", "postgresql://oxp_service@db/oxp")
    for name in ("JWT_PRIVATE_KEY", "JWT_ADMIN_PRIVATE_KEY", "TOTP_ENCRYPTION_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError):
        Settings()
    worker = WorkerSettings()
    assert worker.worker_url == "postgresql://oxp_service@db/oxp"
    monkeypatch.setenv("JWT_PRIVATE_KEY", "a private key")
    monkeypatch.setenv("JWT_ADMIN_PRIVATE_KEY", "another")
    monkeypatch.setenv("TOTP_ENCRYPTION_KEY", "k" * 32)
    worker = WorkerSettings()
    assert worker.jwt_private_key is None
    assert worker.jwt_admin_private_key is None
    assert worker.totp_encryption_key is None
    monkeypatch.delenv("WORKER_DATABASE_URL")
    with pytest.raises(ValueError):
        WorkerSettings()
