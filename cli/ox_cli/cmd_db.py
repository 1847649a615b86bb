from __future__ import annotations

import psycopg
import typer

from ox_sidecar.config import get_settings
from ox_sidecar.environment import EnvironmentMismatch
from ox_sidecar.migrate import MigrationError, migrate, reset

from .common import AsJson, Yes, confirm, fail, say

app = typer.Typer(no_args_is_help=True, help="Migrations")


@app.command("migrate")
def migrate_cmd(as_json: AsJson = False) -> None:
    """Apply new versioned migrations, then re-apply every repeatable one."""
    settings = get_settings()
    try:
        report = migrate(settings.database_url, settings.env, environment_given=settings.env_given)
    except EnvironmentMismatch as exc:
        raise fail("ENVIRONMENT_MISMATCH", f"migrate is refused: {exc}") from exc
    except (MigrationError, psycopg.Error) as exc:
        raise fail("MIGRATION_FAILED", " ".join(str(exc).split())) from exc
    say(
        f"applied {len(report.applied)} versioned "
        f"({', '.join(report.applied) or 'none new'}), {len(report.repeatable)} repeatable",
        as_json,
        applied=report.applied,
        repeatable=len(report.repeatable),
    )


@app.command("reset")
def reset_cmd(yes: Yes = False, as_json: AsJson = False) -> None:
    """Drop everything and migrate from scratch (refused in production)."""
    settings = get_settings()
    confirm(
        "Drop every OX Predict table in this database?",
        yes,
        "reset drops every OX Predict table: pass --yes",
    )
    try:
        report = reset(settings.database_url, settings.env)
    except (MigrationError, psycopg.Error) as exc:
        raise fail("MIGRATION_FAILED", " ".join(str(exc).split())) from exc
    say(
        f"reset; applied {len(report.applied)} versioned migrations",
        as_json,
        applied=report.applied,
    )
