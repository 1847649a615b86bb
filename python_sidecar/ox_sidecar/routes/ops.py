"""Probes of load balancers and orchestrators, and the Prometheus scraper."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from .. import metrics
from ..config import ROOT
from ..db import AUTH, call_api
from ..deps import PROBLEM, Pool
from ..migrate import VERSIONED
from ..problems import Problem, error_codes_loaded

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request, pool: Pool) -> Response:
    """For the operator's scraper only: from METRICS_NETWORKS, never
    through the public proxy; elsewhere it does not exist (404)."""
    state = request.app.state
    peer = request.client.host if request.client else None
    networks, proxies = state.metrics_networks, state.trusted_proxies
    if not metrics.allowed(peer, networks, proxies, request.headers):
        raise Problem("NOT_FOUND", "Not Found")
    metrics.note_pool(pool.user.get_stats(), pool.admin.get_stats())
    try:
        gauges = json.loads(await call_api(pool, AUTH, "", "prometheus_gauges") or "null")
    except Problem:
        gauges = None  # oxp_database_up 0 says so
    body, content_type = metrics.render(gauges)
    return Response(body, media_type=content_type)


@router.get("/ready", responses={503: PROBLEM})
async def ready(pool: Pool) -> dict[str, Any]:
    expected = sorted(p.name for p in (ROOT / VERSIONED).glob("*.sql"))
    try:
        async with pool.user.connection(timeout=2) as conn:
            cur = await conn.execute("select version from migrations.applied")
            applied = sorted(r[0] for r in await cur.fetchall())
    except Exception as exc:
        raise Problem("DATABASE_UNAVAILABLE", "The database is unreachable") from exc
    missing = [v for v in expected if v not in applied]
    if not error_codes_loaded():
        raise Problem("UNAVAILABLE", "Error codes not loaded yet")
    if missing:
        raise Problem("UNAVAILABLE", f"Migrations not applied: {', '.join(missing)}")
    return {"status": "ready", "migrations": len(applied)}
