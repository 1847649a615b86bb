from __future__ import annotations

import psycopg
import typer

from ox_sidecar import environment
from ox_sidecar.config import ROOT, get_settings

from .common import AsJson, fail, say

app = typer.Typer(no_args_is_help=True, help="Demo data")


@app.command("seed")
def seed(as_json: AsJson = False) -> None:
    """Rewards and ads to play with (refused in production; idempotent)."""
    settings = get_settings()
    if settings.env == "production":
        raise fail("REFUSED_IN_PRODUCTION", "demo data is refused in production")
    with psycopg.connect(settings.database_url) as conn:
        # A development ENV against a production database is refused too.
        found = environment.of_database(conn)
        reason = environment.refusal(found, settings.env, settings.env_given)
        if reason:
            raise fail("ENVIRONMENT_MISMATCH", reason)
        conn.execute((ROOT / "data" / "demo_seed.sql").read_text())
    say("demo rewards and ads are in place", as_json, seeded=True)
