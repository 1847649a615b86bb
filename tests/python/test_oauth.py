"""Google sign-in on real processes: the API under uvicorn, PostgreSQL, and a
local OpenID Connect provider (tests/oidc) standing in for Google."""

from __future__ import annotations

import email
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from oidc import OidcServer, follow_authorize, run_oidc_server
from ox_cli.main import app as cli
from ox_sidecar.config import clear_settings, get_settings
from ox_sidecar.worker import run_once
from support import bearer, free_port, running_api

CLIENT_ID = "oxp-test-client"


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[OidcServer]:
    with run_oidc_server(tmp_path) as server:
        yield server


class Inbox:
    """A local SMTP server (aiosmtpd) that keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def link_for(self, to: str) -> str:
        found = [m for m in self.messages if m["To"] == to]
        assert found, f"no mail to {to}"
        body = found[-1].get_payload(decode=True).decode()
        match = re.search(r"http://\S+/v1/auth/verify-email\?token=[A-Za-z0-9_\-]+", body)
        assert match, body
        return match.group(0)


@pytest.fixture
def smtp(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(controller.port))
    monkeypatch.setenv("SMTP_TLS", "none")
    clear_settings()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def api(env: None, idp: OidcServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    monkeypatch.setenv("GOOGLE_OIDC_ISSUER", idp.issuer)
    monkeypatch.setenv("GOOGLE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("GOOGLE_CLIENT_SECRET", "oxp-test-secret")
    monkeypatch.setenv("OAUTH_REDIRECT_URI", f"http://127.0.0.1:{port}/v1/auth/oauth/callback")
    assert os.environ["GOOGLE_OIDC_ISSUER"] == idp.issuer
    with running_api(port) as base:
        yield base


def start(http: httpx.Client) -> tuple[str, dict[str, str]]:
    """Our redirect to the provider, then the provider's back to our callback:
    the callback URL and its query (code, state)."""
    r = http.get("/v1/auth/oauth/google")
    assert r.status_code == 302, r.text
    sent = parse_qs(urlsplit(r.headers["location"]).query)
    assert sent["code_challenge_method"] == ["S256"] and sent["client_id"] == [CLIENT_ID]
    assert len(sent["state"][0]) >= 32 and len(sent["nonce"][0]) >= 32
    back = follow_authorize(r.headers["location"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    assert query["state"] == sent["state"][0]
    return urlsplit(back).path, query


def test_google_sign_in_creates_then_finds_the_user(
    api: str, idp: OidcServer, db: psycopg.Connection
) -> None:
    idp.set_claims(email="Google.User@example.com", sub="g-123")
    with httpx.Client(base_url=api) as http:
        path, query = start(http)
        r = http.get(path, params=query)
        assert r.status_code == 200, r.text
        tokens = r.json()
        assert set(tokens) >= {"access_token", "refresh_token", "expires_in"}
        me = http.get("/v1/users/me", headers=bearer(tokens["access_token"])).json()
        assert me["email"] == "google.user@example.com"

        # A replayed callback: the state was spent.
        replay = http.get(path, params=query)
        assert replay.status_code == 400 and replay.json()["code"] == "OAUTH_FAILED"

        # The app form of the callback, for the same Google account: the same user.
        _, query = start(http)
        again = http.post("/v1/auth/oauth/callback", json=query)
        assert again.status_code == 200, again.text
        me_again = http.get("/v1/users/me", headers=bearer(again.json()["access_token"])).json()
        assert me_again["id"] == me["id"]
    assert db.execute(
        "select count(*), min(google_sub) from crypto.users where email = 'google.user@example.com'"
    ).fetchone() == (1, "g-123")
    assert db.execute(
        "select count(*) from crypto.ledger_accounts as a join crypto.users as u on u.id = a.user_id"
        " where u.email = 'google.user@example.com'"
    ).fetchone() == (1,)


def test_a_verified_google_email_links_the_existing_account(api: str, idp: OidcServer) -> None:
    with httpx.Client(base_url=api) as http:
        made = http.post(
            "/v1/auth/signup", json={"email": "both@example.com", "password": "a good password"}
        )
        # The owner proved the email (here: an operator vouches for it).
        verified = CliRunner().invoke(cli, ["users", "verify", "BOTH@example.com"])
        assert verified.exit_code == 0, verified.output
        assert "both@example.com: email verified" in verified.output
        idp.set_claims(email="both@example.com", sub="g-both")
        path, query = start(http)
        r = http.get(path, params=query)
        assert r.status_code == 200, r.text
        me = http.get("/v1/users/me", headers=bearer(r.json()["access_token"])).json()
        assert me["id"] == made.json()["user"]["id"]
        # A verified account keeps its password and its sessions.
        login = {"email": "both@example.com", "password": "a good password"}
        assert http.post("/v1/auth/login", json=login).status_code == 200
        refresh = {"refresh_token": made.json()["refresh_token"]}
        assert http.post("/v1/auth/refresh", json=refresh).status_code == 200
    unknown = CliRunner().invoke(cli, ["users", "verify", "nobody@example.com"])
    assert unknown.exit_code == 1 and "NOT_FOUND" in unknown.output


def _worker(db: psycopg.Connection) -> psycopg.Connection:
    """The worker's connection (autocommit, the service role)."""
    conn = psycopg.connect(db.info.dsn, autocommit=True)
    conn.execute("set role oxp_service")
    return conn


