"""The whole path on real processes: the API under uvicorn, the `oxp` CLI, and
PostgreSQL. signup -> login -> predict -> closes -> settle -> 100 points."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from support import running_api

OXP = Path(sys.executable).parent / "oxp"


def oxp(*args: str) -> str:
    result = subprocess.run(
        [OXP, *args], capture_output=True, text=True, check=False, env=os.environ
    )
    assert result.returncode == 0, f"oxp {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture
def api(env: None) -> Iterator[str]:
    with running_api() as base:
        yield base


def test_signup_predict_settle_pays_100(api: str, db: psycopg.Connection, tmp_path: Path) -> None:
    oxp("calendar", "sync", "--year", "2026")  # the days below, in any year
    # Tuesday 24 Nov 2026, 09:00 KST: the session of New York's Tuesday is open.
    oxp("clock", "set", "2026-11-24T09:00")
    oxp("schedule", "tick")
    assert "OPEN" in oxp("session", "show", "--day", "2026-11-24")

    with httpx.Client(base_url=api) as http:
        r = http.post(
            "/v1/auth/signup", json={"email": "e2e@example.com", "password": "a good password"}
        )
        assert r.status_code == 201, r.text
        r = http.post(
            "/v1/auth/login", json={"email": "e2e@example.com", "password": "a good password"}
        )
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}

        today = http.get("/v1/session/today").json()
        assert today["trading_day"] == "2026-11-24"
        assert today["cutoff_at"] == "2026-11-24T23:25:00+09:00"
        r = http.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=auth)
        assert r.status_code == 201, r.text
        r = http.post("/v1/predictions/MSFT", json={"choice": "UP"}, headers=auth)
        assert r.status_code == 201, r.text

        # After New York's close the CSV brings Monday's and Tuesday's closes.
        oxp("clock", "set", "2026-11-25T07:00")
        oxp("schedule", "tick")
        closes = tmp_path / "closes.csv"
        symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]
        rows = ["trading_day,symbol,close"]
        rows += [f"2026-11-23,{s},100.00" for s in symbols]
        rows += [f"2026-11-24,{s},{'101.50' if s == 'AAPL' else '99.00'}" for s in symbols]
        closes.write_text("\n".join(rows) + "\n")
        oxp("eod", "load", str(closes))
        oxp("session", "settle", "--day", "2026-11-24")
        oxp("session", "settle", "--day", "2026-11-24")  # a re-run pays nothing more

        balance = http.get("/v1/points/balance", headers=auth).json()
        assert balance["balance"] == 100
        ledger = http.get("/v1/points/ledger", headers=auth).json()
        assert len(ledger["items"]) == 1
        entry = ledger["items"][0]
        assert entry["amount"] == 100
        assert entry["balance_after"] == 100
        assert entry["reason"] == "settlement_award"
        assert entry["cause"].startswith("settlement:2026-11-24:")

    assert db.execute("select sum(amount) from crypto.ledger_entries").fetchone() == (0,)
