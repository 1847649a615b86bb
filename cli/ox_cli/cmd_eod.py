from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from psycopg.types.json import Jsonb

from ox_sidecar.config import get_settings
from ox_sidecar.eod import (
    CsvError,
    PricesNotFinal,
    ProviderUnavailable,
    fetch_day,
    provider_named,
    read_csv_rows,
)

from .common import AsJson, call, console, err_console, fail, parse_day, service_connection

app = typer.Typer(no_args_is_help=True, help="End-of-day closes")


@app.command("load")
def load(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV: trading_day,symbol,close")
    ],
    as_json: AsJson = False,
) -> None:
    """Load raw closes from a CSV, all or nothing: any refused row (a day not yet
    closed in New York, not a trading day, a symbol twice, a close a settlement
    already read) is named with its line, and none of the file is loaded."""
    try:
        rows = read_csv_rows(file)
    except CsvError as exc:
        raise fail(str(exc)) from exc
    with service_connection() as conn:
        problems = conn.execute(
            "select line, code, detail from crypto.eod_prices_problems(%s)", (Jsonb(rows),)
        ).fetchall()
        if problems:
            summary = f"{len(problems)} of {len(rows)} rows refused, nothing loaded"
            if as_json:
                refused = [{"line": n, "code": c, "detail": d} for n, c, d in problems]
                error = {"code": problems[0][1], "detail": summary, "rows": refused}
                typer.echo(json.dumps({"error": error}))
                raise typer.Exit(1)
            for line, code, detail in problems:
                err_console.print(
                    f"{file.name}:{line}: {code}: {detail}", markup=False, soft_wrap=True
                )
            raise fail(summary)
        result = call(
            conn, "select crypto.load_eod_prices(%s, %s)", Jsonb(rows), f"csv:{file.name}"
        )
    if as_json:
        typer.echo(json.dumps(result))
    else:
        console.print(f"{result['read']} closes read, {result['changed']} new or changed")


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
