"""What every command group shares: the connection, errors, times, output."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from ox_sidecar.config import get_settings

KST = ZoneInfo("Asia/Seoul")
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    err_console.print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(1)


@contextmanager
def service_connection(autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """The operator's login, acting as the service role so the same grants apply:
    one transaction for the whole command unless `autocommit`."""
    settings = get_settings()
    try:
        conn = psycopg.connect(settings.database_url, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise fail(f"cannot reach the database ({settings.database_url}): {exc}") from exc
    try:
        with conn:
            conn.execute("set role oxp_service")
            yield conn
    except psycopg.Error as exc:
        if exc.sqlstate is None:
            raise fail(f"database: {exc}") from exc
        detail = exc.diag.message_detail
        raise fail(f"{exc.diag.message_primary}" + (f": {detail}" if detail else "")) from exc
    finally:
        conn.close()


def call(conn: psycopg.Connection, query: str, *args: Any) -> Any:
    row = conn.execute(query, args).fetchone()
    return None if row is None else row[0]


def parse_time(text: str) -> dt.datetime:
    """ISO 8601; a time without an offset is Korea time."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"not an ISO 8601 time: {text}") from exc
    return value if value.tzinfo else value.replace(tzinfo=KST)


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"not a date (YYYY-MM-DD): {text}") from exc


def emit(data: Any, as_json: bool, columns: list[str] | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        console.print("(nothing)")
        return
    cols = columns or list(rows[0].keys())
    table = Table(*cols)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in cols))
    console.print(table)


AsJson = Annotated[bool, typer.Option("--json", help="JSON output, for scripts")]
DayOrCurrent = Annotated[
    str | None, typer.Option("--day", help="Trading day (YYYY-MM-DD); default the current session")
]


def day_or_current(conn: psycopg.Connection, day: str | None) -> dt.date:
    """DAY as given, else the current session's (the open one, else the latest)."""
    if day:
        return parse_day(day)
    current = call(conn, "select (crypto.current_session()).trading_day")
    if current is None:
        raise fail("NO_SESSION: no session has opened yet")
    return current  # type: ignore[no-any-return]
