"""What every command group shares: the connection, errors, times, output."""

from __future__ import annotations

import datetime as dt
import decimal
import getpass
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import psycopg
import typer
from psycopg.types.json import set_json_loads
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from ox_sidecar import environment, problems
from ox_sidecar.config import Settings, get_settings

KST = ZoneInfo("Asia/Seoul")
# Not at a terminal: COLUMNS if set, else wide rows that a log keeps whole.
_columns = os.environ.get("COLUMNS", "")
console = Console(
    width=None if sys.stdout.isatty() else int(_columns) if _columns.isdigit() else 200
)
err_console = Console(stderr=True)


class CliError(Exception):
    """A refusal or failure with a stable code (crypto.error_codes' names);
    OxpGroup prints it once, as one line or as JSON, and exits non-zero."""

    def __init__(self, code: str, detail: str, exit_code: int = 1) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.exit_code = exit_code


def fail(code: str, detail: str | None = None) -> CliError:
    """`raise fail("NOT_FOUND", "No user x")`. A single argument is a detail
    of bad input (VALIDATION_FAILED), as older commands call it."""
    if detail is None:
        return CliError("VALIDATION_FAILED", code)
    return CliError(code, detail)


def print_error(code: str, detail: str, as_json: bool) -> None:
    """`{"error": {...}}` on stdout with --json, else one line on stderr."""
    if as_json:
        typer.echo(json.dumps({"error": {"code": code, "detail": detail}}))
    else:
        typer.echo(f"error: {code}: {' '.join(detail.split())}", err=True)


def database_error(exc: psycopg.Error, conn: psycopg.Connection | None = None) -> CliError:
    """A database error named as the API names it (problems.py, from
    crypto.error_codes): our functions' DETAIL, or the title and the
    server's message for the others (the operator may see SQL's words)."""
    sqlstate = exc.sqlstate
    if sqlstate is None:
        return CliError("UNAVAILABLE", f"database: {' '.join(str(exc).split())}")
    if not problems.error_codes_loaded() and conn is not None and not conn.closed:
        with suppress(psycopg.Error):
            problems.load_error_codes_sync(conn)
    message = exc.diag.message_primary or str(exc)
    if not problems.is_mapped(sqlstate):
        # Our functions raise with the stable code as the message.
        code = message if sqlstate.startswith("OX") else "INTERNAL"
        return CliError(code, exc.diag.message_detail or message)
    problem = problems.from_database(exc, "oxp_operator")
    if sqlstate.startswith("OX"):
        return CliError(problem.entry.code, problem.detail or problem.entry.title)
    return CliError(problem.entry.code, f"{problem.entry.title}: {message}")


def returned_problem(conn: psycopg.Connection, problem: dict[str, Any]) -> CliError:
    """A refusal a function returned (and kept) instead of raising."""
    if not problems.error_codes_loaded():
        problems.load_error_codes_sync(conn)
    sqlstate, detail = problem["sqlstate"], problem.get("detail")
    if not problems.is_mapped(sqlstate):
        return CliError("INTERNAL", f"{sqlstate}: {detail}")
    mapped = problems.from_sqlstate(sqlstate, detail)
    return CliError(mapped.entry.code, mapped.detail or mapped.entry.title)


# Who runs these commands, for the audit log: `oxp --as EMAIL` (an admin's)
# or the operating system's user. Set by the root command's callback.
OPERATOR: dict[str, str | None] = {"as": None}


def _name_the_operator(conn: psycopg.Connection) -> None:
    """Every audit row this connection writes names the person, not only
    the database login (crypto.current_actor reads oxp.operator)."""
    email = OPERATOR["as"]
    # Its own transaction, ended here: the command's own comes after.
    with conn.transaction():
        if email is not None:
            row = conn.execute(
                "select role::text, id from crypto.users where email = lower(btrim(%s))", (email,)
            ).fetchone()
            if row is None or row[0] != "admin":
                raise fail("NOT_AN_ADMIN", f"--as names an admin's email; {email} is not one")
            name = f"user:{row[1]}"  # the audit log keeps ids, never emails
        else:
            try:
                name = getpass.getuser()
            except (KeyError, OSError):  # a container's uid with no passwd entry
                name = f"uid:{os.getuid()}"
        conn.execute("select set_config('oxp.operator', %s, false)", (name,))


