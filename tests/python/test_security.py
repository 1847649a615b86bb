"""One user never sees another's data; injection strings in every input
change nothing and never give a 5xx; no input raises a caller's role."""

from __future__ import annotations

import json

import httpx
import jwt
import psycopg
import pytest

from support import bearer, open_session_for, service, signup

pytestmark = pytest.mark.usefixtures("calendar")


@pytest.fixture
def client(live_client: httpx.Client) -> httpx.Client:
    """These tests talk to the API under uvicorn, over a real socket."""
    return live_client


INJECTIONS = [
    "' or '1'='1",
    "'; drop table crypto.users; --",
    '" or ""="',
    "1); select pg_sleep(3); --",
    "admin'--",
    "%27%20OR%201%3D1",
    "\\'; select crypto.ledger_transfer('x', 1, 2, 100, 'x'); --",
    "AAPL' union select password_hash from crypto.users --",
]


@pytest.fixture
def world(client: httpx.Client, db: psycopg.Connection) -> dict[str, dict[str, str]]:
    """Alice has predictions, points, a redemption and an ad reward; Bob has nothing."""
    with db.transaction():
        db.execute("update crypto.settings set value = '100000' where key like 'ratelimit.%'")
        db.execute(
            "insert into crypto.ads (id, title, reward_kind, reward_points)"
            " values ('pts', '20 points', 'POINTS', 20)"
        )
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 100, 5)")
    alice = bearer(signup(client, "alice@example.com"))
    bob = bearer(signup(client, "bob@example.com"))
    service(db, "select crypto.adjust_points('alice@example.com', 777, 'gift', 'a1')")
    assert (
        client.post("/v1/predictions/NVDA", json={"choice": "UP"}, headers=alice).status_code == 201
    )
    assert (
        client.post(
            "/v1/rewards/MUG/redeem", headers={**alice, "Idempotency-Key": "alice-mug"}
        ).status_code
        == 201
    )
    assert (
        client.post(
            "/v1/ads/pts/click", headers={**alice, "Idempotency-Key": "alice-ad"}
        ).status_code
        == 201
    )
    return {"alice": alice, "bob": bob}


def test_no_endpoint_shows_one_user_anothers_data(
    client: httpx.Client, world: dict[str, dict[str, str]], db: psycopg.Connection
) -> None:
    alice_id = db.execute(
        "select id::text from crypto.users where email = 'alice@example.com'"
    ).fetchone()[0]  # type: ignore[index]
    secrets = ["alice@example.com", alice_id, "777", "alice-mug", "alice-ad", "NVDA", "697"]
    for path in (
        "/v1/users/me",
        "/v1/users/stats",
        "/v1/predictions?trading_day=2026-11-24",
        "/v1/points/balance",
        "/v1/points/ledger",
        "/v1/rewards/redemptions",
    ):
        r = client.get(path, headers=world["bob"])
        assert r.status_code == 200, (path, r.text)
        assert not [s for s in secrets if s in r.text], (path, r.text)
        # ... while Alice does see hers, so the check above can fail.
        assert client.get(path, headers=world["alice"]).text != r.text, path
    # Bob replaying Alice's Idempotency-Key gets his own answer, not hers.
    r = client.post(
        "/v1/rewards/MUG/redeem", headers={**world["bob"], "Idempotency-Key": "alice-mug"}
    )
    assert r.status_code == 409 and r.json()["code"] == "INSUFFICIENT_POINTS"


def _counts(db: psycopg.Connection) -> tuple[object, ...]:
    row = db.execute(
        "select (select count(*) from crypto.users), (select count(*) from crypto.predictions),"
        " (select count(*) from crypto.ledger_transfers), (select count(*) from crypto.rewards_redemptions),"
        " (select count(*) from crypto.ad_unlocks), (select sum(balance) from crypto.ledger_accounts),"
        " (select count(*) from crypto.ad_impressions), (select count(*) from crypto.jobs)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_injection_strings_change_nothing_and_never_5xx(
    client: httpx.Client, world: dict[str, dict[str, str]], db: psycopg.Connection
) -> None:
    before = _counts(db)
    bob = world["bob"]
    for s in INJECTIONS:
        calls = [
            ("POST", f"/v1/predictions/{s}", {"choice": "UP"}, {}),
            ("POST", "/v1/predictions/AAPL", {"choice": s}, {}),
            ("GET", f"/v1/settlements/{s}", None, {}),
            ("GET", "/v1/predictions", None, {"trading_day": s}),
            ("GET", "/v1/points/ledger", None, {"cursor": s, "limit": s}),
            ("GET", "/v1/rewards/redemptions", None, {"cursor": s}),
            ("POST", f"/v1/rewards/{s}/redeem", None, {}),
            ("POST", f"/v1/ads/{s}/click", None, {}),
            ("POST", "/v1/auth/login", {"email": s, "password": s}, {}),
            ("POST", "/v1/auth/login", {"email": "alice@example.com", "password": s, "otp": s}, {}),
            ("POST", "/v1/auth/signup", {"email": s, "password": s + "long enough"}, {}),
            ("POST", "/v1/auth/refresh", {"refresh_token": s + "x" * 20}, {}),
            ("POST", "/v1/auth/logout", {"refresh_token": s + "x" * 20}, {}),
            ("POST", "/v1/auth/oauth/callback", {"code": s, "state": s + "x" * 32}, {}),
            ("GET", "/v1/auth/oauth/callback", None, {"code": s, "state": s + "x" * 32}),
        ]
        for method, path, body, params in calls:
            headers = {**bob, "Idempotency-Key": s}
            r = client.request(method, path, json=body, params=params, headers=headers)
            assert r.status_code < 500, (method, path, s, r.status_code, r.text)
            if r.status_code >= 400:
                assert r.headers["content-type"] == "application/problem+json", (path, s)
                assert "select" not in r.json()["detail"].lower(), (path, s, r.text)
    assert _counts(db) == before
    assert db.execute("select to_regclass('crypto.users') is not null").fetchone() == (True,)


