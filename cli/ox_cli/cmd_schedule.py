from __future__ import annotations

import typer

from .common import AsJson, call, emit, fail, service_connection

app = typer.Typer(no_args_is_help=True, help="The daily schedule (what pg_cron runs)")


@app.command("tick")
def tick(as_json: AsJson = False) -> None:
    """Run every scheduled step that is due at the database clock."""
    with service_connection() as conn:
        result = call(conn, "select crypto.schedule_tick()")
    if result.get("error"):
        raise fail("TICK_FAILED", f"run {result['run']}: {result['error']}")
    emit(result, as_json)
