from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import AsJson, call, parse_time, say, service_connection

app = typer.Typer(
    no_args_is_help=True,
    help="The database clock crypto.now(): show it; set it (refused in production) or reset it",
)

OFFSET = """
(select (s.value #>> '{}')::double precision from crypto.settings as s
 where s.key = 'clock.offset_seconds')
"""
NOW = f"select crypto.kst(crypto.now()), {OFFSET}"


def _report(now: Any, offset: float, as_json: bool) -> None:
    shift = f" (shifted {offset:+.0f} s from the real time)" if offset else " (the real time)"
    say(f"clock: {now}{shift}", as_json, now=now, offset_seconds=offset)


@app.command("set")
def set_(
    at: Annotated[str, typer.Argument(help="ISO 8601 time; without an offset it is KST")],
    as_json: AsJson = False,
) -> None:
    """Shift crypto.now() so that it reads AT now, then runs on from there."""
    with service_connection() as conn:
        now = call(conn, "select crypto.kst(crypto.clock_set(%s))", parse_time(at))
        offset = call(conn, f"select {OFFSET}")
    _report(now, offset, as_json)


@app.command("reset")
def reset(as_json: AsJson = False) -> None:
    """Back to the real time."""
    with service_connection() as conn:
        now = call(conn, "select crypto.kst(crypto.clock_reset())")
        offset = call(conn, f"select {OFFSET}")
    _report(now, offset, as_json)


@app.command("show")
def show(as_json: AsJson = False) -> None:
    """What crypto.now() reads (KST), and how far it is shifted."""
    with service_connection() as conn:
        now, offset = conn.execute(NOW).fetchone()  # type: ignore[misc]
    _report(now, offset, as_json)
