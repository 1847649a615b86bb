from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ox_sidecar.eod import CsvError, read_closes_csv

from .common import call, console, fail, service_connection

app = typer.Typer(no_args_is_help=True, help="End-of-day closes")


@app.command("load")
def load(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Load raw closes from a CSV with header trading_day,symbol,close (all or nothing)."""
    try:
        closes = read_closes_csv(file)
    except CsvError as exc:
        raise fail(str(exc)) from exc
    source = f"csv:{file.name}"
    with service_connection() as conn:
        changed = sum(
            bool(
                call(
                    conn,
                    "select crypto.load_eod_price(%s, %s, %s, %s)",
                    c.day,
                    c.symbol,
                    c.close,
                    source,
                )
            )
            for c in closes
        )
    console.print(f"{len(closes)} closes read, {changed} new or changed")
