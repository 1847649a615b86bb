"""The admin HTTP API (issue 11, item 1): who may not (every admin route),
and what each change does, against the app and a real database."""

from __future__ import annotations

import re

import psycopg
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from support import admin_token, bearer, open_session_for, service, signup

pytestmark = pytest.mark.usefixtures("calendar")


def admin_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every admin route the app declares, path parameters filled in."""
    found = []
    # The routers' routes as the app serves them (FastAPI includes a router
    # as one entry of app.routes).
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route, full = context.original_route, context.path or ""
        if isinstance(route, APIRoute) and (
            full.startswith("/admin") or full.startswith("/v1/metrics")
        ):
            path = re.sub(r"\{user_id\}", "00000000-0000-0000-0000-000000000000", full)
            path = re.sub(r"\{report\}", "daily", path)
            path = re.sub(r"\{[a-z_]+\}", "x", path)
            found += [(method, path) for method in route.methods]
    return found


def test_every_admin_route_refuses_strangers_and_players_before_reading_input(
    client: TestClient,
) -> None:
    player = bearer(signup(client, "nosy@example.com"))
    routes = admin_routes(client)
    assert len(routes) >= 18, routes
    for method, path in routes:
        # A body that would be invalid: the refusal must come first.
        anon = client.request(method, path, json={"bogus": True})
        assert anon.status_code == 401 and anon.json()["code"] == "INVALID_TOKEN", (path, anon.text)
        user = client.request(method, path, json={"bogus": True}, headers=player)
        assert user.status_code == 403 and user.json()["code"] == "FORBIDDEN", (path, user.text)


def test_an_admin_runs_the_game_from_the_api(client: TestClient, db: psycopg.Connection) -> None:
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    boss = bearer(admin_token(client, "boss@example.com"))
    player_token = signup(client, "pat@example.com")
    pat = db.execute(
        "select id::text from crypto.users where email = 'pat@example.com'"
    ).fetchone()[0]  # type: ignore[index]
    boss_id = db.execute(
        "select id::text from crypto.users where email = 'boss@example.com'"
    ).fetchone()[0]  # type: ignore[index]

    dash = client.get("/admin/dashboard", headers=boss).json()
    assert "session" in dash, dash
    assert dash["session"]["trading_day"] == "2026-11-24" and dash["session"]["phase"] == "OPEN"

    # Points: the key makes a retry harmless; audited under the admin's id.
    body = {"user_id": pat, "amount": 250, "reason": "goodwill for an outage"}
    first = client.post(
        "/admin/users/adjust-points", json=body, headers={**boss, "Idempotency-Key": "a1"}
    )
    again = client.post(
        "/admin/users/adjust-points", json=body, headers={**boss, "Idempotency-Key": "a1"}
    )
    assert first.status_code == 200 and first.json() == again.json()
    assert client.get("/v1/points/balance", headers=bearer(player_token)).json()["balance"] == 250
    missing_key = client.post("/admin/users/adjust-points", json=body, headers=boss)
    assert missing_key.status_code == 422
    # Exactly one of email and user_id, as /openapi.json says (oneOf).
    for who in ({"email": "pat@example.com", "user_id": pat}, {}):
        both = {"amount": 5, "reason": "goodwill for an outage", **who}
        r = client.post(
            "/admin/users/adjust-points", json=both, headers={**boss, "Idempotency-Key": "a2"}
        )
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_FAILED"), r.text
    schema = client.get("/openapi.json").json()["components"]["schemas"]["AdjustIn"]
    assert schema["oneOf"] == [{"required": ["email"]}, {"required": ["user_id"]}]
    page = client.get("/admin/audit", params={"action": "points.adjust"}, headers=boss).json()
    assert [(i["actor"], i["details"]["amount"]) for i in page["items"]] == [
        (f"user:{boss_id}", 250)
    ]

    # A reason is 3 characters beyond the spaces around it (SQL trims them).
    blank = client.post(f"/admin/users/{pat}/disable", json={"reason": "  ab  "}, headers=boss)
    assert (blank.status_code, blank.json()["code"]) == (422, "VALIDATION_FAILED"), blank.text
    assert client.get("/v1/points/balance", headers=bearer(player_token)).status_code == 200

    # Disabled: refused at once; enabled: back.
    r = client.post(f"/admin/users/{pat}/disable", json={"reason": "chargeback"}, headers=boss)
    assert r.status_code == 200, r.text
    gone = client.get("/v1/points/balance", headers=bearer(player_token))
    assert gone.status_code == 401
    login = client.post(
        "/v1/auth/login", json={"email": "pat@example.com", "password": "correct horse battery"}
    )
    assert login.status_code == 401
    assert (
        client.post(
            f"/admin/users/{pat}/enable", json={"reason": "cleared"}, headers=boss
        ).status_code
        == 200
    )
    login = client.post(
        "/v1/auth/login", json={"email": "pat@example.com", "password": "correct horse battery"}
    )
    assert login.status_code == 200

    # Settings: all or none.
    before = client.get("/admin/settings", headers=boss).json()
    bad = client.patch(
        "/admin/settings", json={"points.per_win": 150, "predictions.base_limit": 0}, headers=boss
    )
    assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_FAILED"
    assert client.get("/admin/settings", headers=boss).json() == before
    good = client.patch("/admin/settings", json={"points.per_win": 150}, headers=boss)
    assert good.status_code == 200, good.text
    assert db.execute(
        "select value::text from crypto.settings where key = 'points.per_win'"
    ).fetchone() == ("150",)

    # Inventory, universe, ads, operations.
    made = client.post(
        "/admin/rewards/inventory",
        json={"sku": "MUG", "name": "A mug", "cost_points": 300, "stock": 5},
        headers=boss,
    )
    assert made.status_code == 200 and made.json()["stock"] == 5
    restock = client.post("/admin/rewards/inventory", json={"sku": "MUG", "stock": 9}, headers=boss)
    assert restock.json()["stock"] == 9 and restock.json()["cost_points"] == 300
    typo = client.post(
        "/admin/universe/upsert",
        json={"trading_day": "2026-11-25", "symbols": ["AAPL", "APPL"]},
        headers=boss,
    )
    assert typo.status_code == 422 and typo.json()["code"] == "UNKNOWN_SYMBOL"
    ad = client.post(
        "/admin/ads",
        json={"id": "promo", "title": "Promo", "reward_kind": "POINTS", "reward_points": 20},
        headers=boss,
    )
    assert ad.status_code == 201
    off = client.patch("/admin/ads/promo", json={"active": False}, headers=boss)
    assert off.json()["active"] is False and off.json()["reward_points"] == 20
    early = client.post("/admin/eod/trigger", json={"trading_day": "2026-11-24"}, headers=boss)
    assert early.status_code == 409 and early.json()["code"] == "MARKET_NOT_CLOSED"
    check = client.post("/admin/maintenance/integrity-check", headers=boss)
    assert check.status_code == 200 and check.json()["violations"] == 0
    assert check.json()["audit_chain"]["ok"] is True
    ran = client.post("/admin/batches/metrics-rollup/run", headers=boss)
    assert ran.status_code == 200 and ran.json()["job"] == "metrics-rollup"
    assert client.post("/admin/batches/format-disk/run", headers=boss).status_code == 422
    daily = client.get(
        "/v1/metrics/daily", params={"from": "2026-11-24", "to": "2026-11-24"}, headers=boss
    )
    assert daily.status_code == 200 and daily.json()["items"][0]["trading_day"] == "2026-11-24"
    points = client.get(
        "/v1/metrics/points", params={"from": "2026-11-24", "to": "2026-11-24"}, headers=boss
    )
    assert set(points.json()["items"][0]) == {
        "trading_day",
        "points_issued",
        "points_spent",
        "points_outstanding",
        "redemptions",
        "ad_clicks",
        "ad_rewards",
    }
    assert client.get("/admin/batches", headers=boss).json()[0]["job"]


def test_an_admin_resolves_a_redemption_the_vendor_answered_out_of_band(
    client: TestClient, db: psycopg.Connection
) -> None:
    boss = bearer(admin_token(client, "boss@example.com"))
    player = bearer(signup(client, "vera@example.com"))
    service(db, "select crypto.adjust_points('vera@example.com', 500, 'start', 'start-vera')")
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 300, 2)")
    made = client.post("/v1/rewards/MUG/redeem", headers={**player, "Idempotency-Key": "r1"})
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    service(db, "select crypto.redemption_unknown(%s, 'read timeout')", rid)
    balance = "select balance from crypto.ledger_accounts a join crypto.users u on u.id = a.user_id where u.email = 'vera@example.com'"
    assert db.execute(balance).fetchone() == (200,)

    bad = client.post(
        f"/admin/redemptions/{rid}/resolve", json={"status": "LOST", "reason": "x"}, headers=boss
    )
    assert bad.status_code == 422
    # ISSUED with the vendor's reference, FAILED without one (the schema's oneOf).
    for wrong in ({"status": "ISSUED"}, {"status": "FAILED", "vendor_ref": "VND-1"}):
        r = client.post(
            f"/admin/redemptions/{rid}/resolve",
            json={**wrong, "reason": "out of band"},
            headers=boss,
        )
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_FAILED"), r.text
    body = {"status": "FAILED", "reason": "the vendor says it never issued"}
    first = client.post(f"/admin/redemptions/{rid}/resolve", json=body, headers=boss)
    again = client.post(f"/admin/redemptions/{rid}/resolve", json=body, headers=boss)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "FAILED" and again.json() == first.json()
    assert db.execute(balance).fetchone() == (500,), "refunded exactly once"
    assert db.execute(
        "select reserved from crypto.rewards_inventory where sku = 'MUG'"
    ).fetchone() == (0,)
