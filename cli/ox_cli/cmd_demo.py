from __future__ import annotations

import psycopg
import typer

from ox_sidecar.config import ROOT, get_settings

from .common import console, fail

app = typer.Typer(no_args_is_help=True, help="Demo data")


@app.command("seed")
def seed() -> None:
    """Rewards and ads to play with (refused in production; idempotent)."""
    settings = get_settings()
    if settings.env == "production":
        raise fail("demo data is refused in production")
    with psycopg.connect(settings.database_url) as conn:
        conn.execute((ROOT / "data" / "demo_seed.sql").read_text())
    console.print("demo rewards and ads are in place")
