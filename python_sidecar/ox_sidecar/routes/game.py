"""The game: today's session and universe, predictions, settlements, a
player's stats and the leaderboard."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query
from pydantic import BaseModel
from starlette.responses import Response

from ..db import call_api, read_api
from ..deps import AnyCaller, Cursor, Limit, Pool, User, raw_json
from .schemas import (
    LeaderboardOut,
    Page,
    PredictionOut,
    SessionOut,
    SettlementsOut,
    StatsOut,
    UniverseOut,
    answers,
)

router = APIRouter()

Symbol = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9.\-]{0,9}$")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, description="Retry-safe writes"),
]


class PredictionIn(BaseModel):
    choice: Literal["UP", "DOWN"]


@router.get("/v1/session/today", tags=["game"], responses=answers(SessionOut))
async def session_today(caller: AnyCaller, pool: Pool) -> Response:
    """The session players predict in now, else the latest one.

    `trading_day` is the New York date of the NYSE session. Times are KST
    (`+09:00`), with New York's beside them (`cutoff_at_new_york`,
    `market_open_at_new_york`, `market_close_at_new_york`). `next_session`
    says when the next session opens once this one no longer takes
    predictions. With a token, `player` has predictions used, limit and
    left, and ad unlocks left; `points_per_win` is what a correct
    prediction earns."""
    return raw_json(await call_api(pool, caller.role, caller.claims, "session_today"))


@router.get("/v1/universe/today", tags=["game"], responses=answers(UniverseOut))
async def universe_today(caller: AnyCaller, pool: Pool) -> Response:
    return raw_json(await call_api(pool, caller.role, caller.claims, "universe_today"))


@router.post(
    "/v1/predictions/{symbol}",
    tags=["game"],
    status_code=201,
    responses=answers(PredictionOut, 201),
)
async def predict(
    symbol: Symbol,
    body: PredictionIn,
    caller: User,
    pool: Pool,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    args = ("submit_prediction", symbol, body.choice, idempotency_key)
    return raw_json(await call_api(pool, caller.role, caller.claims, *args), 201)


@router.get("/v1/predictions", tags=["game"], responses=answers(Page))
async def my_predictions(
    caller: User,
    pool: Pool,
    trading_day: Annotated[
        dt.date | None, Query(description="Only this trading day (the New York date)")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> Response:
    """The caller's predictions, newest first, in cursor pages (pass
    `next_cursor` back as `cursor`): every day, or one `trading_day`.
    Settled ones show both closes, the change in percent (a decimal
    string), the outcome and, for VOID, `void_reason` (`threshold` or
    `missing_price`)."""
    args = ("my_predictions", trading_day, cursor, limit)
    return raw_json(await call_api(pool, caller.role, caller.claims, *args))


@router.get("/v1/settlements/{trading_day}", tags=["game"], responses=answers(SettlementsOut))
async def settlements(trading_day: dt.date, caller: AnyCaller, pool: Pool) -> Response:
    args = ("settlements", trading_day)
    return raw_json(await read_api(pool, caller.role, caller.claims, *args))


@router.get("/v1/users/stats", tags=["users"], responses=answers(StatsOut))
async def stats(caller: User, pool: Pool) -> Response:
    return raw_json(await call_api(pool, caller.role, caller.claims, "user_stats"))


@router.get("/v1/leaderboard", tags=["users"], responses=answers(LeaderboardOut))
async def leaderboard(
    caller: AnyCaller,
    pool: Pool,
    period: Annotated[Literal["week", "month", "all"], Query()] = "week",
    limit: Limit = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Response:
    """Points won in settled sessions this week, month or ever (New York
    dates), ties by wins then a fixed order; `accuracy` is wins / decided
    (VOIDs left out), null below `min_decided`. Nicknames only. `cursor`
    is the opaque `next_cursor` of the page before (a keyset)."""
    args = ("leaderboard", period, limit, cursor)
    return raw_json(await read_api(pool, caller.role, caller.claims, *args))
