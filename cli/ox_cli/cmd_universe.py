from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    AsJson,
    call,
    day_or_current,
    emit,
    parse_day,
    say,
    service_connection,
)

app = typer.Typer(no_args_is_help=True, help="The symbols of a session")


@app.command("show")
def show(
    day: Annotated[
        str | None, typer.Option(help="Trading day; default the current session")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The symbols of DAY's session, in display order."""
    with service_connection() as conn:
        target = day_or_current(conn, day)
        rows = conn.execute(
            "select symbol, position from crypto.active_universe"
            " where trading_day = %s order by position",
            (target,),
        ).fetchall()
    emit([{"trading_day": target, "symbol": s, "position": p} for s, p in rows], as_json)


@app.command("set")
def set_(
    day: Annotated[str, typer.Option(help="Trading day (YYYY-MM-DD, the New York date)")],
    symbols: Annotated[list[str], typer.Argument(help="Symbols, in display order")],
    allow_unknown: Annotated[
        bool,
        typer.Option(
            "--allow-unknown",
            help="Accept tickers missing from the known list (crypto.known_symbols)"
            " and never priced; they are added to the list",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Set DAY's symbols (before its session closes). Unknown tickers are
    refused unless --allow-unknown; later sessions copy this list."""
    with service_connection() as conn:
        count = call(
            conn,
            "select crypto.set_universe(%s, %s, %s)",
            parse_day(day),
            symbols,
            allow_unknown,
        )
    say(f"{day}: {count} symbols", as_json, trading_day=day, symbols=count)
