from __future__ import annotations

import typer

from .common import AsJson, console, emit, service_connection

app = typer.Typer(no_args_is_help=True, help="Invariants of points, stock and settlement")


@app.command("check")
def check(as_json: AsJson = False) -> None:
    """List every violation; exit 0 only when there is none."""
    with service_connection() as conn:
        rows = conn.execute(
            "select check_name, subject, details from crypto.integrity_violations()"
        ).fetchall()
    found = [{"check": c, "subject": s, "details": d} for c, s, d in rows]
    if as_json:
        emit(found, as_json)
    elif found:
        emit(found, False)
    else:
        console.print("ok: every invariant holds")
    if found:
        raise typer.Exit(1)
