from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from psycopg.types.json import Jsonb

from ox_sidecar.eod import CsvError, read_csv_rows

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


@app.command("correct")
def correct(
    day: Annotated[str, typer.Option(help="The settled trading day to correct (YYYY-MM-DD)")],
    csv: Annotated[
        Path,
        typer.Option(
            exists=True, dir_okay=False, help="Corrected closes: trading_day,symbol,close"
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why (shown to players and auditors)")],
    as_json: AsJson = False,
) -> None:
    """Correct closes that settled DAY read. Outcomes are recomputed in every
    settled session that read a corrected close; new winners are paid and wrong
    awards taken back (never below a zero balance: the rest is written off).
    Running it again changes nothing."""
    try:
        rows = read_csv_rows(csv)
    except CsvError as exc:
        raise fail(str(exc)) from exc
    with service_connection() as conn:
        result = call(
            conn,
            "select crypto.correct_settlement(%s, %s, %s)",
            parse_day(day),
            Jsonb(rows),
            reason,
        )
    if as_json:
        typer.echo(json.dumps(result))
        return
    if result["correction_id"] is None:
        console.print(f"{day}: {result['detail']}")
        return
    console.print(
        f"{day}: correction {result['correction_id']}, {result['closes_changed']} closes changed"
    )
    emit(result["symbols"], False, ["trading_day", "symbol", "from", "to"])
    paid, reversed_ = result["paid"], result["reversed"]
    console.print(
        f"paid {paid['points']} points to {paid['predictions']} predictions; "
        f"took back {reversed_['points']} from {reversed_['predictions']}; "
        f"written off {result['written_off']}"
    )
