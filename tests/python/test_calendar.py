"""The stored calendar is exchange_calendars' XNYS, day for day, and the
cutoff follows New York's clock."""

from __future__ import annotations

import datetime as dt

import exchange_calendars as xcals
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from ox_cli.main import app

pytestmark = pytest.mark.usefixtures("env")


def test_every_synced_session_matches_exchange_calendars(db: psycopg.Connection) -> None:
    result = CliRunner().invoke(app, ["calendar", "sync", "--years", "2"])
    assert result.exit_code == 0, result.output
    first, last = db.execute(
        "select min(trading_day), max(trading_day) from crypto.trading_calendar"
    ).fetchone()  # type: ignore[misc]
    this_year = dt.date.today().year
    assert first <= dt.date(this_year, 1, 5) and last >= dt.date(this_year + 1, 12, 24)

    cal = xcals.get_calendar("XNYS", start=first.isoformat(), end=last.isoformat())
    expected = {
        day.date(): (
            row.open.to_pydatetime(),
            row.close.to_pydatetime(),
            day in set(cal.early_closes),
        )
        for day, row in cal.schedule.iterrows()
    }
    stored = {
        d: (o, c, e, cut)
        for d, o, c, e, cut in db.execute(
            "select trading_day, open_at, close_at, early_close, cutoff_at from crypto.trading_calendar"
        )
    }
    assert stored.keys() == expected.keys()
    for day, (open_at, close_at, early) in expected.items():
        assert stored[day][:3] == (open_at, close_at, early), day
        assert stored[day][3] == open_at - dt.timedelta(minutes=5), day
        # 09:25 in New York, whatever its offset that day.
        ny = pd.Timestamp(stored[day][3]).tz_convert("America/New_York")
        assert (ny.hour, ny.minute) == (9, 25), day


def test_calendar_show_prints_kst_times(db: psycopg.Connection) -> None:
    # A fixed window, so this reads the same days in any year it runs.
    synced = CliRunner().invoke(app, ["calendar", "sync", "--year", "2026", "--json"])
    assert synced.exit_code == 0, synced.output
    assert '"first": 2025' in synced.output and '"last": 2027' in synced.output
    out = (
        CliRunner()
        .invoke(app, ["calendar", "show", "--from", "2026-11-25", "--to", "2026-11-30", "--json"])
        .output
    )
    assert '"trading_day": "2026-11-27"' in out and '"early_close": true' in out
    assert '"cutoff_at": "2026-11-27T23:25:00+09:00"' in out
    assert "2026-11-26" not in out.replace("2026-11-26T", "")  # Thanksgiving has no session