def test_google_sign_in_locks_out_whoever_pre_registered_the_email(
    smtp: Inbox, api: str, idp: OidcServer, db: psycopg.Connection
) -> None:
    """Pre-hijacking: an attacker signs up with the victim's email first. The
    victim's Google sign-in takes the account over, and the attacker's
    password and refresh token stop working."""
    attacker = {"email": "victim@example.com", "password": "attacker's password"}
    with httpx.Client(base_url=api) as http, _worker(db) as worker:
        made = http.post("/v1/auth/signup", json=attacker)
        assert made.status_code == 201, made.text
        assert http.post("/v1/auth/login", json=attacker).status_code == 200
        attacker_refresh = made.json()["refresh_token"]
        attacker_access = bearer(made.json()["access_token"])
        assert http.get("/v1/users/me", headers=attacker_access).status_code == 200
        time.sleep(1.05)  # the cut-off is in whole seconds, like a token's iat
        # The verification mail goes to the victim's mailbox, not the attacker's.
        assert run_once(worker) is True
        assert [m["To"] for m in smtp.messages] == ["victim@example.com"]

        idp.set_claims(email="victim@example.com", sub="g-victim")
        path, query = start(http)
        victim = http.get(path, params=query)
        assert victim.status_code == 200, victim.text

        again = http.post("/v1/auth/login", json=attacker)
        assert again.status_code == 401 and again.json()["code"] == "INVALID_CREDENTIALS"
        stolen = http.post("/v1/auth/refresh", json={"refresh_token": attacker_refresh})
        assert stolen.status_code == 401 and stolen.json()["code"] == "INVALID_TOKEN"
        held = http.get("/v1/users/me", headers=attacker_access)
        assert held.status_code == 401 and held.json()["code"] == "INVALID_TOKEN"
        me = http.get("/v1/users/me", headers=bearer(victim.json()["access_token"]))
        assert me.json()["email"] == "victim@example.com"
        # The link the attacker hoped the victim would click is dead too.
        link = smtp.link_for("victim@example.com")
        dead = http.post(link.removeprefix(get_settings().public_base_url))
        assert dead.status_code == 400 and dead.json()["code"] == "EMAIL_LINK_INVALID"
        # The victim's next Google sign-in finds the same account.
        path, query = start(http)
        next_time = http.get(path, params=query)
        me_again = http.get("/v1/users/me", headers=bearer(next_time.json()["access_token"]))
        assert me_again.json()["id"] == me.json()["id"]
    assert db.execute(
        "select password_hash is null, google_sub from crypto.users where email = %s",
        ("victim@example.com",),
    ).fetchone() == (True, "g-victim")
    assert db.execute(
        "select count(*) from crypto.audit_logs where action = 'auth.google_reclaimed'"
    ).fetchone() == (1,)


def test_the_emailed_link_verifies_once(
    smtp: Inbox, api: str, idp: OidcServer, db: psycopg.Connection
) -> None:
    owner = {"email": "owner@example.com", "password": "owner's password"}
    with httpx.Client(base_url=api) as http, _worker(db) as worker:
        made = http.post("/v1/auth/signup", json=owner).json()
        assert run_once(worker) is True
        path = smtp.link_for("owner@example.com").removeprefix(get_settings().public_base_url)
        # Opening the link (as a mail scanner would) shows a form and spends nothing.
        page = http.get(path)
        assert page.status_code == 200 and "<form method=post" in page.text
        ok = http.post(path)
        assert ok.status_code == 200, ok.text
        assert ok.json()["email"] == "owner@example.com"
        used = http.post(path)
        assert used.status_code == 400 and used.json()["code"] == "EMAIL_LINK_INVALID"
        assert http.post("/v1/auth/verify-email?token=" + "A" * 43).status_code == 400
        assert http.post("/v1/auth/verify-email?token=bad%00").status_code == 422

        # Verified: Google links it and the password keeps working.
        idp.set_claims(email="owner@example.com", sub="g-owner")
        google_path, query = start(http)
        assert http.get(google_path, params=query).status_code == 200
        assert http.post("/v1/auth/login", json=owner).status_code == 200

        # Resending needs a signed-in user; a verified one gets no mail.
        assert http.post("/v1/auth/verify-email/resend").status_code == 401
        again = http.post("/v1/auth/verify-email/resend", headers=bearer(made["access_token"]))
        assert again.status_code == 202 and again.json()["queued"] is False


