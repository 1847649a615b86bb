"""Nicknames and the leaderboard over HTTP: who may set a nickname, the
refusals by code, and a public board that shows nicknames only."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from support import bearer, open_session_for, service, signup


def test_nickname_rules_and_who_may_set_one(client: TestClient, db: psycopg.Connection) -> None:
    anon = client.post("/v1/users/me/nickname", json={"nickname": "Ghost"})
    assert anon.status_code == 401 and anon.json()["code"] == "INVALID_TOKEN"

    ann = bearer(signup(client, "ann@example.com"))
    bob = bearer(signup(client, "bob@example.com"))
    r = client.post("/v1/users/me/nickname", json={"nickname": " Ann "}, headers=ann)
    assert r.status_code == 200 and r.json() == {"nickname": "Ann"}
    assert client.get("/v1/users/me", headers=ann).json()["nickname"] == "Ann"

    taken = client.post("/v1/users/me/nickname", json={"nickname": "ANN"}, headers=bob)
    assert taken.status_code == 409
    assert taken.headers["content-type"] == "application/problem+json"
    assert taken.json()["code"] == "NICKNAME_TAKEN"
    for bad in ("x", "a" * 21, "bob@example.com"):
        r = client.post("/v1/users/me/nickname", json={"nickname": bad}, headers=bob)
        assert r.status_code == 422 and r.json()["code"] == "VALIDATION_FAILED", bad
    assert db.execute("select nickname from crypto.users order by email").fetchall() == [
        ("Ann",),
        (None,),
    ]

    # null gives the name up; then Bob may take it.
    assert client.post("/v1/users/me/nickname", json={"nickname": None}, headers=ann).json() == {
        "nickname": None
    }
    r = client.post("/v1/users/me/nickname", json={"nickname": "ann"}, headers=bob)
    assert r.status_code == 200


def test_the_board_is_public_and_checks_its_input(client: TestClient) -> None:
    r = client.get("/v1/leaderboard")
    assert r.status_code == 200
    assert r.json()["period"] == "week" and r.json()["items"] == []
    assert client.get("/v1/leaderboard?period=month").json()["period"] == "month"
    assert client.get("/v1/leaderboard?period=year").json()["code"] == "VALIDATION_FAILED"
    assert client.get("/v1/leaderboard?limit=101").status_code == 422
    assert client.get("/v1/leaderboard?cursor=-1").status_code == 422


def settle_a_day(client: TestClient, db: psycopg.Connection) -> tuple[dict[str, str], ...]:
    """24 Nov 2026: Ann predicts AAPL UP (won), MSFT UP (lost), NVDA DOWN
    (VOID); Bob AAPL UP (won). Settled, then the rollup pg_cron runs."""
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    players = []
    for email, name, picks in (
        ("ann@example.com", "Ann", (("AAPL", "UP"), ("MSFT", "UP"), ("NVDA", "DOWN"))),
        ("bob@example.com", "Bob", (("AAPL", "UP"),)),
    ):
        headers = bearer(signup(client, email))
        assert client.post("/v1/users/me/nickname", json={"nickname": name}, headers=headers)
        for symbol, choice in picks:
            made = client.post(
                f"/v1/predictions/{symbol}", json={"choice": choice}, headers=headers
            )
            assert made.status_code == 201, made.text
        players.append(headers)
    with db.transaction():
        db.execute("select crypto.clock_set('2026-11-25T07:00:00+09:00')")
        db.execute("select crypto.close_session('2026-11-24')")
        for day, symbol, close in (
            ("2026-11-23", "AAPL", 100),
            ("2026-11-24", "AAPL", 101),
            ("2026-11-23", "MSFT", 100),
            ("2026-11-24", "MSFT", 99),
            ("2026-11-23", "NVDA", 100),
            ("2026-11-24", "NVDA", 100),
        ):
            db.execute("select crypto.load_eod_price(%s, %s, %s, 'test')", (day, symbol, close))
        db.execute("select crypto.settle_session('2026-11-24', true)")
    service(db, "select crypto.rollup_metrics()")  # as pg_cron would
    return tuple(players)


@pytest.mark.usefixtures("calendar")
def test_stats_give_streaks_and_accuracy(client: TestClient, db: psycopg.Connection) -> None:
    ann, bob = settle_a_day(client, db)
    stats = client.get("/v1/users/stats", headers=ann).json()
    # AAPL won, MSFT lost (symbol order), NVDA VOID: the loss ends the run.
    assert (stats["current_streak"], stats["best_streak"]) == (0, 1)
    assert stats["accuracy"] == {"week": 0.5, "month": 0.5, "all": 0.5}
    stats = client.get("/v1/users/stats", headers=bob).json()
    assert (stats["current_streak"], stats["best_streak"]) == (1, 1)
    assert stats["accuracy"] == {"week": 1, "month": 1, "all": 1}
    assert client.get("/v1/users/stats").status_code == 401


@pytest.mark.usefixtures("calendar")
def test_the_board_pages_by_an_opaque_cursor(client: TestClient, db: psycopg.Connection) -> None:
    settle_a_day(client, db)
    # Ann and Bob tie (100 points, one win each): the greater id first.
    ids = dict(db.execute("select nickname, id::text from crypto.users").fetchall())
    expected = sorted(ids, key=lambda name: ids[name], reverse=True)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"period": "week", "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/leaderboard", params=params).json()
        pages += 1
        seen += [(i["rank"], i["nickname"], i["points"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and not cursor.isdigit()
    assert pages == 2
    assert seen == [(1, expected[0], 100), (2, expected[1], 100)]
    for bad in ("garbage!", "1", "x" * 201):
        r = client.get("/v1/leaderboard", params={"cursor": bad})
        assert r.status_code == 422 and r.json()["code"] == "VALIDATION_FAILED", bad
    first = client.get("/v1/leaderboard", params={"period": "week", "limit": 1}).json()
    other = client.get("/v1/leaderboard", params={"period": "all", "cursor": first["next_cursor"]})
    assert other.status_code == 422 and other.json()["code"] == "VALIDATION_FAILED"
