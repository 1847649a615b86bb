from __future__ import annotations

from typing import Annotated

import typer

from .common import AsJson, call, console, emit, fail, say, service_connection

app = typer.Typer(no_args_is_help=True, help="The rewards inventory and redemptions")
REWARD_COLUMNS = [
    *("sku", "name", "cost_points", "stock", "available", "reserved", "issued", "active")
]


@app.command("add")
def add(
    sku: Annotated[str, typer.Argument(help="Stock-keeping unit, e.g. COFFEE-S")],
    name: Annotated[str, typer.Option(help="What the user sees")],
    cost: Annotated[int, typer.Option(help="Price in points")],
    stock: Annotated[int, typer.Option(help="Units in total (issued and reserved included)")],
    inactive: Annotated[bool, typer.Option("--inactive", help="Listed but not redeemable")] = False,
    as_json: AsJson = False,
) -> None:
    """Add a reward, or change one (its stock never below what is reserved or issued)."""
    with service_connection() as conn:
        reward = call(
            conn,
            "select crypto.upsert_reward(%s, %s, %s, %s, %s)",
            sku,
            name,
            cost,
            stock,
            not inactive,
        )
    emit(reward, as_json, REWARD_COLUMNS)


@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """The inventory: cost, stock, and what is available, reserved and issued."""
    with service_connection() as conn:
        rows = conn.execute(
            "select crypto.reward_json(r) from crypto.rewards_inventory as r order by r.sku"
        ).fetchall()
    emit([r for (r,) in rows], as_json, REWARD_COLUMNS)


@app.command("cancel")
def cancel(
    redemption_id: Annotated[int, typer.Argument(help="The redemption's id")],
    reason: Annotated[str, typer.Option(help="Kept on the redemption and in the audit log")] = (
        "cancelled by an admin"
    ),
    as_json: AsJson = False,
) -> None:
    """Cancel a redemption that is not issued: the points come back, the unit is freed."""
    with service_connection() as conn:
        redemption = call(conn, "select crypto.cancel_redemption(%s, %s)", redemption_id, reason)
    say(f"redemption {redemption['id']}: {redemption['status']}", as_json, **redemption)


@app.command("resolve")
def resolve(
    redemption_id: Annotated[int, typer.Argument(help="The redemption's id (status UNKNOWN)")],
    issued: Annotated[
        str | None,
        typer.Option("--issued", metavar="REF", help="The vendor issued it: its reference"),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="The vendor did not issue it: refund the points")
    ] = False,
    note: Annotated[str | None, typer.Option(help="Why, for the audit log")] = None,
    as_json: AsJson = False,
) -> None:
    """End a redemption the vendor never answered for (UNKNOWN), with what the
    vendor says: --issued REF, or --failed (the points come back, once)."""
    if (issued is None) == (not failed):
        raise fail("VALIDATION_FAILED", "give exactly one of --issued REF or --failed")
    with service_connection() as conn:
        redemption = call(
            conn,
            "select crypto.resolve_redemption(%s, %s, %s, %s)",
            redemption_id,
            "ISSUED" if issued is not None else "FAILED",
            issued,
            note,
        )
    say(f"redemption {redemption['id']}: {redemption['status']}", as_json, **redemption)


REDEMPTION_COLUMNS = ["id", "email", "sku", "cost_points", "status", "created_at", "error"]


@app.command("redemptions")
def redemptions(
    status: Annotated[
        str | None,
        typer.Option(help="Only this status: REQUESTED, UNKNOWN, ISSUED, FAILED or CANCELLED"),
    ] = None,
    limit: Annotated[int, typer.Option(help="Redemptions per page (1-100)")] = 50,
    cursor: Annotated[int | None, typer.Option(help="The next_cursor of the previous page")] = None,
    as_json: AsJson = False,
) -> None:
    """Redemptions newest first, with the user's email and any vendor error."""
    with service_connection() as conn:
        page = call(
            conn,
            "select crypto.redemptions_list(%s, %s, %s)",
            status.upper() if status else None,
            cursor,
            limit,
        )
    if as_json:
        emit(page, True)
        return
    emit(page["items"], False, REDEMPTION_COLUMNS)
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")
