"""Routes a player reads that no other test called (issue 10, item 6): the
day's universe with its previous closes, and the cursor pages of the ledger
and of the redemptions, walked to the end."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from support import bearer, open_session_for, service, signup

pytestmark = pytest.mark.usefixtures("calendar")


def walk(client: TestClient, path: str, token: str, limit: int) -> tuple[list[Any], int]:
    """Every item of a cursor-paged route, following next_cursor; and the pages read."""
    items: list[Any] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        r = client.get(path, params=params, headers=bearer(token))
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 20, "the cursor never ends"


def test_universe_today_lists_the_symbols_with_yesterdays_close(
    client: TestClient, db: psycopg.Connection
) -> None:
    r = client.get("/v1/universe/today")
    assert r.status_code == 404 and r.json()["code"] == "NO_SESSION"
    service(db, "select crypto.load_eod_price('2026-11-23', 'AAPL', 187.25, 'test')")
    service(db, "select crypto.set_universe('2026-11-24', array['MSFT', 'AAPL'])")
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    r = client.get("/v1/universe/today")  # anyone, signed in or not
    assert r.status_code == 200, r.text
    assert r.json() == {
        "trading_day": "2026-11-24",
        "previous_trading_day": "2026-11-23",
        "symbols": [
            {"symbol": "MSFT", "previous_close": None},
            {"symbol": "AAPL", "previous_close": 187.25},
        ],
    }
    token = signup(client, "universe@example.com")
    assert client.get("/v1/universe/today", headers=bearer(token)).json() == r.json()


def test_the_ledger_pages_newest_first_to_the_last_entry(
    client: TestClient, db: psycopg.Connection
) -> None:
    token = signup(client, "pages@example.com")
    for n in range(1, 6):
        service(db, "select crypto.adjust_points('pages@example.com', %s, 'gift', %s)", n, f"k{n}")
    items, pages = walk(client, "/v1/points/ledger", token, limit=2)
    assert [i["amount"] for i in items] == [5, 4, 3, 2, 1]  # each once, none skipped
    assert [i["balance_after"] for i in items] == [15, 10, 6, 3, 1]
    assert pages == 3
    # Exactly a page's worth: the cursor after it leads to an empty page, not an error.
    items, pages = walk(client, "/v1/points/ledger", token, limit=5)
    assert len(items) == 5 and pages == 2


def test_the_redemptions_page_newest_first_to_the_last_one(
    client: TestClient, db: psycopg.Connection
) -> None:
    token = signup(client, "redeems@example.com")
    service(db, "select crypto.adjust_points('redeems@example.com', 100, 'gift', 'g')")
    service(db, "select crypto.upsert_reward('PIN', 'A pin', 10, 10, true)")
    made = []
    for n in range(5):
        r = client.post(
            "/v1/rewards/PIN/redeem", headers={**bearer(token), "Idempotency-Key": f"r{n}"}
        )
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    other = signup(client, "someone-else@example.com")
    items, pages = walk(client, "/v1/rewards/redemptions", token, limit=2)
    assert [i["id"] for i in items] == sorted(made, reverse=True)
    assert pages == 3
    assert walk(client, "/v1/rewards/redemptions", other, limit=2) == ([], 1)
