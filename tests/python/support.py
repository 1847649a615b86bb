"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from fastapi.testclient import TestClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service(db: psycopg.Connection, query: str, *args: Any) -> Any:
    """Run one statement as the service role (as the CLI and pg_cron do)."""
    with db.transaction():
        db.execute("set local role oxp_service")
        row = db.execute(query, args).fetchone()
    return None if row is None else row[0]


def open_session_for(db: psycopg.Connection, day: str, at_kst: str) -> None:
    service(db, "select crypto.clock_set(%s::timestamptz)", at_kst)
    service(db, "select crypto.schedule_tick()")
    phase = service(
        db, "select phase::text from crypto.session_control where trading_day = %s", day
    )
    assert phase == "OPEN", f"session {day} did not open at {at_kst}"


def signup(client: TestClient, email: str, password: str = "correct horse battery") -> str:
    r = client.post("/v1/auth/signup", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    return str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


T = TypeVar("T")
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]


def new_user(db: psycopg.Connection, email: str) -> str:
    with db.transaction():
        db.execute("set local role anon")
        user = db.execute(
            "select api.signup(%s, %s)", (email, "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")
        ).fetchone()
    assert user is not None
    return str(user[0]["id"])


def race_each(n: int, work: Callable[[int], T]) -> list[T]:
    """Start n calls together (a barrier); what each returned, in call order."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))
