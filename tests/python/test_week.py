"""A whole Thanksgiving week driven only by `oxp clock set` and `oxp schedule
tick` (no manual transitions): sessions open and close on time, closes come
from CSV, settlement pays, balances add up."""

from __future__ import annotations

from pathlib import Path

import psycopg
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ox_cli.main import app
from support import bearer, signup

runner = CliRunner()


def oxp(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def at(kst: str) -> None:
    oxp("clock", "set", kst)
    oxp("schedule", "tick")


def phases(db: psycopg.Connection) -> dict[str, str]:
    rows = db.execute(
        "select trading_day::text, phase::text from crypto.session_control"
    ).fetchall()
    return dict(rows)


def test_thanksgiving_week(client: TestClient, db: psycopg.Connection, tmp_path: Path) -> None:
    oxp("calendar", "sync", "--year", "2026")  # the week below, in any year
    closes = tmp_path / "closes.csv"
    # AAPL rises every day; MSFT falls every day.
    prices = {
        "2026-11-20": (100, 200),
        "2026-11-23": (101, 199),
        "2026-11-24": (102, 198),
        "2026-11-25": (103, 197),
        "2026-11-27": (104, 196),
    }

    def load(day: str) -> None:
        symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]
        rows = ["trading_day,symbol,close"]
        for d in (day, *[k for k in prices if k < day][-1:]):
            aapl, msft = prices[d]
            rows += [f"{d},AAPL,{aapl}", f"{d},MSFT,{msft}"]
            rows += [f"{d},{s},50" for s in symbols[2:]]
        closes.write_text("\n".join(rows) + "\n")
        oxp("eod", "load", str(closes))

    # Saturday 06:00 KST: Friday's New York close is in, Monday's session opens.
    at("2026-11-21T05:59")
    assert phases(db) == {}
    at("2026-11-21T06:00")
    assert phases(db) == {"2026-11-23": "OPEN"}
    token = signup(client, "week@example.com")
    h = bearer(token)

    def predict(symbol: str, choice: str) -> int:
        return client.post(
            f"/v1/predictions/{symbol}", json={"choice": choice}, headers=h
        ).status_code

    assert predict("AAPL", "UP") == 201  # will win
    # Monday's cutoff: 09:25 New York (winter) = 23:25 KST.
    at("2026-11-23T23:24")
    assert predict("MSFT", "UP") == 201  # will lose
    at("2026-11-23T23:25")
    assert phases(db)["2026-11-23"] == "CLOSED"
    assert predict("NVDA", "UP") == 409

    # Tuesday 06:00 KST: Monday closed in New York; Tuesday opens; prices come.
    at("2026-11-24T06:00")
    assert phases(db) == {"2026-11-23": "CLOSED", "2026-11-24": "OPEN"}
    load("2026-11-23")
    at("2026-11-24T06:15")
    assert phases(db)["2026-11-23"] == "SETTLED"
    assert client.get("/v1/points/balance", headers=h).json()["balance"] == 100

    assert predict("MSFT", "DOWN") == 201  # will win
    oxp("clock", "set", "2026-11-25T06:05")  # closes exist once New York has closed the day
    load("2026-11-24")
    at("2026-11-25T06:15")  # one tick: closes Tuesday, opens Wednesday, settles Tuesday
    assert phases(db) == {"2026-11-23": "SETTLED", "2026-11-24": "SETTLED", "2026-11-25": "OPEN"}
    assert client.get("/v1/points/balance", headers=h).json()["balance"] == 200

    # Thanksgiving: Wednesday's session gives way to Friday's on Thursday morning.
    assert predict("AAPL", "UP") == 201
    at("2026-11-26T06:00")
    assert phases(db)["2026-11-25"] == "CLOSED" and phases(db)["2026-11-27"] == "OPEN"
    assert "2026-11-26" not in phases(db)
    load("2026-11-25")
    at("2026-11-26T06:15")
    assert phases(db)["2026-11-25"] == "SETTLED"

    # Friday closes early (13:00 New York = 03:00 KST Saturday).
    assert predict("AAPL", "DOWN") == 201  # will lose
    oxp("clock", "set", "2026-11-28T03:05")
    load("2026-11-27")
    at("2026-11-28T03:14")
    assert phases(db)["2026-11-27"] == "CLOSED"
    at("2026-11-28T03:15")
    assert phases(db)["2026-11-27"] == "SETTLED"
    at("2026-11-28T06:00")
    assert phases(db)["2026-11-30"] == "OPEN"

    assert client.get("/v1/points/balance", headers=h).json()["balance"] == 300
    ledger = client.get("/v1/points/ledger", headers=h).json()["items"]
    assert [e["balance_after"] for e in ledger] == [300, 200, 100]
    assert db.execute("select sum(amount) from crypto.ledger_entries").fetchone() == (0,)
    assert db.execute(
        "select count(*) from crypto.job_runs where job = 'schedule_tick' and status <> 'succeeded'"
    ).fetchone() == (0,)
