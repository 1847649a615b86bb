from __future__ import annotations

from typing import Annotated

import typer

from .common import AsJson, call, console, emit, err_console, returned_problem, service_connection

app = typer.Typer(no_args_is_help=True, help="Points: a user's ledger, admin adjustments")


@app.command("ledger")
def ledger(
    email: Annotated[str, typer.Argument(help="The user's email")],
    limit: Annotated[int, typer.Option(help="Entries per page (1-100)")] = 50,
    cursor: Annotated[int | None, typer.Option(help="The next_cursor of the previous page")] = None,
    as_json: AsJson = False,
) -> None:
    """A user's ledger entries, newest first: amount, balance after, cause."""
    with service_connection() as conn:
        page = call(conn, "select crypto.user_ledger(%s, %s, %s)", email, cursor, limit)
    if as_json:
        emit(page, True)
        return
    columns = ["id", "created_at", "amount", "balance_after", "reason", "cause", "memo"]
    emit(page["items"], False, columns)
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")


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
        typer.Option(
            help="Idempotency key; default one derived from the arguments and the"
            " KST day, so the same command twice in a day pays once"
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Credit or debit a user's points (never below zero), audited."""
    with service_connection() as conn:
        derived = None
        if key is None:
            derived = call(conn, "select crypto.adjustment_key(%s, %s, %s)", email, amount, reason)
            key = derived["key"]
        replay = call(
            conn,
            "select exists (select from crypto.ledger_transfer_keys where idempotency_key = %s)",
            f"adjust:{key}",
        )
        query = "select crypto.adjust_points(%s, %s, %s, %s)"
        result = call(conn, query, email, amount, reason, key)
        problem = result.get("problem") and returned_problem(conn, result["problem"])
    note = None
    if derived:
        note = (
            f"key {key}, from the arguments and the KST day {derived['day']}: the same"
            " command again today does not pay twice (--key chooses a key)"
        )
    if replay:
        note = f"already applied under key {key}: nothing paid again"
    if problem:
        # Committed, not rolled back: the refusal is kept under the key, so a
        # retry of this command gives the same answer.
        if note and not as_json:
            err_console.print(note, markup=False, highlight=False)
        raise problem
    if as_json:
        emit({**result, "key": key, "key_derived": derived is not None, "replay": replay}, True)
        return
    emit(result, False, ["email", "amount", "balance_after", "transfer_id"])
    if note:
        err_console.print(note, markup=False, highlight=False)
