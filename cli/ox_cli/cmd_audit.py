from __future__ import annotations

import typer

from .common import AsJson, call, console, emit, err_console, service_connection

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