def test_a_failing_mail_server_neither_blocks_nor_fails_sign_up(
    env: None, idp: OidcServer, monkeypatch: pytest.MonkeyPatch, db: psycopg.Connection
) -> None:
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(free_port()))  # nobody listens
    monkeypatch.setenv("SMTP_TLS", "none")
    clear_settings()
    with running_api() as base, httpx.Client(base_url=base) as http, _worker(db) as worker:
        began = time.monotonic()
        r = http.post("/v1/auth/signup", json={"email": "m@example.com", "password": "p" * 12})
        assert r.status_code == 201 and time.monotonic() - began < 5
        assert run_once(worker) is True
    status, attempts, error = db.execute(
        "select status::text, attempts, last_error from crypto.jobs where kind = 'email.verify'"
    ).fetchone()
    assert (status, attempts) == ("queued", 1) and "Connection" in error  # retried later


def test_a_state_works_only_in_the_browser_that_began_it(
    api: str, idp: OidcServer, db: psycopg.Connection
) -> None:
    """Login CSRF and leaked callback URLs: another browser presenting the
    state (without our cookie, or with its own) is refused, and the state
    stays good for its own browser."""
    with httpx.Client(base_url=api) as victim, httpx.Client(base_url=api) as other:
        path, query = start(victim)
        assert victim.cookies.get("oxp_oauth")
        no_cookie = other.get(path, params=query)
        assert no_cookie.status_code == 400 and no_cookie.json()["code"] == "OAUTH_FAILED"
        start(other)  # the other browser has a cookie of its own flow
        wrong_cookie = other.post("/v1/auth/oauth/callback", json=query)
        assert wrong_cookie.status_code == 400 and wrong_cookie.json()["code"] == "OAUTH_FAILED"
        mine = victim.get(path, params=query)
        assert mine.status_code == 200, mine.text
    assert db.execute("select count(*) from crypto.users").fetchone() == (1,)


def test_bad_callbacks_are_refused(api: str, idp: OidcServer, db: psycopg.Connection) -> None:
    users_before = db.execute("select count(*) from crypto.users").fetchone()
    with httpx.Client(base_url=api) as http:
        # A state we never issued.
        path, query = start(http)
        forged = http.get(path, params={**query, "state": "f" * 43})
        assert forged.status_code == 400 and forged.json()["code"] == "OAUTH_FAILED"

        # An ID token whose nonce is not the one we sent.
        idp.set_claims(nonce="not-the-nonce-we-sent")
        path, query = start(http)
        wrong_nonce = http.get(path, params=query)
        assert wrong_nonce.status_code == 400 and wrong_nonce.json()["code"] == "OAUTH_FAILED"

        # An email Google has not verified.
        idp.set_claims(email="unverified@example.com", email_verified=False)
        path, query = start(http)
        unverified = http.get(path, params=query)
        assert unverified.status_code == 403
        assert unverified.json()["code"] == "EMAIL_NOT_VERIFIED"

        # A token for another client (audience).
        idp.set_claims(aud="someone-elses-client")
        path, query = start(http)
        other_aud = http.get(path, params=query)
        assert other_aud.status_code == 400 and other_aud.json()["code"] == "OAUTH_FAILED"

        # The provider refuses a code (here: one it never issued).
        idp.reset_claims()
        path, query = start(http)
        bad_code = http.get(path, params={**query, "code": "made-up"})
        assert bad_code.status_code == 400 and bad_code.json()["code"] == "OAUTH_FAILED"

        denied = http.get(path, params={"error": "access_denied"})
        assert denied.status_code == 400
        for r in (forged, wrong_nonce, unverified, other_aud, bad_code, denied):
            assert r.headers["content-type"] == "application/problem+json"
    assert db.execute("select count(*) from crypto.users").fetchone() == users_before
