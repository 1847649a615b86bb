"""Closes and settlements that cannot be right are refused, and a settled day
can be corrected without editing history: by the CLI and by the admin API,
against a real database."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ox_cli.main import app
from support import act_as, admin_token, bearer, new_user, open_session_for, race_each, signup

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("env", "calendar")


def oxp(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def predict(db: psycopg.Connection, uid: str, *picks: tuple[str, str]) -> None:
    with db.transaction():
        act_as(db, uid)
        for symbol, choice in picks:
            db.execute("select api.submit_prediction(%s, %s)", (symbol, choice))


def csv_file(path: Path, *rows: str) -> str:
    path.write_text("trading_day,symbol,close\n" + "".join(r + "\n" for r in rows))
    return str(path)


def balances(db: psycopg.Connection) -> dict[str, int]:
    """Balances of the players (not of the admin or the bystander)."""
    return dict(
        db.execute(
            "select u.email, a.balance from crypto.ledger_accounts as a"
            " join crypto.users as u on u.id = a.user_id"
            " where u.email not in ('ops@example.com', 'player@example.com')"
        ).fetchall()
    )


def test_a_day_is_never_paid_before_new_york_closes_it(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    """The reproduction: clock after the cutoff of Friday 27 November 2026 but
    before the New York open; closes for that day, for Thanksgiving and a file
    with a row twice were accepted, and the day settled and paid 300 points."""
    open_session_for(db, "2026-11-27", "2026-11-27T09:00:00+09:00")
    uid = new_user(db, "early@example.com")
    predict(db, uid, ("AAPL", "UP"), ("MSFT", "UP"), ("NVDA", "UP"))
    oxp("clock", "set", "2026-11-27T23:27")  # cutoff 23:25 KST, New York opens 23:30
    oxp("schedule", "tick")
    before = db.execute("select count(*) from crypto.eod_prices").fetchone()

    today = csv_file(
        tmp_path / "friday.csv",
        "2026-11-25,AAPL,100",
        "2026-11-27,AAPL,120",
        "2026-11-27,MSFT,120",
    )
    out = oxp("eod", "load", today, code=1)
    assert "friday.csv:3: MARKET_NOT_CLOSED: 2026-11-27 has not closed yet" in out
    assert "friday.csv:4: MARKET_NOT_CLOSED" in out
    assert "2 of 3 rows refused, nothing loaded" in out

    holiday = csv_file(tmp_path / "holiday.csv", "2026-11-26,AAPL,120")
    assert "holiday.csv:2: NOT_A_TRADING_DAY: 2026-11-26 is not a trading day" in oxp(
        "eod", "load", holiday, code=1
    )
    twice = csv_file(tmp_path / "twice.csv", "2026-11-25,AAPL,100", "2026-11-25,AAPL,100")
    out = oxp("eod", "load", twice, "--json", code=1)
    error = json.loads(out)["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert [r["line"] for r in error["rows"]] == [2, 3]
    assert "AAPL on 2026-11-25 is given 2 times" in error["rows"][0]["detail"]
    assert db.execute("select count(*) from crypto.eod_prices").fetchone() == before

    for extra in ([], ["--void-missing"]):
        out = oxp("session", "settle", "--day", "2026-11-27", *extra, code=1)
        assert "MARKET_NOT_CLOSED" in out and "2026-11-28T03:00:00+09:00" in out
    assert balances(db) == {"early@example.com": 0}
    assert db.execute("select count(*) from crypto.settlements").fetchone() == (0,)

    # After the (early) close the same day loads and settles.
    oxp("clock", "set", "2026-11-28T03:20")
    closes = csv_file(
        tmp_path / "after.csv",
        *[f"2026-11-25,{s},100" for s in ("AAPL", "MSFT", "NVDA")],
        *[f"2026-11-27,{s},101" for s in ("AAPL", "MSFT", "NVDA")],
    )
    assert "6 closes read, 6 new or changed" in oxp("eod", "load", closes)
    oxp("session", "settle", "--day", "2026-11-27", "--void-missing")
    assert balances(db) == {"early@example.com": 300}


def test_a_wrong_close_is_corrected_by_cli_and_admin_api(
    db: psycopg.Connection, client: TestClient, tmp_path: Path
) -> None:
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    right = new_user(db, "right@example.com")
    wrong = new_user(db, "wrong@example.com")
    predict(db, right, ("AAPL", "DOWN"))
    predict(db, wrong, ("AAPL", "UP"))
    oxp("clock", "set", "2026-11-25T07:00")
    oxp("schedule", "tick")
    mistyped = csv_file(tmp_path / "mistyped.csv", "2026-11-23,AAPL,100", "2026-11-24,AAPL,110")
    oxp("eod", "load", mistyped)
    oxp("session", "settle", "--day", "2026-11-24", "--void-missing")
    assert balances(db) == {"right@example.com": 0, "wrong@example.com": 100}

    # Loading over a settled close is refused; the way is a correction.
    fixed = csv_file(tmp_path / "fixed.csv", "2026-11-24,AAPL,90")
    assert "PRICE_ALREADY_SETTLED" in oxp("eod", "load", fixed, code=1)
    assert "--reason" in oxp("session", "correct", "--day", "2026-11-24", "--csv", fixed, code=2)
    out = oxp(
        "session", "correct", "--day", "2026-11-24", "--csv", fixed, "--reason", "typo: 110 for 90"
    )
    assert "1 closes changed" in out and "took back 100 from 1" in out
    assert balances(db) == {"right@example.com": 100, "wrong@example.com": 0}
    again = oxp(
        "session", "correct", "--day", "2026-11-24", "--csv", fixed, "--reason", "typo", "--json"
    )
    assert json.loads(again)["correction_id"] is None, "a retried correction changes nothing"
    assert balances(db) == {"right@example.com": 100, "wrong@example.com": 0}

    # The admin API: the same SQL function, under the admin's own id.
    token = admin_token(client, "ops@example.com")
    body = {
        "trading_day": "2026-11-24",
        "closes": [{"trading_day": "2026-11-24", "symbol": "AAPL", "close": "110"}],
        "reason": "the exchange confirmed 110 after all",
    }
    player = signup(client, "player@example.com")
    assert client.post("/admin/settlement/correct", json=body).status_code == 401
    denied = client.post("/admin/settlement/correct", json={}, headers=bearer(player))
    assert denied.status_code == 403 and denied.json()["code"] == "FORBIDDEN"
    for bad, status, code in (
        ({**body, "reason": ""}, 422, "VALIDATION_FAILED"),
        ({**body, "closes": []}, 422, "VALIDATION_FAILED"),
        (
            {**body, "closes": [{"trading_day": "2026-11-24", "symbol": "AAPL", "close": "-1"}]},
            422,
            "VALIDATION_FAILED",
        ),
        (
            {**body, "closes": [{"trading_day": "2026-11-25", "symbol": "AAPL", "close": "1"}]},
            409,
            "MARKET_NOT_CLOSED",
        ),
        ({**body, "trading_day": "2026-11-26"}, 404, "NO_SESSION"),
        ({**body, "trading_day": "2026-11-25"}, 409, "NOT_SETTLED"),
    ):
        r = client.post("/admin/settlement/correct", json=bad, headers=bearer(token))
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
        assert r.headers["content-type"] == "application/problem+json"
    assert balances(db)["wrong@example.com"] == 0, "refused corrections changed nothing"
    r = client.post("/admin/settlement/correct", json=body, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["symbols"] == [
        {"trading_day": "2026-11-24", "symbol": "AAPL", "from": "DOWN", "to": "UP"}
    ]
    assert balances(db) == {"right@example.com": 0, "wrong@example.com": 100}
    admin_id = db.execute("select id from crypto.users where email = 'ops@example.com'").fetchone()
    assert db.execute(
        "select actor from crypto.settlement_corrections order by id desc limit 1"
    ).fetchone() == (f"user:{admin_id[0]}",)  # type: ignore[index]

    page = client.get("/v1/settlements/2026-11-24").json()
    assert [c["reason"] for c in page["corrections"]] == [
        "typo: 110 for 90",
        "the exchange confirmed 110 after all",
    ]
    assert "settlement.corrected" in {
        a for (a,) in db.execute("select action from crypto.audit_logs")
    }
    assert db.execute("select count(*) from crypto.integrity_violations()").fetchone() == (0,)


def as_service(url: str, query: str, *args: object) -> str:
    """One call as the service role on its own connection: "ok" or the error's code."""
    with psycopg.connect(url) as conn:
        try:
            with conn.transaction():
                conn.execute("set local role oxp_operator")
                row = conn.execute(query, args).fetchone()
        except psycopg.Error as exc:
            return exc.diag.message_primary or str(exc.sqlstate)
    problem = row[0].get("problem") if row and isinstance(row[0], dict) else None
    return "refused" if problem else "ok"


