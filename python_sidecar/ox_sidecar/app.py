"""The HTTP shim: each route authenticates, calls one SQL function, maps the
result. This module builds the app (start-up, middleware, error handlers); the
routes are in `routes/` by area, what they share in `deps.py`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from . import environment, logs, metrics, ratelimit, web
from .ad_ssv import SsvVerifier
from .config import Settings, get_settings
from .db import Pools, new_pool, new_replica
from .deps import PROBLEM, PROBLEM_STATUSES, environment_agrees, rate_limited
from .gate import Leases
from .guards import BodyLimit, HashGate
from .oauth import OidcClient
from .problems import ErrorMapReloader, Problem, load_error_codes, problem_response
from .routes import ROUTERS
from .tokens import TokenService, hash_memory_kib
from .validation import explain

log = logging.getLogger("ox_sidecar")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.tokens = TokenService(settings)
    app.state.oidc = OidcClient(settings)
    app.state.ad_units = frozenset(settings.ad_ssv_ad_units)
    app.state.production = settings.env == "production"
    app.state.ad_ssv = SsvVerifier(
        settings.ad_ssv_keys_url,
        settings.ad_ssv_keys_cache_seconds,
        settings.ad_ssv_refetch_seconds,
    )
    app.state.trusted_proxies = ratelimit.parse_networks(settings.trusted_proxies)
    app.state.metrics_networks = ratelimit.parse_networks(settings.metrics_networks)
    app.state.rate_limits = settings.rate_limits_enabled
    app.state.leases = Leases()
    app.state.totp_key = settings.totp_key
    app.state.mail_enabled = bool(settings.smtp_host)
    app.state.hash_gate = HashGate(
        settings.argon2_memory_budget_mb * 1024 // hash_memory_kib(), settings.argon2_wait_seconds
    )
    threshold = settings.api_prepare_threshold
    app.state.pool = Pools(
        new_pool(settings.api_url, settings.api_pool_size, prepare_threshold=threshold),
        new_pool(settings.admin_api_url, settings.admin_api_pool_size, prepare_threshold=threshold),
        settings.user_statement_timeout_ms,
        settings.admin_statement_timeout_ms,
        new_replica(settings),
        ErrorMapReloader(settings.error_codes_reload_seconds),
    )
    app.state.environment_refusal = None
    await app.state.pool.open()
    loader = asyncio.create_task(_load_from_database(app, settings))
    # Serve once the codes are read, so no early answer falls back to a 500;
    # if the database is not up yet, keep trying in the background.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(loader), timeout=5)
    if app.state.environment_refusal:
        await app.state.pool.close()
        raise environment.EnvironmentMismatch(app.state.environment_refusal)
    reporter = asyncio.create_task(
        metrics.report_http_counts(app.state.pool, settings.http_counts_report_seconds)
    )
    yield
    reporter.cancel()
    loader.cancel()
    await app.state.pool.close()


async def _load_from_database(app: FastAPI, settings: Settings) -> None:
    """Until it succeeds: the error codes, and which world the database is.
    The service answers meanwhile, errors use fallbacks; a database of
    another ENV found after start-up stops every answer (environment_agrees)."""
    while True:
        try:
            async with app.state.pool.user.connection(timeout=10) as conn:
                await load_error_codes(conn)
                async with conn.transaction():
                    await conn.execute("set local role anon")
                    cur = await conn.execute("select api.environment()")
                    row = await cur.fetchone()
            refusal = environment.refusal(row[0] if row else None, settings.env, settings.env_given)
            if refusal:
                log.critical("refusing to serve: %s", refusal)
            app.state.environment_refusal = refusal
            return
        except Exception:
            log.warning("could not read the error codes yet", exc_info=True)
            await asyncio.sleep(2)


def create_app() -> FastAPI:
    settings = get_settings()
    settings.require_real_vendor()
    logs.configure(settings.log_level)
    app = FastAPI(
        title="OX Predict API",
        version="0.1.0",
        lifespan=lifespan,
        responses={status: PROBLEM for status in PROBLEM_STATUSES},
        dependencies=[Depends(environment_agrees), Depends(rate_limited)],
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(ratelimit.HeadersMiddleware)
    # Outside the limiter's middleware: its own 429 (a request that reached
    # no call) reaches a cross-origin page as a 429, not a network error.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(logs.RequestIdMiddleware)
    app.add_middleware(metrics.MetricsMiddleware)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        detail, errors = explain(exc.errors())
        problem = Problem("VALIDATION_FAILED", detail, errors=errors)
        return problem_response(problem, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(
            exc.status_code, "VALIDATION_FAILED"
        )
        return problem_response(Problem(code, str(exc.detail)), request.url.path)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
            # The database went away under a route that talks to it itself.
            problem = Problem("DATABASE_UNAVAILABLE", "The database is unreachable")
            return problem_response(problem, request.url.path)
        log.exception("unhandled error")
        return problem_response(Problem("INTERNAL"), request.url.path)

    for router in ROUTERS:
        app.include_router(router)
    web.install(app)  # the player's web app at / (web.py)
    return app


app = create_app()
