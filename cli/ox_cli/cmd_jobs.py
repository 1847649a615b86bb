from __future__ import annotations

from typing import Annotated

import typer

from .common import AsJson, call, emit, say, service_connection

app = typer.Typer(no_args_is_help=True, help="The worker's queue: list, retry, cancel")

JobId = Annotated[int, typer.Argument(help="The job's id (oxp jobs list)")]
COLUMNS = ["id", "kind", "status", "attempts", "max_attempts", "run_after", "last_error"]


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option(help="Only this status: queued, running, done, dead, cancelled")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
    as_json: AsJson = False,
) -> None:
    """Jobs newest first, with attempts and the last error."""
    with service_connection() as conn:
        jobs = call(conn, "select crypto.jobs_list(%s, %s)", status, limit)
    emit(jobs, as_json, COLUMNS)


@app.command("retry")
def retry(job_id: JobId, as_json: AsJson = False) -> None:
    """Run a dead, cancelled or waiting job now; audited.

    A job that used all its attempts gets one more.
    """
    with service_connection() as conn:
        job = call(conn, "select crypto.job_retry(%s)", job_id)
    say(f"job {job['id']} ({job['kind']}): {job['status']}, runs now", as_json, **job)


@app.command("cancel")
def cancel(
    job_id: JobId,
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log")] = (
        "cancelled by an operator"
    ),
    as_json: AsJson = False,
) -> None:
    """Never run a queued or dead job again; audited.

    A reward's vendor call is cancelled with its redemption instead
    (oxp rewards cancel), which gives the points back.
    """
    with service_connection() as conn:
        job = call(conn, "select crypto.job_cancel(%s, %s)", job_id, reason)
    say(f"job {job['id']} ({job['kind']}): {job['status']}", as_json, **job)
