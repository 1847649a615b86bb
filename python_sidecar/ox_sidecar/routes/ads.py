"""Ads: the list, a player's click, and the ad network's server-side
verification callback (the only route that pays for an ad)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from psycopg.types.json import Jsonb
from starlette.responses import Response

from ..db import call_api
from ..deps import AnyCaller, Pool, RequiredIdempotencyKey, User, raw_json
from ..problems import Problem
from .schemas import AdClickOut, Items, SsvOut, answers

router = APIRouter(tags=["ads"])

AdId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[a-z0-9\-]+$")]


@router.get("/v1/ads", responses=answers(Items))
async def ads(caller: AnyCaller, pool: Pool) -> Response:
    return raw_json(await call_api(pool, caller.role, caller.claims, "ads"))


@router.post("/v1/ads/{ad_id}/click", status_code=201, responses=answers(AdClickOut, 201))
async def click_ad(
    ad_id: AdId, caller: User, pool: Pool, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Record that the ad is shown; pays nothing. Give the answer's `ssv.user_id`
    and `ssv.custom_data` to the ad SDK's server-side verification options:
    the reward comes with the network's callback to `/v1/ads/ssv`."""
    args = ("click_ad", ad_id, idempotency_key)
    return raw_json(await call_api(pool, caller.role, caller.claims, *args), 201)


@router.get("/v1/ads/ssv", responses=answers(SsvOut))
async def ad_ssv(request: Request, pool: Pool) -> Response:
    """The ad network's server-side verification callback (AdMob's shape). No
    token: the network calls it, and only a callback signed with a key the
    network publishes pays. 200 when paid, and on every replay of a paid
    transaction (which pays nothing more); a refusal is final (4xx, the same
    on a retry); 503 asks the network to retry."""
    try:
        query = request.scope["query_string"].decode("ascii")
    except UnicodeDecodeError as exc:
        raise Problem("AD_SSV_MALFORMED", "The query string is not ASCII") from exc
    callback = await request.app.state.ad_ssv.verify(query)
    # The network signs every publisher's callbacks with the same keys:
    # only our own ad units pay (none configured: none in production).
    units = request.app.state.ad_units
    if callback.ad_unit not in units and (units or request.app.state.production):
        raise Problem("AD_SSV_UNKNOWN_AD_UNIT", f"Ad unit {callback.ad_unit[:40]} is not ours")
    args = (
        "ad_ssv_reward",
        callback.transaction_id,
        callback.custom_data,
        callback.user_id,
        callback.rewarded_at,
        Jsonb(callback.evidence),
    )
    return raw_json(await call_api(pool, "ad_network", "", *args))
