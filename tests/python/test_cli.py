"""`oxp` commands against a real database: exit codes, messages, effects."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from ox_cli.main import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("env", "calendar")


def oxp(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_clock_set_without_offset_is_kst(db: psycopg.Connection) -> None:
    assert "2026-11-24T09:00:00+09:00" in oxp("clock", "set", "2026-11-24T09:00")
    assert (
        db.execute("select crypto.now() at time zone 'UTC'")
        .fetchone()[0]
        .isoformat()
        .startswith(  # type: ignore[index]
            "2026-11-24T00:00"
        )
    )
    oxp("clock", "reset")
    oxp("clock", "set", "yesterday-ish", code=1)


def test_universe_set_and_show(db: psycopg.Connection) -> None:
    oxp("universe", "set", "--day", "2026-11-30", "aapl", "MSFT", "BRK.B")
    out = oxp("universe", "show", "--day", "2026-11-30", "--json")
    assert '"BRK.B"' in out and '"AAPL"' in out
    bad = oxp("universe", "set", "--day", "2026-11-26", "AAPL", code=1)  # Thanksgiving
    assert "NOT_A_TRADING_DAY" in bad
    dup = oxp("universe", "set", "--day", "2026-11-30", "AAPL", "aapl", code=1)
    assert "VALIDATION_FAILED" in dup


def test_eod_load_is_all_or_nothing(db: psycopg.Connection, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("trading_day,symbol,close\n2026-11-24,AAPL,234.56\n2026-11-24,msft,400\n")
    assert "2 closes read, 2 new or changed" in oxp("eod", "load", str(good))
    assert "0 new or changed" in oxp("eod", "load", str(good))
    assert db.execute(
        "select close::text, source from crypto.eod_prices where symbol = 'AAPL'"
    ).fetchone() == ("234.560000", "csv:good.csv")

    for name, (text, says) in {
        "header.csv": ("day,symbol,close\n2026-11-24,AAPL,1\n", "header must be"),
        "negative.csv": (
            "trading_day,symbol,close\n2026-11-24,NVDA,1\n2026-11-24,AMD,-3\n",
            "negative.csv:3: VALIDATION_FAILED: The close of AMD on 2026-11-24 must be a positive",
        ),
        "nan.csv": ("trading_day,symbol,close\n2026-11-24,NVDA,NaN\n", "NaN is not a number"),
        "date.csv": (
            "trading_day,symbol,close\n24/11/2026,NVDA,1\n",
            "date.csv:2: VALIDATION_FAILED: 24/11/2026 is not a date",
        ),
    }.items():
        bad = tmp_path / name
        bad.write_text(text)
        out = oxp("eod", "load", str(bad), code=1)
        assert "error:" in out and says in out
    assert db.execute("select count(*) from crypto.eod_prices").fetchone() == (2,)


def test_session_commands(db: psycopg.Connection) -> None:
    oxp("clock", "set", "2026-11-24T09:00")
    assert "OPEN" in oxp("session", "open", "--day", "2026-11-24")
    assert "CLOSED" in oxp("session", "close", "--yes")
    assert "MARKET_NOT_CLOSED" in oxp("session", "settle", "--day", "2026-11-24", code=1)
    oxp("clock", "set", "2026-11-25T07:00")  # New York has closed the 24th
    assert "PRICES_MISSING" in oxp("session", "settle", "--day", "2026-11-24", code=1)
    out = oxp("session", "settle", "--day", "2026-11-24", "--void-missing", "--json")
    assert '"void_symbols": 10' in out
    assert "SETTLED" in oxp("session", "show", "--day", "2026-11-24")
    assert "INVALID_TRANSITION" in oxp("session", "close", "--day", "2026-11-24", code=1)


def test_schedule_tick_records_a_run(db: psycopg.Connection) -> None:
    oxp("clock", "set", "2026-11-24T09:00")
    assert "opened" in oxp("schedule", "tick", "--json")
    assert db.execute(
        "select job, status::text from crypto.job_runs order by id desc limit 1"
    ).fetchone() == ("schedule_tick", "succeeded")


def test_a_failed_step_fails_the_tick_command_but_keeps_the_others(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    oxp("clock", "set", "2026-11-24T09:00")
    oxp("schedule", "tick")
    oxp("clock", "set", "2026-11-25T06:15")
    closes = tmp_path / "c.csv"
    symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]
    closes.write_text(
        "trading_day,symbol,close\n"
        + "".join(f"{d},{s},100\n" for d in ("2026-11-23", "2026-11-24") for s in symbols)
    )
    oxp("eod", "load", str(closes))
    db.execute(
        "create function public.refuse() returns trigger language plpgsql as"
        " $$ begin raise exception 'settlement store unavailable'; end $$;"
        " create trigger refuse before insert on crypto.settlements"
        " for each row execute function public.refuse()"
    )
    out = oxp("schedule", "tick", code=1)
    assert "TICK_FAILED" in out and "settle 2026-11-24: settlement store unavailable" in out
    assert "closed 2026-11-24" in out and "opened 2026-11-25" in out
    assert db.execute(
        "select trading_day::text, phase::text from crypto.session_control order by 1"
    ).fetchall() == [("2026-11-24", "CLOSED"), ("2026-11-25", "OPEN")]
    db.execute("drop trigger refuse on crypto.settlements")
    assert "settled" in oxp("schedule", "tick", "--json")


def test_rewards_points_integrity_and_audit(db: psycopg.Connection) -> None:
    oxp("rewards", "add", "MUG", "--name", "A mug", "--cost", "300", "--stock", "2")
    assert '"available": 2' in oxp("rewards", "list", "--json")
    assert "VALIDATION_FAILED" in oxp(
        "rewards", "add", "bad sku", "--name", "x", "--cost", "1", "--stock", "1", code=1
    )
    with db.transaction():
        db.execute("set local role anon")
        db.execute(
            "select api.signup('cli@example.com', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA')"
        )
    assert '"balance_after": 500' in oxp(
        "points", "adjust", "cli@example.com", "500", "--reason", "welcome", "--key", "a1", "--json"
    )
    # A negative amount; refused below zero, and the refusal is the key's answer.
    assert "INSUFFICIENT_POINTS" in oxp(
        "points", "adjust", "cli@example.com", "-600", "--reason", "oops", "--key", "a2", code=1
    )
    assert "INSUFFICIENT_POINTS" in oxp(
        "points", "adjust", "cli@example.com", "-600", "--reason", "oops", "--key", "a2", code=1
    )
    assert '"balance_after": 400' in oxp(
        "points", "adjust", "cli@example.com", "-100", "--reason", "fix", "--key", "a3", "--json"
    )
    assert "NOT_FOUND" in oxp("points", "adjust", "who@example.com", "1", "--reason", "x", code=1)
    assert "every invariant holds" in oxp("integrity", "check")
    assert "the chain is intact" in oxp("audit", "verify")

    # A superuser edits history behind the triggers: both checks say so.
    with db.transaction():
        db.execute("set local session_replication_role = replica")
        db.execute("update crypto.ledger_accounts set balance = 999999 where kind = 'user'")
        bad_row = db.execute(
            "update crypto.audit_logs set details = details || '{\"amount\": 5000}'"
            " where id = (select min(id) from crypto.audit_logs where action = 'points.adjust')"
            " returning id"
        ).fetchone()[0]  # type: ignore[index]
    assert "balance_mismatch" in oxp("integrity", "check", code=1)
    assert f"audit row {bad_row}: the row does not match its hash" in oxp("audit", "verify", code=1)
