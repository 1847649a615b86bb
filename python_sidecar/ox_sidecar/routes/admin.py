"""/admin/* and the metrics reports: an admin token (password + code)
or 403 before anything else is looked at; one SQL function each."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import JSONResponse, Response

from ..db import call_api, read_api
from ..deps import Admin, Caller, Cursor, Limit, Pool, RequiredIdempotencyKey, raw_json
from .schemas import AdminOut, AdminRows, MetricsOut, answers

router = APIRouter(tags=["admin"])


class CloseIn(BaseModel):
    trading_day: dt.date = Field(description="New York date of the close")
    symbol: str = Field(min_length=1, max_length=10, pattern=r"^[A-Za-z][A-Za-z0-9.\-]*$")
    close: Decimal = Field(gt=0, lt=Decimal("1e14"), description="Raw official close")


def example(value: dict[str, Any], **schema: Any) -> ConfigDict:
    """A request body's example in /openapi.json (for the reader, and the
    first valid case a schema-driven client such as schemathesis sends),
    with any rule across fields the schema states beside it."""
    return ConfigDict(json_schema_extra={"examples": [value], **schema})


_CLOSE = {"trading_day": "2026-11-23", "symbol": "AAPL", "close": "100"}
_REASON = "the exchange confirmed the official close"


class CorrectionIn(BaseModel):
    model_config = example({"trading_day": "2026-11-23", "closes": [_CLOSE], "reason": _REASON})

    trading_day: dt.date = Field(description="The settled session (New York date) to correct")
    closes: list[CloseIn] = Field(min_length=1, max_length=1000)
    reason: str = Field(min_length=3, max_length=500, description="Shown to players and auditors")


Symbol = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9.\-]{0,9}$")]
# SQL counts a reason's length with the spaces around it trimmed: at least
# 3 characters that do not start or end with a space, in the schema too.
Reason = Annotated[
    str,
    Field(
        min_length=3,
        max_length=500,
        pattern=r"^ *[^ ][\s\S]+[^ ] *$",
        description="Audited; 3 to 500 characters, spaces around not counted",
    ),
]


class UniverseIn(BaseModel):
    model_config = example({"trading_day": "2026-11-25", "symbols": ["AAPL", "MSFT"]})

    trading_day: dt.date
    # Each symbol once (SQL refuses a repeat, 422): said in the schema too.
    symbols: list[Symbol] = Field(
        min_length=1, max_length=100, json_schema_extra={"uniqueItems": True}
    )


class InventoryIn(BaseModel):
    """A new SKU needs name, cost_points and stock; for one that exists,
    what is not given stays as it is."""

    sku: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,40}$")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    cost_points: int | None = Field(default=None, ge=1, le=10_000_000)
    stock: int | None = Field(default=None, ge=0, le=10_000_000)
    active: bool | None = None


class AdjustIn(BaseModel):
    # Exactly one of email and user_id (api.admin_adjust_points' rule), in the schema.
    model_config = example(
        {"email": "player@example.com", "amount": 100, "reason": "goodwill after an outage"},
        oneOf=[{"required": ["email"]}, {"required": ["user_id"]}],
    )

    email: str | None = Field(default=None, max_length=320)
    user_id: uuid.UUID | None = None
    amount: int = Field(ge=-1_000_000, le=1_000_000, description="Credits > 0, debits < 0")
    reason: Reason

    @model_validator(mode="after")
    def _one_user(self) -> AdjustIn:
        if (self.email is None) == (self.user_id is None):
            raise ValueError("Give either email or user_id")
        return self


class ReasonIn(BaseModel):
    reason: Reason


class ResolveIn(BaseModel):
    # ISSUED with the vendor's reference, FAILED without one (crypto.resolve_redemption).
    model_config = example(
        {"status": "FAILED", "reason": "the vendor says it never issued"},
        oneOf=[
            {"properties": {"status": {"const": "ISSUED"}}, "required": ["vendor_ref"]},
            {"properties": {"status": {"const": "FAILED"}, "vendor_ref": {"type": "null"}}},
        ],
    )

    status: Literal["ISSUED", "FAILED"]
    vendor_ref: str | None = Field(default=None, min_length=1, max_length=200)
    reason: Reason

    @model_validator(mode="after")
    def _reference_if_issued(self) -> ResolveIn:
        if (self.status == "ISSUED") != (self.vendor_ref is not None):
            raise ValueError("ISSUED takes the vendor's reference, FAILED none")
        return self


class ClosesIn(BaseModel):
    model_config = example({"closes": [_CLOSE]})

    closes: list[CloseIn] = Field(min_length=1, max_length=5000)


class ManualSettlementIn(BaseModel):
    model_config = example({"trading_day": "2026-11-23"})

    trading_day: dt.date
    void_missing: bool = False


class DayIn(BaseModel):
    model_config = example({"trading_day": "2026-11-23"})

    trading_day: dt.date


class AdIn(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9\-]{1,40}$")
    title: str = Field(min_length=1, max_length=200)
    reward_kind: Literal["SLOT", "POINTS"]
    reward_points: int = Field(default=0, ge=0, le=1000)
    active: bool = True


class AdPatch(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    reward_points: int | None = Field(default=None, ge=0, le=1000)
    active: bool | None = None


async def admin_call(caller: Caller, pool: Any, *args: Any, status: int = 200) -> Response:
    """One SQL function as the admin."""
    return raw_json(await call_api(pool, caller.role, caller.claims, *args), status)


@router.get("/admin/dashboard", responses=answers(AdminOut))
async def admin_dashboard(caller: Admin, pool: Pool) -> Response:
    """Today's session and participation, points issued, spent and held,
    open alerts, each job's last run, the queue and the worker."""
    return await admin_call(caller, pool, "admin_dashboard")


