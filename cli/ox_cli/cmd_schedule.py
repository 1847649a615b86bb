from __future__ import annotations

import json

import typer

from .common import AsJson, call, console, service_connection

app = typer.Typer(no_args_is_help=True, help="The daily schedule (what pg_cron runs)")


@app.command("tick")
def tick(as_json: AsJson = False) -> None:
    """Run every scheduled step that is due at the database clock."""
    with service_connection() as conn:
        result = call(conn, "select crypto.schedule_tick()")
    if as_json:
        typer.echo(json.dumps(result))
    else:
        console.print(result)
    if result.get("error"):
        raise typer.Exit(1)