BIGINT_OVER = str(2**63)  # one past bigint: reached SQL as numeric, a 500
BAD_INPUTS = [
    ("GET", "/v1/points/ledger", None, {"cursor": BIGINT_OVER}),
    ("GET", "/v1/rewards/redemptions", None, {"cursor": BIGINT_OVER}),
    ("GET", "/v1/points/ledger", None, {"cursor": "9" * 400}),
    ("GET", "/v1/points/ledger", None, {"cursor": "-1"}),
    ("GET", "/v1/points/ledger", None, {"limit": "-5"}),
    ("GET", "/v1/rewards/redemptions", None, {"limit": "1e400"}),
    ("GET", "/v1/points/ledger", None, {"cursor": "0x10"}),
    ("GET", "/v1/settlements/99999-12-31", None, {}),
    ("GET", "/v1/predictions", None, {"trading_day": "-1"}),
    # NUL cannot be stored in PostgreSQL text: the driver refused it, a 503.
    ("POST", "/v1/auth/login", {"email": "alice\u0000@example.com", "password": "whatever!"}, {}),
    ("POST", "/v1/auth/signup", {"email": "nul\u0000@example.com", "password": "long enough"}, {}),
    ("POST", "/v1/auth/oauth/callback", {"code": "c", "state": "s\u0000" + "x" * 40}, {}),
    ("POST", "/v1/predictions/AAPL", {"choice": "UP\u0000"}, {}),
    ("POST", "/v1/auth/login", {"email": 10**400, "password": 10**400}, {}),
    ("POST", "/v1/auth/login", {"email": ["a"], "password": {"x": 1}}, {}),
]


def test_bad_inputs_are_422_and_change_nothing(
    client: httpx.Client, world: dict[str, dict[str, str]], db: psycopg.Connection
) -> None:
    before = _counts(db)
    for method, path, body, params in BAD_INPUTS:
        content = None if body is None else json.dumps(body)
        r = client.request(
            method,
            path,
            content=content,
            params=params,
            headers={**world["bob"], "Content-Type": "application/json", "Idempotency-Key": "k"},
        )
        assert r.status_code == 422, (method, path, body, params, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "VALIDATION_FAILED"
    # Bodies that are not UTF-8, or not JSON at all.
    for raw in (b'{"email": "\xff\xfe@example.com", "password": "whatever!"}', b"\xc3\x28", b"{"):
        for path in ("/v1/auth/login", "/v1/auth/signup", "/v1/predictions/AAPL"):
            r = client.post(
                path, content=raw, headers={**world["bob"], "Content-Type": "application/json"}
            )
            assert r.status_code == 422, (path, raw, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
    assert _counts(db) == before


def test_one_megabyte_bodies_are_413_on_every_route(
    client: httpx.Client, world: dict[str, dict[str, str]], db: psycopg.Connection
) -> None:
    before = _counts(db)
    routes = [
        (method.upper(), path.replace("{", "").replace("}", ""))
        for path, item in client.get("/openapi.json").json()["paths"].items()
        for method in item
    ]
    assert len(routes) > 20 and ("POST", "/v1/auth/login") in routes
    megabyte = b'{"email": "' + b"a" * 1_048_576 + b'"}'
    for method, path in routes:
        r = client.request(
            method,
            path,
            content=megabyte,
            headers={**world["bob"], "Content-Type": "application/json", "Idempotency-Key": "k"},
        )
        assert r.status_code == 413, (method, path, r.status_code, r.text[:200])
        assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert _counts(db) == before


def test_no_input_raises_a_role(client: httpx.Client, db: psycopg.Connection) -> None:
    r = client.post(
        "/v1/auth/signup",
        json={"email": "climber@example.com", "password": "a good password", "role": "admin"},
    )
    assert r.status_code == 201
    token = r.json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["role"] == "app_user"
    assert db.execute(
        "select role::text from crypto.users where email = 'climber@example.com'"
    ).fetchone() == ("user",)
    h = bearer(token)
    assert client.get("/admin/health", headers=h).status_code == 403
    # Claims cannot be smuggled through the request either.
    smuggled = {**h, "X-Role": "app_admin", "Request-Jwt-Claims": json.dumps({"role": "app_admin"})}
    assert client.get("/admin/health", headers=smuggled).status_code == 403
    assert client.get("/v1/users/me", headers=h).json()["role"] == "user"
