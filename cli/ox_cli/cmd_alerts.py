"""`oxp alerts`: what needs a person, and resolving it with a reason."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import AsJson, call, emit, say, service_connection

app = typer.Typer(help="Alerts: open ones (or --all), and resolving one with a reason")

COLUMNS = ["id", "severity", "rule", "subject", "first_seen", "last_seen", "resolved_at", "details"]


@app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also those resolved in the last 7 days")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Open alerts, most severe and newest first."""
    if ctx.invoked_subcommand is not None:
        return
    with service_connection() as conn:
        found = call(conn, "select crypto.alerts_list(%s)", show_all)
    if not found and not as_json:
        say("no open alerts", False)
        return
    emit(found, as_json, COLUMNS)


@app.command("resolve")
def resolve(
    alert_id: Annotated[int, typer.Argument(help="The alert's id (oxp alerts)")],
    reason: Annotated[str, typer.Option(help="Why it needs nothing more (audited)")],
    as_json: AsJson = False,
) -> None:
    """Resolve an alert by hand. If its condition still holds, the next check opens a new one."""
    with service_connection() as conn:
        alert = call(conn, "select crypto.resolve_alert(%s, %s)", alert_id, reason)
    say(f"alert {alert['id']} ({alert['rule']}) resolved: {alert['resolution']}", as_json, **alert)
