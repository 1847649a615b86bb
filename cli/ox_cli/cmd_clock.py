from __future__ import annotations

import typer

from .common import call, console, parse_time, service_connection

app = typer.Typer(
    no_args_is_help=True,
    help="The database clock crypto.now(): show it; set or reset it (refused in production)",
)


@app.command("set")
def set_(at: str = typer.Argument(help="ISO 8601 time; without an offset it is KST")) -> None:
    """Shift crypto.now() so that it reads AT now, then runs on from there."""
    with service_connection() as conn:
        now = call(conn, "select crypto.kst(crypto.clock_set(%s))", parse_time(at))
    console.print(f"clock: {now}")


@app.command("reset")
def reset() -> None:
    """Back to the real time."""
    with service_connection() as conn:
        now = call(conn, "select crypto.kst(crypto.clock_reset())")
    console.print(f"clock: {now}")


@app.command("show")
def show() -> None:
    """What crypto.now() reads now, in KST."""
    with service_connection() as conn:
        now = call(conn, "select crypto.kst(crypto.now())")
    console.print(f"clock: {now}")
