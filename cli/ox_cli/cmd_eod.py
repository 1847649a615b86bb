from __future__ import annotations

import json
from enum import StrEnum
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

from .common import AsJson, call, console, emit, err_console, fail, parse_day, service_connection

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
        emit(result, True)
    else:
        console.print(f"{result['read']} closes read, {result['changed']} new or changed")


class Provider(StrEnum):
    yfinance = "yfinance"
    stooq = "stooq"
    csv = "csv"


@app.command("fetch")
def fetch(
    day: Annotated[str, typer.Option(help="Trading day (New York date)")],
    provider: Annotated[
        Provider | None,
        typer.Option(help="Only this source; default EOD_PROVIDER then EOD_FALLBACK_PROVIDER"),
    ] = None,
    file: Annotated[Path | None, typer.Option(help="CSV file for --provider csv")] = None,
    as_json: AsJson = False,
) -> None:
    """Fetch the raw closes DAY still misses (and the previous trading day's)."""
    settings = get_settings()
    name = provider.value if provider else settings.eod_provider
    csv_file = file or settings.eod_csv_file
    # A source named here is the only one asked: the operator chose it.
    fallback = None if provider else settings.eod_fallback
    try:
        source = provider_named(name, csv_file, fallback, settings.stooq_url)
    except ValueError as exc:
        raise fail("VALIDATION_FAILED", f"EOD_PROVIDER: {exc}") from exc
    if name == "csv" and not csv_file.is_file():
        raise fail("VALIDATION_FAILED", f"no CSV file {csv_file} (--file or EOD_CSV_FILE)")
    with service_connection(autocommit=True) as conn:
        try:
            report = fetch_day(conn, source, parse_day(day))
        except PricesNotFinal as exc:
            raise fail("PRICES_MISSING", str(exc)) from exc
        except ProviderUnavailable as exc:
            raise fail("UNAVAILABLE", f"{source.name}: {exc}") from exc
        except CsvError as exc:
            raise fail("VALIDATION_FAILED", str(exc)) from exc
    if as_json:
        typer.echo(
            json.dumps({"trading_day": day, "loaded": report.loaded, "missing": report.missing})
        )
    else:
        missing = ", ".join(report.missing) or "none"
        console.print(f"{day}: {report.loaded} closes loaded, missing: {missing}", markup=False)
    if report.missing:
        raise typer.Exit(1)


@app.command("show")
def show(
    day: Annotated[str, typer.Option(help="Trading day (YYYY-MM-DD, New York date)")],
    as_json: AsJson = False,
) -> None:
    """DAY's closes, what is missing, and every fetch attempt.

    Each close with its source and fetch time; the closes DAY's settlement
    still needs (DAY's and the previous trading day's); the fetch job; and
    every attempt in crypto.eod_fetch_logs with its error.
    """
    with service_connection() as conn:
        report = call(conn, "select crypto.eod_day(%s)", parse_day(day))
    if as_json:
        emit(report, True)
        return
    job, missing = report["fetch_job"], report["missing"]
    job_text = (
        f"job {job['id']} {job['status']}, attempt {job['attempts']}/{job['max_attempts']}"
        if job
        else None
    )
    emit(
        {
            "trading_day": report["trading_day"],
            "previous_trading_day": report["previous_trading_day"],
            "close_at": report["close_at"],
            "final": report["final"],
            "fetch_job": job_text or "none",
            "missing": "; ".join(
                f"{day}: " + ", ".join(m["symbol"] for m in missing if m["trading_day"] == day)
                for day in dict.fromkeys(m["trading_day"] for m in missing)
            )
            or "none",
        },
        False,
    )
    emit(report["closes"], False, ["symbol", "close", "source", "fetched_at", "previous_close"])
    console.print("fetch attempts:")
    emit(report["attempts"], False, ["started_at", "provider", "status", "rows", "error"])