@contextmanager
def service_connection(
    autocommit: bool = False, settings: Settings | None = None
) -> Iterator[psycopg.Connection]:
    """The operator's login, acting as the operator role (oxp_operator: the
    worker's grants and those only an operator has, such as promoting an
    admin, adjusting points, shifting the clock): one transaction for the
    whole command unless `autocommit`. `settings`: the owner's steps pass
    theirs (config.OwnerSettings), which need no signing key."""
    settings = settings or get_settings()
    try:
        conn = psycopg.connect(settings.database_url, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise fail(
            "UNAVAILABLE", f"cannot reach the database ({settings.database_url}): {exc}"
        ) from exc
    # Exact numbers (closes, changes): Decimal, never float; --json writes
    # them as decimal strings.
    set_json_loads(partial(json.loads, parse_float=decimal.Decimal), conn)
    reason = environment.refusal(environment.of_database(conn), settings.env, settings.env_given)
    if reason:
        conn.close()
        raise fail("ENVIRONMENT_MISMATCH", reason)
    try:
        _name_the_operator(conn)
    except CliError:
        conn.close()
        raise
    # What oxp_operator's own login gets (plpgsql/00_login_idle_limits.sql):
    # this session logs in as DATABASE_URL's user, and a role's settings are
    # its login's. In a transaction of its own, as the naming's: a statement
    # outside one would open the implicit transaction that the command's
    # own would then only nest in.
    with conn.transaction():
        conn.execute("set idle_in_transaction_session_timeout = '15min'")
    try:
        if autocommit:
            conn.execute("set role oxp_operator")
            yield conn
        else:
            with conn.transaction():
                conn.execute("set role oxp_operator")
                yield conn
    except psycopg.Error as exc:
        # Still open (unlike `with conn`), so the error codes can be read.
        raise database_error(exc, conn) from exc
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
        raise fail("VALIDATION_FAILED", f"not an ISO 8601 time: {text}") from exc
    return value if value.tzinfo else value.replace(tzinfo=KST)


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise fail("VALIDATION_FAILED", f"not a date (YYYY-MM-DD): {text}") from exc


def cell(value: Any) -> str:
    """A value as a person reads it: JSON for lists and objects, never a repr."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _json_default(value: Any) -> str:
    """Decimals as exact decimal strings (never 1E-5), dates as ISO text."""
    return format(value, "f") if isinstance(value, decimal.Decimal) else str(value)


def to_json(data: Any) -> str:
    return json.dumps(data, default=_json_default)


def emit(data: Any, as_json: bool, columns: list[str] | None = None) -> None:
    """JSON for scripts; for people a table, or one field a line for a record."""
    if as_json:
        typer.echo(to_json(data))
        return
    if isinstance(data, dict):
        record = Table("field", "value", show_header=False, box=None, pad_edge=False)
        for key in columns or list(data):
            record.add_row(key, cell(data.get(key)))
        console.print(record)
        return
    if not data:
        console.print("(nothing)")
        return
    cols = columns or list(data[0].keys())
    table = Table(*cols)
    for row in data:
        table.add_row(*(cell(row.get(c)) for c in cols))
    console.print(table)


def say(message: str, as_json: bool, **data: Any) -> None:
    """A one-line outcome for people, or its data as JSON."""
    if as_json:
        typer.echo(to_json(data))
    else:
        console.print(message, markup=False, highlight=False)


def confirm(question: str, yes: bool, refusal: str) -> None:
    """Destructive steps ask at a terminal and refuse elsewhere unless --yes."""
    if yes:
        return
    if sys.stdin.isatty() and sys.stdout.isatty():
        if typer.confirm(question, default=False):
            return
        raise fail("CONFIRMATION_REQUIRED", "not confirmed; nothing changed")
    raise fail("CONFIRMATION_REQUIRED", refusal)


AsJson = Annotated[bool, typer.Option("--json", help="JSON output, for scripts")]
Yes = Annotated[bool, typer.Option("--yes", help="Do not ask; needed when not at a terminal")]
DayOrCurrent = Annotated[
    str | None, typer.Option("--day", help="Trading day (YYYY-MM-DD); default the current session")
]


def day_or_current(conn: psycopg.Connection, day: str | None) -> dt.date:
    """DAY as given, else the current session's (the open one, else the latest)."""
    if day:
        return parse_day(day)
    current = call(conn, "select (crypto.current_session()).trading_day")
    if current is None:
        raise fail("NO_SESSION", "no session has opened yet")
    return current  # type: ignore[no-any-return]


class OxpGroup(TyperGroup):
    """The root command: every error leaves as `error: CODE: detail` on
    stderr, or as {"error": {"code", "detail"}} on stdout when --json was
    given; usage errors too, and never a traceback (OXP_DEBUG=1 shows one)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
        try:
            code = super().main(
                args=argv,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = code if isinstance(code, int) else 0
        except CliError as exc:
            print_error(exc.code, exc.detail, as_json)
            code = exc.exit_code
        except typer.TyperException as exc:  # usage errors: a bad option or argument
            code = exc.exit_code
            # Help for a bare group was printed already (typer skips it too).
            if type(exc).__name__ != "NoArgsIsHelpError":
                ctx = getattr(exc, "ctx", None)
                hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
                message = exc.format_message().replace("Value error, ", "")
                print_error("VALIDATION_FAILED", message + hint, as_json)
        except typer.Abort:
            print_error("CONFIRMATION_REQUIRED", "aborted; nothing changed", as_json)
            code = 1
        except psycopg.Error as exc:
            error = database_error(exc)
            print_error(error.code, error.detail, as_json)
            code = 1
        except Exception as exc:
            if os.environ.get("OXP_DEBUG"):
                raise
            detail = f"{type(exc).__name__}: {exc} (OXP_DEBUG=1 shows more)"
            print_error("INTERNAL", detail, as_json)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code
