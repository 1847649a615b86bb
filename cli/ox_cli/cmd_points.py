from __future__ import annotations

import uuid
from typing import Annotated

import typer

from .common import AsJson, call, emit, err_console, fail, service_connection

app = typer.Typer(no_args_is_help=True, help="Points: admin adjustments through the ledger")


@app.command(
    "adjust",
    context_settings={"ignore_unknown_options": True},  # so that AMOUNT may be negative
)
def adjust(
    email: Annotated[str, typer.Argument(help="The user's email")],
    amount: Annotated[int, typer.Argument(help="Points to add (positive) or take (negative)")],
    reason: Annotated[str, typer.Option(help="Why; kept in the ledger and the audit log")],
    key: Annotated[
        str | None,
        typer.Option(help="Idempotency key; repeat a command with the same key to retry it safely"),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Credit or debit a user's points (never below zero), audited."""
    if key is None:
        key = str(uuid.uuid4())
        err_console.print(f"idempotency key: {key} (pass --key {key} to retry this adjustment)")
    with service_connection() as conn:
        query = "select crypto.adjust_points(%s, %s, %s, %s)"
        result = call(conn, query, email, amount, reason, key)
        problem = result.get("problem")
        if problem:
            code = call(
                conn, "select code from crypto.error_codes where sqlstate = %s", problem["sqlstate"]
            )
    if problem:
        # Committed, not rolled back: the refusal is kept under the key, so a
        # retry of this command gives the same answer.
        raise fail(f"{code}: {problem['detail']}")
    emit(result, as_json)
