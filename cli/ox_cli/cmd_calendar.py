from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from ox_sidecar.calendar_sync import default_years, nyse_sessions
from ox_sidecar.config import get_owner_settings

from .common import AsJson, call, emit, parse_day, say, service_connection

app = typer.Typer(no_args_is_help=True, help="The NYSE trading calendar")


@app.command("sync")
def sync(
    years: Annotated[int, typer.Option(help="This year and the next N-1")] = 2,
    year: Annotated[
        int | None, typer.Option(help="Count from this year instead of today's (tests, backfills)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Fill crypto.trading_calendar from exchange_calendars (XNYS)."""
    today = dt.date.today() if year is None else dt.date(year, 1, 1)
    first, last = default_years(today, years)
    sessions = nyse_sessions(first, last)
    # The owner's settings: compose's migrate step runs this with no JWT or TOTP key.
    with service_connection(settings=get_owner_settings()) as conn:
        changed = call(conn, "select crypto.sync_calendar(%s::jsonb)", json.dumps(sessions))
    say(
        f"{len(sessions)} sessions {first}-{last}, {changed} new or changed",
        as_json,
        sessions=len(sessions),
        first=first,
        last=last,
        changed=changed,
    )


@app.command("show")
def show(
    from_: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD)")],
    to: Annotated[str, typer.Option(help="Last day (YYYY-MM-DD)")],
    as_json: AsJson = False,
) -> None:
    """The stored sessions, times in KST."""
    with service_connection() as conn:
        rows = conn.execute(
            "select trading_day, crypto.kst(open_at), crypto.kst(close_at), crypto.kst(cutoff_at),"
            " early_close from crypto.trading_calendar"
            " where trading_day between %s and %s order by trading_day",
            (parse_day(from_), parse_day(to)),
        ).fetchall()
    keys = ["trading_day", "open_at", "close_at", "cutoff_at", "early_close"]
    emit([dict(zip(keys, r, strict=True)) for r in rows], as_json, keys)
