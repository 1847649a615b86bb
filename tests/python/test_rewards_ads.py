"""Rewards, ads and the dashboard over HTTP, and the worker's vendor step."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from ox_sidecar.worker import run_once
from support import bearer, open_session_for, service, signup

pytestmark = pytest.mark.usefixtures("calendar")


def grant(db: psycopg.Connection, email: str, points: int, key: str) -> None:
    result = service(
        db, "select crypto.adjust_points(%s, %s, 'test grant', %s)", email, points, key
    )
    assert "problem" not in result


@pytest.fixture
def user(client: TestClient, db: psycopg.Connection) -> dict[str, str]:
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    token = signup(client, "player@example.com")
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 300, 1)")
    service(db, "select crypto.upsert_reward('HAT', 'A hat', 100, 5)")
    with db.transaction():
        db.execute(
            "insert into crypto.ads (id, title, reward_kind, reward_points) values"
            " ('slot', 'One more prediction', 'SLOT', 0), ('pts', '20 points', 'POINTS', 20)"
        )
    return bearer(token)


def test_redeem_then_the_worker_issues(
    client: TestClient, db: psycopg.Connection, user: dict[str, str], db_url: str
) -> None:
    assert [r["sku"] for r in client.get("/v1/rewards").json()["items"]] == ["HAT", "MUG"]
    no_points = client.post("/v1/rewards/MUG/redeem", headers={**user, "Idempotency-Key": "r1"})
    assert no_points.status_code == 409 and no_points.json()["code"] == "INSUFFICIENT_POINTS"
    assert no_points.headers["content-type"] == "application/problem+json"

    grant(db, "player@example.com", 500, "g1")
    # The refusal is the key's answer: the same key still says no.
    again = client.post("/v1/rewards/MUG/redeem", headers={**user, "Idempotency-Key": "r1"})
    assert again.status_code == 409 and again.json()["code"] == "INSUFFICIENT_POINTS"

    first = client.post("/v1/rewards/MUG/redeem", headers={**user, "Idempotency-Key": "r2"})
    assert first.status_code == 201 and first.json()["status"] == "REQUESTED"
    replay = client.post("/v1/rewards/MUG/redeem", headers={**user, "Idempotency-Key": "r2"})
    assert replay.status_code == 201 and replay.json() == first.json()
    sold_out = client.post("/v1/rewards/MUG/redeem", headers={**user, "Idempotency-Key": "r3"})
    assert sold_out.status_code == 409 and sold_out.json()["code"] == "OUT_OF_STOCK"
    missing_key = client.post("/v1/rewards/HAT/redeem", headers=user)
    assert missing_key.status_code == 422 and missing_key.json()["code"] == "VALIDATION_FAILED"
    long_key = client.post("/v1/rewards/HAT/redeem", headers={**user, "Idempotency-Key": "k" * 151})
    assert long_key.status_code == 422 and long_key.json()["code"] == "VALIDATION_FAILED"
    assert client.get("/v1/points/balance", headers=user).json()["balance"] == 200

    with psycopg.connect(db_url, autocommit=True) as worker:
        worker.execute("set role oxp_service")
        assert run_once(worker)
    listed = client.get("/v1/rewards/redemptions", headers=user).json()["items"]
    assert [(r["sku"], r["status"], r["vendor_ref"]) for r in listed] == [
        ("MUG", "ISSUED", f"sim-{first.json()['id']}")
    ]
    assert service(db, "select count(*) from crypto.integrity_violations()") == 0


def test_a_vendor_refusal_refunds(
    client: TestClient, db: psycopg.Connection, user: dict[str, str], db_url: str
) -> None:
    grant(db, "player@example.com", 100, "g1")
    with db.transaction():
        db.execute(
            "update crypto.settings set value = '1' where key = 'rewards.vendor_failure_rate'"
        )
    r = client.post("/v1/rewards/HAT/redeem", headers={**user, "Idempotency-Key": "h1"})
    assert r.status_code == 201
    assert client.get("/v1/points/balance", headers=user).json()["balance"] == 0
    with psycopg.connect(db_url, autocommit=True) as worker:
        worker.execute("set role oxp_service")
        assert run_once(worker)
        assert not run_once(worker)  # done: nothing is retried
    item = client.get("/v1/rewards/redemptions", headers=user).json()["items"][0]
    assert item["status"] == "FAILED"
    assert client.get("/v1/points/balance", headers=user).json()["balance"] == 100
    assert service(db, "select reserved from crypto.rewards_inventory where sku = 'HAT'") == 0
    assert service(db, "select count(*) from crypto.integrity_violations()") == 0


def test_an_ad_click_records_an_impression_and_pays_nothing(
    client: TestClient, db: psycopg.Connection, user: dict[str, str]
) -> None:
    """What pays is the ad network's verified callback (test_ad_ssv.py)."""
    assert [a["id"] for a in client.get("/v1/ads").json()["items"]] == ["pts", "slot"]
    slot = client.post("/v1/ads/slot/click", headers={**user, "Idempotency-Key": "a1"})
    assert slot.status_code == 201 and slot.json()["reward_kind"] == "SLOT"
    for symbol in ("AAPL", "MSFT", "NVDA"):
        made = client.post(f"/v1/predictions/{symbol}", json={"choice": "UP"}, headers=user)
        assert made.status_code == 201, made.text
    over = client.post("/v1/predictions/TSLA", json={"choice": "UP"}, headers=user)
    assert over.status_code == 409 and over.json()["code"] == "DAILY_LIMIT_REACHED"

    key = "k" * 150  # the longest key still fits
    shown = client.post("/v1/ads/pts/click", headers={**user, "Idempotency-Key": key})
    assert shown.status_code == 201, shown.text
    ssv = shown.json()["ssv"]
    assert ssv["custom_data"] == shown.json()["impression_id"] and ssv["user_id"]
    again = client.post("/v1/ads/pts/click", headers={**user, "Idempotency-Key": key})
    assert again.status_code == 201 and again.json() == shown.json()
    unknown = client.post("/v1/ads/nope/click", headers={**user, "Idempotency-Key": "n1"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"
    assert client.get("/v1/points/balance", headers=user).json()["balance"] == 0
    assert client.get("/v1/points/ledger", headers=user).json()["items"] == []
    assert client.post("/v1/ads/pts/click", headers={"Idempotency-Key": "x"}).status_code == 401

    stats = client.get("/v1/users/stats", headers=user).json()
    assert (stats["balance"], stats["predictions"], stats["pending"]) == (0, 3, 3)
    assert stats["win_rate"] is None and stats["current_streak"] == 0
    assert client.get("/v1/users/stats").status_code == 401
