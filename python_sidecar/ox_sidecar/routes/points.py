"""A player's points: the balance and the ledger."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ..db import call_api
from ..deps import Cursor, Limit, Pool, User, raw_json
from .schemas import BalanceOut, Page, answers

router = APIRouter(tags=["points"])


@router.get("/v1/points/balance", responses=answers(BalanceOut))
async def balance(caller: User, pool: Pool) -> Response:
    return raw_json(await call_api(pool, caller.role, caller.claims, "points_balance"))


@router.get("/v1/points/ledger", responses=answers(Page))
async def ledger(caller: User, pool: Pool, cursor: Cursor = None, limit: Limit = 20) -> Response:
    args = ("points_ledger", cursor, limit)
    return raw_json(await call_api(pool, caller.role, caller.claims, *args))
