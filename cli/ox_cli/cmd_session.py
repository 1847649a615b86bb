from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from psycopg.types.json import Jsonb

from ox_sidecar.eod import CsvError, read_csv_rows

from .common import (
    AsJson,
    DayOrCurrent,
    Yes,
    call,
    cell,
    confirm,
    console,
    day_or_current,
    emit,
    fail,
    parse_day,
    say,
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
    """One session: phase, cutoff and close (KST), transitions, predictions."""
    with service_connection() as conn:
        target = day_or_current(conn, day)
        cur = conn.execute(SHOW + " where s.trading_day = %s", (target,))
        row = cur.fetchone()
        if row is None:
            raise fail("NO_SESSION", f"No session for {target}")
        names = [d.name for d in cur.description or []]
    emit(dict(zip(names, row, strict=True)), as_json)


LIST_COLUMNS = ["trading_day", "phase", "symbols", "predictions", "players", "winners", "voids"]


@app.command("list")
def list_(
    from_: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD)")] = None,
    to: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD)")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 30,
    as_json: AsJson = False,
) -> None:
    """Sessions newest first: phase, counts, VOIDs with their reason.

    A VOID is "threshold" (the change was too small) or "missing_price"
    (naming the day whose close is missing).
    """
    first = parse_day(from_) if from_ else None
    last = parse_day(to) if to else None
    with service_connection() as conn:
        sessions = call(conn, "select crypto.sessions_list(%s, %s, %s)", first, last, limit)
    if not as_json:
        for s in sessions:
            s["voids"] = ", ".join(f"{v['symbol']} ({_void_text(v)})" for v in s["voids"]) or None
    emit(sessions, as_json, LIST_COLUMNS)


def _void_text(void: dict[str, Any]) -> str:
    if void["reason"] == "missing_price":
        return "no close on " + " and ".join(void["missing"])
    return f"change {cell(void['change'])} inside the threshold"


def _move(function: str, day: str | None, as_json: bool) -> None:
    with service_connection() as conn:
        target = day_or_current(conn, day)
        phase = call(conn, f"select (crypto.{function}(%s)).phase", target)
    say(f"{target}: {phase}", as_json, trading_day=target, phase=phase)


@app.command("open")
def open_(
    day: Annotated[str, typer.Option(help="Trading day (YYYY-MM-DD)")],
    as_json: AsJson = False,
) -> None:
    """Open the session of DAY (copies its universe)."""
    _move("open_session", day, as_json)


@app.command("close")
def close(
    day: Annotated[
        str | None,
        typer.Option(help="Trading day (YYYY-MM-DD); without it the current session, with --yes"),
    ] = None,
    yes: Yes = False,
    as_json: AsJson = False,
) -> None:
    """Close DAY's session, or the open one with --yes.

    No more predictions are accepted. Without --day, the current session is
    closed only with --yes (or when confirmed at a terminal).
    """
    if day is None:
        with service_connection() as conn:
            current = call(conn, "select (crypto.current_session()).trading_day")
        if current is None:
            raise fail("NO_SESSION", "no session has opened yet")
        confirm(
            f"Close the current session ({current}) now? Predictions stop.",
            yes,
            f"closing the current session ({current}) stops predictions:"
            " pass --day to name it, or --yes",
        )
    _move("close_session", day, as_json)


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
    emit(result, as_json)


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
        emit(result, True)
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
