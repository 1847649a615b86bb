"""Predictions over HTTP: Idempotency-Key replays, listing, and public settlements."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from support import bearer, open_session_for, service, signup

pytestmark = pytest.mark.usefixtures("calendar")


@pytest.fixture
def token(client: TestClient, db: psycopg.Connection) -> str:
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    return signup(client, "keyed@example.com")


def test_a_retry_with_the_same_key_returns_the_first_response(
    client: TestClient, db: psycopg.Connection, token: str
) -> None:
    headers = {**bearer(token), "Idempotency-Key": "tap-1"}
    first = client.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=headers)
    again = client.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert db.execute("select count(*) from crypto.predictions").fetchone() == (1,)

    other = client.post("/v1/predictions/AAPL", json={"choice": "DOWN"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    too_long = client.post(
        "/v1/predictions/MSFT",
        json={"choice": "UP"},
        headers={**bearer(token), "Idempotency-Key": "k" * 201},
    )
    assert too_long.status_code == 422 and too_long.json()["code"] == "VALIDATION_FAILED"
    assert db.execute("select count(*) from crypto.predictions").fetchone() == (1,)


def test_listing_and_settlements_after_the_day(
    client: TestClient, db: psycopg.Connection, token: str
) -> None:
    h = bearer(token)
    assert client.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=h).status_code == 201
    assert client.post("/v1/predictions/MSFT", json={"choice": "UP"}, headers=h).status_code == 201
    listed = client.get("/v1/predictions", params={"trading_day": "2026-11-24"}, headers=h).json()
    assert [(i["symbol"], i["outcome"]) for i in listed["items"]] == [
        ("MSFT", "PENDING"),
        ("AAPL", "PENDING"),
    ]  # newest first
    # Without a day: the whole history, every item naming its day.
    history = client.get("/v1/predictions", headers=h).json()
    assert history["trading_day"] is None
    assert [i["trading_day"] for i in history["items"]] == ["2026-11-24", "2026-11-24"]

    service(db, "select crypto.clock_set('2026-11-25T07:00:00+09:00')")
    service(db, "select crypto.schedule_tick()")
    for day, aapl, msft in (("2026-11-23", "100", "100"), ("2026-11-24", "102", "99")):
        service(db, "select crypto.load_eod_price(%s, 'AAPL', %s, 'test')", day, aapl)
        service(db, "select crypto.load_eod_price(%s, 'MSFT', %s, 'test')", day, msft)
    service(db, "select crypto.settle_session('2026-11-24', true)")

    listed = client.get("/v1/predictions", params={"trading_day": "2026-11-24"}, headers=h).json()
    assert [(i["symbol"], i["outcome"], i["points"]) for i in listed["items"]] == [
        ("MSFT", "LOST", 0),
        ("AAPL", "WON", 100),
    ]
    public = client.get("/v1/settlements/2026-11-24")  # no token needed
    assert public.status_code == 200
    outcomes = {s["symbol"]: s["outcome"] for s in public.json()["symbols"]}
    assert outcomes["AAPL"] == "UP" and outcomes["MSFT"] == "DOWN" and outcomes["NVDA"] == "VOID"
    assert client.get("/v1/settlements/2026-11-26").json()["code"] == "NO_SESSION"
    assert client.get("/v1/settlements/yesterday").json()["code"] == "VALIDATION_FAILED"
