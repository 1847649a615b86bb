"""Nicknames and the leaderboard over HTTP: who may set a nickname, the
refusals by code, and a public board that shows nicknames only."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from support import bearer, signup


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
