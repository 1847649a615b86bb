"""Our tokens (refresh rotation, logout, key rotation, the forgery matrix) and
admins with a second factor, over HTTP against a real database."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx
import jwt
import psycopg
import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from ox_cli.main import app as cli
from ox_sidecar.config import get_settings
from ox_sidecar.guards import HashGate
from ox_sidecar.problems import Problem
from ox_sidecar.tokens import KeyRing
from support import bearer, service, signup


@pytest.fixture
def client(live_client: httpx.Client) -> httpx.Client:
    """These tests talk to the API under uvicorn, over a real socket."""
    return live_client


PASSWORD = "correct horse battery"


def login(client: httpx.Client, email: str, **extra: str) -> httpx.Response:
    return client.post("/v1/auth/login", json={"email": email, "password": PASSWORD, **extra})


def test_refresh_rotates_and_a_reused_token_revokes_its_family(client: httpx.Client) -> None:
    first = client.post("/v1/auth/signup", json={"email": "r@example.com", "password": PASSWORD})
    refresh1 = first.json()["refresh_token"]
    r = client.post("/v1/auth/refresh", json={"refresh_token": refresh1})
    assert r.status_code == 200, r.text
    refresh2 = r.json()["refresh_token"]
    assert refresh2 != refresh1
    assert client.get("/v1/users/me", headers=bearer(r.json()["access_token"])).status_code == 200

    # The spent token again: a thief has a copy. Both it and its successor die.
    stolen = client.post("/v1/auth/refresh", json={"refresh_token": refresh1})
    assert stolen.status_code == 401 and stolen.json()["code"] == "INVALID_TOKEN"
    after = client.post("/v1/auth/refresh", json={"refresh_token": refresh2})
    assert after.status_code == 401

    # A new login is a new family; logout ends it.
    refresh3 = login(client, "r@example.com").json()["refresh_token"]
    assert client.post("/v1/auth/logout", json={"refresh_token": refresh3}).json() == {
        "logged_out": True
    }
    assert client.post("/v1/auth/refresh", json={"refresh_token": refresh3}).status_code == 401
    garbage = client.post("/v1/auth/refresh", json={"refresh_token": "x" * 43})
    assert garbage.status_code == 401 and garbage.json()["code"] == "INVALID_TOKEN"


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_forged_tokens_are_refused(client: httpx.Client) -> None:
    token = signup(client, "victim@example.com")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    settings = get_settings()
    ring = KeyRing.for_users(settings)
    public_pem = ring.current.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head, body, signature = token.split(".")
    other_key = KeyRing(None, None, Path(settings.jwt_private_key_file).parent / "other.pem")
    now = int(time.time())

    def signed(changes: dict[str, object], kid: str | None = header["kid"]) -> str:
        return jwt.encode(
            {**claims, **changes}, ring.current.private_key, algorithm="RS256", headers={"kid": kid}
        )

    forgeries = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{body}.",
        # The classic confusion: HMAC keyed with the public key we publish.
        "HS256 with our public key": f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': header['kid']})}"
        f".{body}.{_hs256(public_pem, _b64({'alg': 'HS256', 'typ': 'JWT', 'kid': header['kid']}), body)}",
        "unknown kid": signed({}, kid="not-our-key"),
        "another key, our kid": jwt.encode(
            claims, other_key.current.private_key, algorithm="RS256", headers={"kid": header["kid"]}
        ),
        "tampered claims": f"{head}.{_b64({**claims, 'sub': '00000000-0000-0000-0000-000000000000'})}"
        f".{signature}",
        "expired": signed({"iat": now - 3600, "exp": now - 60}),
        "wrong issuer": signed({"iss": "someone-else"}),
        "wrong audience": signed({"aud": "another-api"}),
        "a user key claiming the admin role": signed({"role": "app_admin"}),
        "no role": jwt.encode(
            {k: v for k, v in claims.items() if k != "role"},
            ring.current.private_key,
            algorithm="RS256",
            headers={"kid": header["kid"]},
        ),
    }
    for name, forged in forgeries.items():
        r = client.get("/v1/users/me", headers=bearer(forged))
        assert r.status_code == 401, name
        assert r.json()["code"] == "INVALID_TOKEN", name
    assert client.get("/v1/users/me", headers=bearer(token)).status_code == 200


def _hs256(key: bytes, head: str, body: str) -> str:
    import hashlib
    import hmac

    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_key_rotation_keeps_old_tokens_valid(client: httpx.Client) -> None:
    before = signup(client, "rotate@example.com")
    old_kid = jwt.get_unverified_header(before)["kid"]
    result = CliRunner().invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    time.sleep(KeyRing.RELOAD_SECONDS + 0.2)  # the API re-reads changed key files
    kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert old_kid in kids and len(kids) == 3  # users: new + previous; admins: one
    after = login(client, "rotate@example.com").json()["access_token"]
    assert jwt.get_unverified_header(after)["kid"] != old_kid
    for token in (before, after):
        assert client.get("/v1/users/me", headers=bearer(token)).status_code == 200


def test_admin_needs_a_second_factor(client: httpx.Client, db: psycopg.Connection) -> None:
    user_token = signup(client, "boss@example.com")
    result = CliRunner().invoke(cli, ["users", "create-admin", "boss@example.com"])
    assert result.exit_code == 0, result.output
    secret = result.output.split("TOTP secret (shown once): ")[1].split()[0]
    assert "totp_secret" not in json.dumps(
        client.get("/v1/users/me", headers=bearer(user_token)).json()
    )

    no_code = login(client, "boss@example.com")
    assert no_code.status_code == 401 and no_code.json()["code"] == "MFA_REQUIRED"
    wrong = login(
        client,
        "boss@example.com",
        otp="000000" if pyotp.TOTP(secret).now() != "000000" else "111111",
    )
    assert wrong.status_code == 401 and wrong.json()["code"] == "INVALID_CREDENTIALS"
    code = pyotp.TOTP(secret).now()
    ok = login(client, "boss@example.com", otp=code)
    assert ok.status_code == 200, ok.text
    admin_token = ok.json()["access_token"]
    assert jwt.decode(admin_token, options={"verify_signature": False})["role"] == "app_admin"
    admin_kid = jwt.get_unverified_header(admin_token)["kid"]
    assert admin_kid != jwt.get_unverified_header(user_token)["kid"]  # a key of its own
    replay = login(client, "boss@example.com", otp=code)
    assert replay.status_code == 401, "a one-time code works once"

    health = client.get("/admin/health", headers=bearer(admin_token))
    assert health.status_code == 200, health.text
    assert set(health.json()) >= {"database", "pg_cron", "workers", "batch_runs", "queue", "alerts"}
    someone = signup(client, "someone@example.com")
    forbidden = client.get("/admin/health", headers=bearer(someone))
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "FORBIDDEN"
    assert client.get("/admin/health").status_code == 401
    actions = [a for (a,) in db.execute("select action from crypto.audit_logs order by id")]
    assert "user.make_admin" in actions and "auth.admin_login" in actions


def _admin(client: httpx.Client, email: str) -> str:
    """A signed-up user made admin with `oxp users create-admin`; the TOTP secret."""
    signup(client, email, PASSWORD)
    result = CliRunner().invoke(cli, ["users", "create-admin", email])
    assert result.exit_code == 0, result.output
    return result.output.split("TOTP secret (shown once): ")[1].split()[0]


def _wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    valid = {totp.at(time.time() + drift) for drift in (-30, 0, 30)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def test_admin_codes_cannot_be_brute_forced(client: httpx.Client, db: psycopg.Connection) -> None:
    secret = _admin(client, "guarded@example.com")
    # No code: the same answer whether the password is right or wrong.
    right = login(client, "guarded@example.com")
    wrong = client.post(
        "/v1/auth/login", json={"email": "guarded@example.com", "password": "not the password"}
    )
    assert right.status_code == wrong.status_code == 401
    assert right.json() == wrong.json() and right.json()["code"] == "MFA_REQUIRED"
    # A user's wrong password says only that.
    signup(client, "plain@example.com")
    plain = client.post(
        "/v1/auth/login", json={"email": "plain@example.com", "password": "not the password"}
    )
    assert plain.status_code == 401 and plain.json()["code"] == "INVALID_CREDENTIALS"

    for _ in range(5):
        r = login(client, "guarded@example.com", otp=_wrong_code(secret))
        assert r.status_code == 401 and r.json()["code"] == "INVALID_CREDENTIALS"
    correct = login(client, "guarded@example.com", otp=pyotp.TOTP(secret).now())
    assert correct.status_code == 429 and correct.json()["code"] == "MFA_LOCKED"
    bad_password = client.post(
        "/v1/auth/login",
        json={"email": "guarded@example.com", "password": "not the password", "otp": "123456"},
    )
    assert bad_password.status_code == 429 and bad_password.json()["code"] == "MFA_LOCKED"
    assert db.execute(
        "select count(*) from crypto.audit_logs"
        " where action = 'auth.mfa_failed'"
        "  and subject = (select id::text from crypto.users where email = 'guarded@example.com')"
    ).fetchone() == (5,)
    assert db.execute(
        "select status::text, details ->> 'user_id' = u.id::text, details ? 'email'"
        " from crypto.system_health, crypto.users as u"
        " where check_name = 'mfa_lockout' and u.email = 'guarded@example.com'"
        " order by crypto.system_health.id desc limit 1"
    ).fetchone() == ("alert", True, False)
    alerts = db.execute("select count(*) from crypto.system_health where status = 'alert'")
    assert alerts.fetchone() == (1,)
    # The secret is stored encrypted; no plaintext copy.
    assert db.execute(
        "select totp_secret is null and totp_secret_enc is not null from crypto.users"
        " where email = 'guarded@example.com'"
    ).fetchone() == (True,)

    service(db, "select crypto.clock_set(now() + interval '16 minutes')")
    after = login(client, "guarded@example.com", otp=pyotp.TOTP(secret).now())
    assert after.status_code == 200, after.text


def test_ten_wrong_passwords_lock_the_email(client: httpx.Client) -> None:
    signup(client, "target@example.com")
    signup(client, "bystander@example.com")
    wrong = {"email": "target@example.com", "password": "guess number x"}
    for _ in range(10):
        r = client.post("/v1/auth/login", json=wrong)
        assert r.status_code == 401 and r.json()["code"] == "INVALID_CREDENTIALS"
    locked = login(client, "target@example.com")
    assert locked.status_code == 429 and locked.json()["code"] == "RATE_LIMITED"
    assert locked.headers["content-type"] == "application/problem+json"
    assert login(client, "bystander@example.com").status_code == 200


def test_request_bodies_are_capped(client: httpx.Client) -> None:
    big = client.post("/v1/auth/login", json={"email": "a@example.com", "password": "x" * 70_000})
    assert big.status_code == 413 and big.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert big.headers["content-type"] == "application/problem+json"
    # Streamed, with no Content-Length: cut off once it passes the cap.
    chunked = client.post(
        "/v1/auth/signup",
        content=iter([b'{"email": "' + b"a" * 40_000, b"b" * 40_000 + b'"}']),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413 and chunked.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert signup(client, "small@example.com")


def test_password_hashing_waits_for_a_slot() -> None:
    """At most `slots` hashes at once; one that cannot start in time is a 503."""

    async def scenario() -> None:
        gate = HashGate(slots=1, wait_seconds=0.2)
        busy = asyncio.create_task(gate.run(time.sleep, 1.0))
        await asyncio.sleep(0.05)
        with pytest.raises(Problem) as refused:
            await gate.run(time.sleep, 0)
        assert refused.value.entry.code == "UNAVAILABLE" and refused.value.entry.status == 503
        await busy
        assert await gate.run(lambda: 42) == 42

    asyncio.run(scenario())


def test_an_admin_session_needs_a_family_begun_with_the_code(
    client: httpx.Client, db: psycopg.Connection
) -> None:
    # A user's refresh token that survived a promotion (the race with make_admin).
    made = client.post("/v1/auth/signup", json={"email": "racer@example.com", "password": PASSWORD})
    secret = pyotp.random_base32()
    db.execute(
        "update crypto.users set role = 'admin', totp_secret = %s where email = 'racer@example.com'",
        (secret,),
    )
    raced = client.post("/v1/auth/refresh", json={"refresh_token": made.json()["refresh_token"]})
    assert raced.status_code == 401 and raced.json()["code"] == "INVALID_TOKEN"

    # Signed in with the code: an admin family, which refreshes into admin tokens for 12 hours.
    ok = login(client, "racer@example.com", otp=pyotp.TOTP(secret).now())
    assert ok.status_code == 200, ok.text
    again = client.post("/v1/auth/refresh", json={"refresh_token": ok.json()["refresh_token"]})
    assert again.status_code == 200, again.text
    claims = jwt.decode(again.json()["access_token"], options={"verify_signature": False})
    assert claims["role"] == "app_admin"
    service(db, "select crypto.clock_set(now() + interval '12 hours 1 second')")
    late = client.post("/v1/auth/refresh", json={"refresh_token": again.json()["refresh_token"]})
    assert late.status_code == 401 and late.json()["code"] == "INVALID_TOKEN"


def test_resending_a_link_without_a_mail_server_queues_nothing(
    client: httpx.Client, db: psycopg.Connection
) -> None:
    token = signup(client, "nomail@example.com")
    r = client.post("/v1/auth/verify-email/resend", headers=bearer(token))
    assert r.status_code == 503 and r.json()["code"] == "UNAVAILABLE", r.text
    assert db.execute(
        "select count(*) from crypto.jobs where kind = 'email.verify'"
    ).fetchone() == (0,)
