from __future__ import annotations

import typer

from .common import AsJson, call, emit, fail, service_connection

app = typer.Typer(no_args_is_help=True, help="The daily schedule (what pg_cron runs)")


@app.command("tick")
def tick(as_json: AsJson = False) -> None:
    """Run every scheduled step that is due at the database clock."""
    with service_connection() as conn:
        result = call(conn, "select crypto.schedule_tick()")
    # Each step runs on its own: the others took effect even when one failed.
    failed = result.get("failed") or []
    if failed:
        steps = "; ".join(
            f"{f['step']} {f.get('trading_day') or ''}: {f['error']}"
            + (f" ({f['detail']})" if f.get("detail") else "")
            for f in failed
        )
        done = ", ".join(f"{k} {v}" for d in result.get("done", []) for k, v in d.items())
        raise fail("TICK_FAILED", f"run {result['run']}: {steps}; done: {done or 'nothing'}")
    emit(result, as_json)
