from __future__ import annotations

from typing import Annotated

import typer

from .common import AsJson, call, console, emit, err_console, parse_time, service_connection

app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log")


@app.command("verify")
def verify(as_json: AsJson = False) -> None:
    """Seal, then check the audit chain end to end.

    Exit 1 naming the first row that does not verify.
    """
    with service_connection(autocommit=True) as conn:
        call(conn, "select crypto.audit_seal()")
        result = call(conn, "select crypto.audit_verify()")
    if as_json:
        emit(result, True)
    elif result["ok"]:
        pending = f", {result['pending']} still in flight" if result["pending"] else ""
        console.print(f"ok: {result['rows_checked']} rows, the chain is intact{pending}")
    else:
        bad = result["first_bad"]
        err_console.print(f"audit row {bad['id']}: {bad['problem']}", markup=False)
    if not result["ok"]:
        raise typer.Exit(1)


@app.command("search")
def search(
    action: Annotated[str | None, typer.Option(help="e.g. points.adjust, user.disabled")] = None,
    actor: Annotated[str | None, typer.Option(help="e.g. user:<id> or role:oxp_operator")] = None,
    subject: Annotated[str | None, typer.Option(help="What the row is about")] = None,
    since: Annotated[str | None, typer.Option("--from", help="From this time (KST)")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Before this time")] = None,
    limit: Annotated[int, typer.Option(help="Rows per page, 1 to 100")] = 50,
    cursor: Annotated[int | None, typer.Option(help="next_cursor of the page before")] = None,
    as_json: AsJson = False,
) -> None:
    """Audit rows, newest first, as GET /admin/audit pages them."""
    with service_connection() as conn:
        page = call(
            conn,
            "select crypto.audit_search(%s, %s, %s, %s, %s, %s, %s)",
            action,
            actor,
            subject,
            parse_time(since) if since else None,
            parse_time(until) if until else None,
            limit,
            cursor,
        )
    if as_json:
        emit(page, True)
        return
    emit(page["items"], False, ["id", "at", "actor", "action", "subject", "details"])
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")
