"""`oxp metrics`: the business metrics of trading days, from the rollup."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from .common import AsJson, call, emit, parse_day, service_connection

COLUMNS = [
    "trading_day",
    "active",
    "participants",
    "participation",
    "predictions",
    "won/lost/void",
    "win_rate",
    "issued",
    "redeemed",
    "outstanding",
]


def _row(item: dict[str, Any]) -> dict[str, Any]:
    """One day for a person: the counts that belong together side by side."""
    issued = item["points_issued"]
    return {
        "trading_day": item["trading_day"],
        "active": item["active_users"],
        "participants": item["participants"],
        "participation": item["participation_rate"],
        "predictions": item["predictions"],
        "won/lost/void": f"{item['wins']}/{item['losses']}/{item['voids']}"
        + (f" (+{item['unsettled']} open)" if item["unsettled"] else ""),
        "win_rate": item["win_rate"],
        "issued": f"{issued['settlement']} + ads {issued['ads']} + adj {issued['adjustments']}",
        "redeemed": item["points_spent"]["redemptions"] - item["points_spent"]["refunds"],
        "outstanding": item["points_outstanding"],
    }


def metrics(
    since: Annotated[
        str | None, typer.Option("--from", help="First trading day (default: 30 days ago)")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Last trading day (default: today, KST)")
    ] = None,
    refresh: Annotated[
        bool, typer.Option(help="Run the rollup first (pg_cron runs it every 10 minutes)")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Per trading day: active users, participation, outcomes, points issued, spent and held."""
    with service_connection() as conn:
        # Today by the game's clock, which tests and drills may shift.
        today = call(conn, "select (crypto.now() at time zone 'Asia/Seoul')::date")
        last = parse_day(until) if until else today
        first = parse_day(since) if since else last - dt.timedelta(days=30)
        if refresh:
            call(conn, "select crypto.rollup_metrics()")
        result = call(conn, "select crypto.daily_metrics_range(%s, %s)", first, last)
    items = result["items"]
    if as_json:
        emit(items, True)
    else:
        emit([_row(i) for i in items], False, COLUMNS)
