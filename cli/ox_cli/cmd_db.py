from __future__ import annotations

import psycopg
import typer

from ox_sidecar.config import get_settings
from ox_sidecar.migrate import MigrationError, migrate, reset

from .common import console, fail

app = typer.Typer(no_args_is_help=True, help="Migrations")


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply new versioned migrations, then re-apply every repeatable one."""
    settings = get_settings()
    try:
        report = migrate(settings.database_url, settings.env)
    except (MigrationError, psycopg.Error) as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"applied {len(report.applied)} versioned "
        f"({', '.join(report.applied) or 'none new'}), {len(report.repeatable)} repeatable"
    )


@app.command("reset")
def reset_cmd(
    yes: bool = typer.Option(False, "--yes", help="Do not ask"),
) -> None:
    """Drop everything and migrate from scratch (refused in production)."""
    settings = get_settings()
    if not yes:
        typer.confirm("Drop every OX Predict table in this database?", abort=True)
    try:
        report = reset(settings.database_url, settings.env)
    except (MigrationError, psycopg.Error) as exc:
        raise fail(str(exc)) from exc
    console.print(f"reset; applied {len(report.applied)} versioned migrations")
