"""Bad input never gives a 5xx: each answers problem+json with a stable code
and changes nothing."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from support import bearer, open_session_for, signup

pytestmark = pytest.mark.usefixtures("calendar")


def counts(db: psycopg.Connection) -> tuple[int, ...]:
    row = db.execute(
        "select (select count(*) from crypto.users), (select count(*) from crypto.predictions),"
        " (select count(*) from crypto.ledger_transfers), (select count(*) from crypto.user_daily_limits)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def assert_problem(r, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    assert "select" not in body["detail"].lower()  # no SQL leaks out


@pytest.fixture
def token(client: TestClient, db: psycopg.Connection) -> str:
    open_session_for(db, "2026-11-27", "2026-11-27T12:00:00+09:00")
    return signup(client, "player@example.com")


BAD_PREDICTIONS = [
    ("AAPL", b'{"choice": ', 422, "VALIDATION_FAILED"),
    ("AAPL", b'{"choice": "SIDEWAYS"}', 422, "VALIDATION_FAILED"),
    ("AAPL", b"{}", 422, "VALIDATION_FAILED"),
    ("AAPL", b'["UP"]', 422, "VALIDATION_FAILED"),
    ("ZZZZ", b'{"choice": "UP"}', 422, "SYMBOL_NOT_IN_UNIVERSE"),
    ("AA PL", b'{"choice": "UP"}', 422, "VALIDATION_FAILED"),
    ("'; drop table crypto.users; --", b'{"choice": "UP"}', 422, "VALIDATION_FAILED"),
    ("A" * 50, b'{"choice": "UP"}', 422, "VALIDATION_FAILED"),
]


@pytest.mark.parametrize(("symbol", "body", "status", "code"), BAD_PREDICTIONS)
def test_bad_prediction_is_refused_and_changes_nothing(
    client: TestClient,
    db: psycopg.Connection,
    token: str,
    symbol: str,
    body: bytes,
    status: int,
    code: str,
) -> None:
    before = counts(db)
    r = client.post(
        f"/v1/predictions/{symbol}",
        content=body,
        headers={**bearer(token), "content-type": "application/json"},
    )
    assert_problem(r, status, code)
    assert counts(db) == before


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFwcF9hZG1pbiJ9."},
    ],
)
def test_missing_or_garbage_token_is_401(
    client: TestClient, db: psycopg.Connection, token: str, headers: dict[str, str]
) -> None:
    before = counts(db)
    r = client.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=headers)
    assert_problem(r, 401, "INVALID_TOKEN")
    assert_problem(client.get("/v1/users/me", headers=headers), 401, "INVALID_TOKEN")
    assert counts(db) == before


def test_duplicate_signup_is_409(client: TestClient, db: psycopg.Connection, token: str) -> None:
    before = counts(db)
    r = client.post(
        "/v1/auth/signup", json={"email": "PLAYER@example.com", "password": "another password"}
    )
    assert_problem(r, 409, "EMAIL_TAKEN")
    assert counts(db) == before


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": "long enough pw"},
        {"email": "x@example.com", "password": "short"},
        {"email": "x@example.com"},
    ],
)
def test_invalid_signup_is_422(client: TestClient, db: psycopg.Connection, body: dict) -> None:
    before = counts(db)
    assert_problem(client.post("/v1/auth/signup", json=body), 422, "VALIDATION_FAILED")
    assert counts(db) == before


def test_wrong_password_and_unknown_email_are_the_same_401(client: TestClient, token: str) -> None:
    wrong = client.post(
        "/v1/auth/login", json={"email": "player@example.com", "password": "not my password"}
    )
    unknown = client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": "not my password"}
    )
    assert_problem(wrong, 401, "INVALID_CREDENTIALS")
    assert_problem(unknown, 401, "INVALID_CREDENTIALS")
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_game_rules_map_to_their_codes(
    client: TestClient, db: psycopg.Connection, token: str
) -> None:
    h = bearer(token)
    assert client.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=h).status_code == 201
    assert_problem(
        client.post("/v1/predictions/aapl", json={"choice": "DOWN"}, headers=h),
        409,
        "PREDICTION_EXISTS",
    )
    assert (
        client.post("/v1/predictions/MSFT", json={"choice": "DOWN"}, headers=h).status_code == 201
    )
    assert client.post("/v1/predictions/NVDA", json={"choice": "UP"}, headers=h).status_code == 201
    assert_problem(
        client.post("/v1/predictions/TSLA", json={"choice": "UP"}, headers=h),
        409,
        "DAILY_LIMIT_REACHED",
    )
    # Past the cutoff (23:25 KST on 27 Nov 2026, New York winter time).
    db.execute("set role oxp_operator")
    db.execute("select crypto.clock_set('2026-11-27T23:25:00+09:00')")
    db.execute("reset role")
    other = signup(client, "late@example.com")
    assert_problem(
        client.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=bearer(other)),
        409,
        "SESSION_CLOSED",
    )


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "NOT_FOUND")
    assert_problem(client.delete("/v1/session/today"), 405, "METHOD_NOT_ALLOWED")
    assert_problem(
        client.get("/v1/points/ledger?limit=1000", headers=bearer("x")), 401, "INVALID_TOKEN"
    )
