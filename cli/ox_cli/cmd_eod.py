from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ox_sidecar.config import get_settings
from ox_sidecar.eod import (
    CsvError,
    PricesNotFinal,
    ProviderUnavailable,
    fetch_day,
    provider_named,
    read_closes_csv,
)

from .common import AsJson, call, console, fail, parse_day, service_connection

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


@app.command("fetch")
def fetch(
    day: Annotated[str, typer.Option(help="Trading day (New York date)")],
    provider: Annotated[
        str | None, typer.Option(help="yfinance or csv; default EOD_PROVIDER (yfinance)")
    ] = None,
    file: Annotated[Path | None, typer.Option(help="CSV file for --provider csv")] = None,
    as_json: AsJson = False,
) -> None:
    """Fetch the raw closes DAY still misses (and the previous trading day's)."""
    settings = get_settings()
    source = provider_named(provider or settings.eod_provider, file or settings.eod_csv_file)
    with service_connection(autocommit=True) as conn:
        try:
            report = fetch_day(conn, source, parse_day(day))
        except (PricesNotFinal, ProviderUnavailable, CsvError) as exc:
            raise fail(str(exc)) from exc
    if as_json:
        typer.echo(
            json.dumps({"trading_day": day, "loaded": report.loaded, "missing": report.missing})
        )
    else:
        console.print(f"{day}: {report.loaded} closes loaded, missing: {report.missing or 'none'}")
    if report.missing:
        raise typer.Exit(1)
