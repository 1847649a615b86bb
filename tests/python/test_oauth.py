"""Google sign-in on real processes: the API under uvicorn, PostgreSQL, and a
local OpenID Connect provider (tests/oidc) standing in for Google."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from oidc import OidcServer, follow_authorize, run_oidc_server
from support import bearer, free_port, running_api

CLIENT_ID = "oxp-test-client"


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[OidcServer]:
    with run_oidc_server(tmp_path) as server:
        yield server


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
        idp.set_claims(email="both@example.com", sub="g-both")
        path, query = start(http)
        r = http.get(path, params=query)
        assert r.status_code == 200, r.text
        me = http.get("/v1/users/me", headers=bearer(r.json()["access_token"])).json()
        assert me["id"] == made.json()["user"]["id"]


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