@router.get("/admin/audit", responses=answers(AdminOut))
async def admin_audit(
    caller: Admin,
    pool: Pool,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[dt.datetime | None, Query(alias="from")] = None,
    until: Annotated[dt.datetime | None, Query(alias="to")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """The audit log, newest first, in cursor pages."""
    args = ("admin_audit", action, actor, subject, since, until, limit, cursor)
    return await admin_call(caller, pool, *args)


@router.post("/admin/universe/upsert", responses=answers(AdminOut))
async def admin_universe(body: UniverseIn, caller: Admin, pool: Pool) -> Response:
    args = ("admin_universe_upsert", body.trading_day, body.symbols)
    return await admin_call(caller, pool, *args)


@router.post("/admin/rewards/inventory", responses=answers(AdminOut))
async def admin_inventory(body: InventoryIn, caller: Admin, pool: Pool) -> Response:
    """Add a SKU, restock, change the price, disable or enable."""
    args = ("admin_reward_inventory", body.sku, body.name, body.cost_points, body.stock)
    return await admin_call(caller, pool, *args, body.active)


@router.post("/admin/redemptions/{redemption_id}/resolve", responses=answers(AdminOut))
async def admin_resolve(
    redemption_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    body: ResolveIn,
    caller: Admin,
    pool: Pool,
) -> Response:
    """An UNKNOWN redemption the vendor answered out of band: ISSUED with
    its vendor_ref, or FAILED (refunded exactly once, as the worker does)."""
    args = ("admin_resolve_redemption", redemption_id, body.status, body.vendor_ref)
    return await admin_call(caller, pool, *args, body.reason)


@router.post("/admin/users/adjust-points", responses=answers(AdminOut))
async def admin_adjust(
    body: AdjustIn, caller: Admin, pool: Pool, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Credit or debit a player (by email or user_id); a retry with the
    same Idempotency-Key changes nothing and answers the same."""
    args = ("admin_adjust_points", body.email, body.user_id, body.amount, body.reason)
    return await admin_call(caller, pool, *args, idempotency_key)


@router.post("/admin/users/{user_id}/disable", responses=answers(AdminOut))
async def admin_disable(user_id: uuid.UUID, body: ReasonIn, caller: Admin, pool: Pool) -> Response:
    """Every request of theirs is refused at once, their sessions end."""
    args = ("admin_user_disabled", user_id, True, body.reason)
    return await admin_call(caller, pool, *args)


@router.post("/admin/users/{user_id}/enable", responses=answers(AdminOut))
async def admin_enable(user_id: uuid.UUID, body: ReasonIn, caller: Admin, pool: Pool) -> Response:
    return await admin_call(caller, pool, "admin_user_disabled", user_id, False, body.reason)


@router.post("/admin/settlement/manual", responses=answers(AdminOut))
async def admin_settle(body: ManualSettlementIn, caller: Admin, pool: Pool) -> Response:
    args = ("admin_settlement_manual", body.trading_day, body.void_missing)
    return await admin_call(caller, pool, *args)


@router.post("/admin/eod/trigger", status_code=202, responses=answers(AdminOut, 202))
async def admin_eod(body: DayIn, caller: Admin, pool: Pool) -> Response:
    """Ask the worker for a finished day's closes now."""
    return await admin_call(caller, pool, "admin_eod_trigger", body.trading_day, status=202)


@router.post("/admin/eod/prices", responses=answers(AdminOut))
async def admin_eod_prices(body: ClosesIn, caller: Admin, pool: Pool) -> Response:
    """Closes from elsewhere during a price outage, before the VOID
    deadline: all rows or none (each refused row named by its number)."""
    closes = [
        {"trading_day": c.trading_day.isoformat(), "symbol": c.symbol, "close": str(c.close)}
        for c in body.closes
    ]
    return await admin_call(caller, pool, "admin_load_eod_prices", Jsonb(closes))


@router.post("/admin/maintenance/integrity-check", responses=answers(AdminOut))
async def admin_integrity(caller: Admin, pool: Pool) -> Response:
    """Every ledger, stock and settlement invariant and the audit chain, now."""
    return await admin_call(caller, pool, "admin_integrity_check")


@router.get("/admin/batches", responses=answers(AdminRows))
async def admin_batches(caller: Admin, pool: Pool, limit: Limit = 50) -> Response:
    return await admin_call(caller, pool, "admin_batches", limit)


@router.post("/admin/batches/{job}/run", responses=answers(AdminOut))
async def admin_batch_run(
    job: Annotated[str, Path(pattern=r"^[a-z\-]{1,40}$")], caller: Admin, pool: Pool
) -> Response:
    return await admin_call(caller, pool, "admin_batch_run", job)


@router.get("/admin/settings", responses=answers(AdminRows))
async def admin_settings(caller: Admin, pool: Pool) -> Response:
    """The game's tunables, each with its rule."""
    return await admin_call(caller, pool, "admin_settings")


@router.patch("/admin/settings", responses=answers(AdminOut))
async def admin_settings_patch(
    body: Annotated[dict[str, Any], Body(min_length=1, max_length=50)],
    caller: Admin,
    pool: Pool,
) -> Response:
    """`{"key": value, ...}`: all or none, each by its rule, each audited."""
    return await admin_call(caller, pool, "admin_settings_patch", Jsonb(body))


@router.post("/admin/ads", status_code=201, responses=answers(AdminOut, 201))
async def admin_ad_create(body: AdIn, caller: Admin, pool: Pool) -> Response:
    args = ("admin_ad_upsert", body.id, body.title, body.reward_kind, body.reward_points)
    return await admin_call(caller, pool, *args, body.active, status=201)


@router.patch("/admin/ads/{ad_id}", responses=answers(AdminOut))
async def admin_ad_patch(
    ad_id: Annotated[str, Path(pattern=r"^[a-z0-9\-]{1,40}$")],
    body: AdPatch,
    caller: Admin,
    pool: Pool,
) -> Response:
    args = ("admin_ad_upsert", ad_id, body.title, None, body.reward_points, body.active)
    return await admin_call(caller, pool, *args)


@router.get("/v1/metrics/{report}", responses=answers(MetricsOut))
async def metrics_report(
    report: Literal["daily", "predictions", "points"],
    caller: Admin,
    pool: Pool,
    since: Annotated[dt.date, Query(alias="from")],
    until: Annotated[dt.date, Query(alias="to")],
) -> Response:
    """Per trading day from the rollup: `daily` is everything;
    `predictions` the game's counts and rates; `points` the money."""
    text = await read_api(pool, caller.role, caller.claims, "admin_metrics", since, until)
    items = json.loads(text or "{}").get("items", [])
    keep = _METRIC_REPORTS[report]
    if keep:
        items = [{k: v for k, v in item.items() if k in keep} for item in items]
    return JSONResponse({"items": items})


@router.get("/admin/health", responses=answers(AdminOut))
async def admin_health(caller: Admin, pool: Pool) -> Response:
    return raw_json(await call_api(pool, caller.role, caller.claims, "admin_health"))


@router.post("/admin/settlement/correct", responses=answers(AdminOut))
async def admin_correct_settlement(body: CorrectionIn, caller: Admin, pool: Pool) -> Response:
    """Correct the closes a settled day read: outcomes recomputed, winners paid, wrong
    awards reversed (never below a zero balance); a retry changes nothing."""
    closes = [
        {"trading_day": c.trading_day.isoformat(), "symbol": c.symbol, "close": str(c.close)}
        for c in body.closes
    ]
    args = ("admin_correct_settlement", body.trading_day, Jsonb(closes), body.reason)
    return raw_json(await call_api(pool, caller.role, caller.claims, *args))


_PREDICTION_KEYS = {"wins", "losses", "voids", "unsettled", "win_rate", "loss_rate", "void_rate"}
_METRIC_REPORTS: dict[str, set[str] | None] = {
    "daily": None,
    "predictions": {
        "trading_day",
        "active_users",
        "participants",
        "participation_rate",
        "predictions",
        *_PREDICTION_KEYS,
    },
    "points": {
        "trading_day",
        "points_issued",
        "points_spent",
        "points_outstanding",
        "redemptions",
        "ad_clicks",
        "ad_rewards",
    },
}
