"""`oxp`: the operator's command line."""

from __future__ import annotations

from typing import Annotated

import typer

from . import (
    cmd_alerts,
    cmd_audit,
    cmd_calendar,
    cmd_clock,
    cmd_db,
    cmd_demo,
    cmd_eod,
    cmd_integrity,
    cmd_jobs,
    cmd_keys,
    cmd_metrics,
    cmd_points,
    cmd_rewards,
    cmd_run,
    cmd_schedule,
    cmd_session,
    cmd_settings,
    cmd_universe,
    cmd_users,
)
from .common import OPERATOR, OxpGroup

app = typer.Typer(
    cls=OxpGroup,
    no_args_is_help=True,
    help="OX Predict operations. Every command takes --help; those that print"
    " take --json. Errors: one line on stderr (error: CODE: detail), or"
    ' {"error": {"code", "detail"}} on stdout with --json; the exit code is'
    " not 0. Times without an offset are KST.",
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    operator: Annotated[
        str | None,
        typer.Option(
            "--as",
            envvar="OXP_OPERATOR",
            help="Your admin email, for the audit log (default: your OS user)",
        ),
    ] = None,
) -> None:
    """Who runs the command is recorded with each change it audits."""
    OPERATOR["as"] = operator


app.add_typer(cmd_db.app, name="db")
app.add_typer(cmd_demo.app, name="demo")
app.add_typer(cmd_calendar.app, name="calendar")
app.add_typer(cmd_clock.app, name="clock")
app.add_typer(cmd_schedule.app, name="schedule")
app.add_typer(cmd_session.app, name="session")
app.add_typer(cmd_universe.app, name="universe")
app.add_typer(cmd_eod.app, name="eod")
app.add_typer(cmd_rewards.app, name="rewards")
app.add_typer(cmd_points.app, name="points")
app.add_typer(cmd_users.app, name="users")
app.add_typer(cmd_jobs.app, name="jobs")
app.add_typer(cmd_settings.app, name="settings")
app.add_typer(cmd_integrity.app, name="integrity")
app.add_typer(cmd_audit.app, name="audit")
app.add_typer(cmd_keys.app, name="keys")
app.add_typer(cmd_alerts.app, name="alerts")
app.command("metrics")(cmd_metrics.metrics)
app.command("serve")(cmd_run.serve)
app.command("worker")(cmd_run.worker)
