from __future__ import annotations

from typing import Annotated

import typer

from .common import AsJson, call, console, emit, service_connection

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
) -> None:
    """Cancel a redemption that is not issued: the points come back, the unit is freed."""
    with service_connection() as conn:
        redemption = call(conn, "select crypto.cancel_redemption(%s, %s)", redemption_id, reason)
    console.print(f"redemption {redemption['id']}: {redemption['status']}")
