"""The reward catalogue, redeeming points for a reward, and a player's redemptions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from ..db import call_api
from ..deps import AnyCaller, Cursor, Limit, Pool, RequiredIdempotencyKey, User, raw_json
from .schemas import Items, Page, RedemptionOut, answers

router = APIRouter(tags=["rewards"])

Sku = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")]


@router.get("/v1/rewards", responses=answers(Items))
async def rewards(caller: AnyCaller, pool: Pool) -> Response:
    return raw_json(await call_api(pool, caller.role, caller.claims, "rewards"))


@router.post("/v1/rewards/{sku}/redeem", status_code=201, responses=answers(RedemptionOut, 201))
async def redeem(
    sku: Sku, caller: User, pool: Pool, idempotency_key: RequiredIdempotencyKey
) -> Response:
    args = ("redeem_reward", sku, idempotency_key)
    return raw_json(await call_api(pool, caller.role, caller.claims, *args), 201)


@router.get("/v1/rewards/redemptions", responses=answers(Page))
async def redemptions(
    caller: User, pool: Pool, cursor: Cursor = None, limit: Limit = 20
) -> Response:
    args = ("my_redemptions", cursor, limit)
    return raw_json(await call_api(pool, caller.role, caller.claims, *args))