def test_corrections_racing_each_other_and_spending_pay_once(
    db: psycopg.Connection, db_url: str
) -> None:
    """8 identical corrections and 20 players spending the award being taken
    back, all at once: one correction applies, no deadlock, no balance below
    zero, and every point is accounted for (taken back or written off)."""
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    winners = [new_user(db, f"w{i}@example.com") for i in range(20)]
    for uid in winners:
        predict(db, uid, ("AAPL", "UP"))
    loser = new_user(db, "down@example.com")
    predict(db, loser, ("AAPL", "DOWN"))
    oxp("clock", "set", "2026-11-25T07:00")
    oxp("schedule", "tick")
    rows = [{"trading_day": "2026-11-23", "symbol": "AAPL", "close": "100"}]
    rows += [{"trading_day": "2026-11-24", "symbol": "AAPL", "close": "110"}]
    with db.transaction():
        db.execute("set local role oxp_operator")
        db.execute("select crypto.load_eod_prices(%s, 'test')", (json.dumps(rows),))
        db.execute("select crypto.settle_session('2026-11-24', true)")

    fix = json.dumps([{"trading_day": "2026-11-24", "symbol": "AAPL", "close": "90"}])

    def work(i: int) -> str:
        if i < 8:
            return as_service(
                db_url, "select crypto.correct_settlement('2026-11-24', %s, 'typo')", fix
            )
        email = f"w{i - 8}@example.com"
        return as_service(
            db_url, "select crypto.adjust_points(%s, -70, 'shop', %s)", email, f"spend-{i}"
        )

    outcomes = race_each(28, work)
    assert outcomes[:8] == ["ok"] * 8, outcomes
    assert set(outcomes[8:]) <= {"ok", "refused"}, outcomes
    spent = outcomes[8:].count("ok")
    assert db.execute("select count(*) from crypto.settlement_corrections").fetchone() == (1,)
    written_off = db.execute("select sum(written_off) from crypto.correction_transfers").fetchone()
    assert written_off == (70 * spent,)
    bal = balances(db)
    assert bal.pop("down@example.com") == 100
    assert set(bal.values()) == {0}, "every wrong award taken back or spent"
    assert db.execute("select count(*) from crypto.integrity_violations()").fetchone() == (0,)
