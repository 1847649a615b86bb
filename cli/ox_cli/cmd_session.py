from __future__ import annotations

import json
from typing import Annotated

import typer

from .common import (
    AsJson,
    DayOrCurrent,
    call,
    console,
    day_or_current,
    emit,
    fail,
    parse_day,
    service_connection,
)

app = typer.Typer(no_args_is_help=True, help="Sessions: inspect or move by hand")

SHOW = """
select s.trading_day, s.phase, crypto.kst(c.cutoff_at) as cutoff_at,
       crypto.kst(c.close_at) as close_at, crypto.kst(s.opened_at) as opened_at,
       crypto.kst(s.closed_at) as closed_at, crypto.kst(s.settled_at) as settled_at,
       (select count(*) from crypto.predictions as p
        where p.trading_day = s.trading_day) as predictions
from crypto.session_control as s join crypto.trading_calendar as c using (trading_day)
"""


@app.command("show")
def show(
    day: DayOrCurrent = None,
    as_json: AsJson = False,
) -> None:
    with service_connection() as conn:
        cur = conn.execute(SHOW + " where s.trading_day = %s", (day_or_current(conn, day),))
        row = cur.fetchone()
        if row is None:
            raise fail("NO_SESSION")
        names = [d.name for d in cur.description or []]
    emit(dict(zip(names, row, strict=True)), as_json)


def _move(function: str, day: str | None) -> None:
    with service_connection() as conn:
        target = day_or_current(conn, day)
        phase = call(conn, f"select (crypto.{function}(%s)).phase", target)
    console.print(f"{target}: {phase}")


@app.command("open")
def open_(day: Annotated[str, typer.Option(help="Trading day")]) -> None:
    """Open the session of DAY (copies its universe)."""
    _move("open_session", day)


@app.command("close")
def close(day: DayOrCurrent = None) -> None:
    """Close the open session (or DAY's)."""
    _move("close_session", day)


@app.command("settle")
def settle(
    day: Annotated[str, typer.Option(help="Trading day")],
    void_missing: Annotated[
        bool, typer.Option(help="Settle symbols without both closes as VOID")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Settle DAY and pay the winners; safe to re-run."""
    with service_connection() as conn:
        result = call(conn, "select crypto.settle_session(%s, %s)", parse_day(day), void_missing)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        console.print(result)
