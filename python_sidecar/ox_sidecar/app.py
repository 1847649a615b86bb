"""The HTTP shim: each route authenticates, calls one SQL function, maps the result."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

import psycopg
from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from . import environment, logs, metrics, ratelimit, web
from .ad_ssv import SsvVerifier
from .config import ROOT, Settings, get_settings
from .db import AUTH, Pools, call_api, new_pool
from .guards import BodyLimit, HashGate
from .migrate import VERSIONED
from .oauth import OidcClient
from .problems import Problem, error_codes_loaded, load_error_codes, problem_response
from .tokens import (
    TokenService,
    claims_json,
    hash_memory_kib,
    hash_password,
    new_refresh_token,
    refresh_hash,
    verify_password,
)
from .validation import explain

log = logging.getLogger("ox_sidecar")

PROBLEM = {"content": {"application/problem+json": {}}, "description": "problem+json (RFC 9457)"}


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
    app.state.totp_key = settings.totp_key
    app.state.mail_enabled = bool(settings.smtp_host)
    app.state.hash_gate = HashGate(
        settings.argon2_memory_budget_mb * 1024 // hash_memory_kib(), settings.argon2_wait_seconds
    )
    app.state.pool = Pools(
        new_pool(settings.api_url, settings.api_pool_size),
        new_pool(settings.admin_api_url, settings.admin_api_pool_size),
        settings.user_statement_timeout_ms,
        settings.admin_statement_timeout_ms,
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
        responses={status: PROBLEM for status in (400, 401, 403, 404, 409, 422, 429, 503)},
        dependencies=[Depends(environment_agrees), Depends(rate_limited)],
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
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

    _routes(app)
    _admin_routes(app)
    web.install(app)  # the player's web app at / (web.py)
    return app


# --- who is calling ------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    role: str
    claims: str
    sub: str | None = None


# Dependencies are `async def`: FastAPI runs a plain `def` one in a thread
# pool, a thread hop per dependency per request.
async def _pool(request: Request) -> Pools:
    return request.app.state.pool  # type: ignore[no-any-return]


async def _tokens(request: Request) -> TokenService:
    return request.app.state.tokens  # type: ignore[no-any-return]


async def optional_caller(request: Request) -> Caller:
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    request.state.caller = caller = _caller_from_header(request)
    return caller


def _caller_from_header(request: Request) -> Caller:
    header = request.headers.get("authorization")
    if header is None:
        return Caller("anon", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem("INVALID_TOKEN", "Use: Authorization: Bearer <token>")
    claims = request.app.state.tokens.verify(token.strip())
    return Caller(claims["role"], claims_json(claims), str(claims["sub"]))


async def environment_agrees(request: Request) -> None:
    """Nothing is served against a database of another ENV (environment.py)."""
    refusal = request.app.state.environment_refusal
    if refusal:
        raise Problem("UNAVAILABLE", f"This service refuses to run: {refusal}")


async def rate_limited(request: Request) -> None:
    """Every route but the probes: per client IP, plus per user for the kinds
    with limits of their own. Runs before the route's own auth, so requests
    with a bad token count against their IP too."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    if not request.app.state.rate_limits or path in ratelimit.EXEMPT:
        return
    try:
        user = (await optional_caller(request)).sub
    except Problem:
        user = None
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.getlist("x-forwarded-for")
    ip = ratelimit.limit_key(
        ratelimit.client_ip(peer, forwarded, request.app.state.trusted_proxies)
    )
    kinds = ratelimit.KINDS.get((request.method, path), [])
    request.state.ratelimit = await ratelimit.check(request.app.state.pool, ip, user, kinds)


async def signed_in(caller: Annotated[Caller, Depends(optional_caller)]) -> Caller:
    if caller.role == "anon":
        raise Problem("INVALID_TOKEN", "This request needs a signed-in user")
    return caller


async def admin(caller: Annotated[Caller, Depends(signed_in)]) -> Caller:
    if caller.role != "app_admin":
        raise Problem("FORBIDDEN", "Admins only")
    return caller


async def _oidc(request: Request) -> OidcClient:
    return request.app.state.oidc  # type: ignore[no-any-return]


async def _hash_gate(request: Request) -> HashGate:
    return request.app.state.hash_gate  # type: ignore[no-any-return]


Pool = Annotated[Pools, Depends(_pool)]
Admin = Annotated[Caller, Depends(admin)]
Oidc = Annotated[OidcClient, Depends(_oidc)]
Tokens = Annotated[TokenService, Depends(_tokens)]
Gate = Annotated[HashGate, Depends(_hash_gate)]
AnyCaller = Annotated[Caller, Depends(optional_caller)]
User = Annotated[Caller, Depends(signed_in)]


def raw_json(text: str | None, status: int = 200) -> Response:
    if text is None:
        raise Problem("NOT_FOUND")
    return Response(text, status_code=status, media_type="application/json")


# --- request bodies ----------------------------------------------------


class Credentials(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=8, max_length=128)


Symbol = Annotated[str, Path(min_length=1, max_length=12, pattern=r"^[A-Za-z][A-Za-z0-9.\-]*$")]


IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, description="Retry-safe writes"),
]


Sku = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")]
AdId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[a-z0-9\-]+$")]
# A bigint: anything larger is refused here (it would reach SQL as numeric).
Cursor = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=100)]


# Spending and earning points: a missing key is how a double click pays twice.
# At most 150 characters: the ledger key adds the user's id to it.
RequiredIdempotencyKey = Annotated[
    str,
    Header(alias="Idempotency-Key", min_length=1, max_length=150, description="Required"),
]


class NicknameIn(BaseModel):
    nickname: str | None = Field(max_length=40, description="2 to 20 characters; null removes it")


class PredictionIn(BaseModel):
    choice: Literal["UP", "DOWN"]


class LoginIn(Credentials):
    otp: str | None = Field(default=None, pattern=r"^[0-9]{6}$", description="Admins: TOTP code")


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=20, max_length=200)


class OAuthCallbackIn(BaseModel):
    code: str = Field(min_length=1, max_length=2048)
    state: str = Field(min_length=32, max_length=200)


class CloseIn(BaseModel):
    trading_day: dt.date = Field(description="New York date of the close")
    symbol: str = Field(min_length=1, max_length=10, pattern=r"^[A-Za-z][A-Za-z0-9.\-]*$")
    close: Decimal = Field(gt=0, lt=Decimal("1e14"), description="Raw official close")


class CorrectionIn(BaseModel):
    trading_day: dt.date = Field(description="The settled session (New York date) to correct")
    closes: list[CloseIn] = Field(min_length=1, max_length=1000)
    reason: str = Field(min_length=3, max_length=500, description="Shown to players and auditors")


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str


class SignupOut(TokenOut):
    user: dict[str, Any]


async def start_session(pool: Pools, tokens: TokenService, user: dict[str, Any]) -> dict[str, Any]:
    """Our tokens for a user who just proved who they are: a short access
    token and the first refresh token of a new family. Never an admin's: an
    admin's session begins in api.mfa_verify, with the second factor."""
    access = tokens.issue(user)
    refresh, digest = new_refresh_token()
    await call_api(pool, AUTH, shim_claims(user["id"]), "issue_refresh", digest)
    return {**access, "refresh_token": refresh}


def shim_claims(user_id: object) -> str:
    """The claims the shim acts under for a user it just authenticated
    (with `iat`, which SQL checks against a cut-off of the user's tokens)."""
    return claims_json({"sub": str(user_id), "role": "app_user", "iat": int(time.time())})


OAUTH_COOKIE = "oxp_oauth"
VerifyToken = Annotated[str, Query(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")]


def _routes(app: FastAPI) -> None:
    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
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

    @app.get("/ready", tags=["ops"], responses={503: PROBLEM})
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

    @app.get("/.well-known/jwks.json", tags=["auth"])
    async def jwks(tokens: Tokens) -> dict[str, Any]:
        return tokens.jwks()

    @app.post("/v1/auth/signup", tags=["auth"], status_code=201, response_model=SignupOut)
    async def signup(
        body: Credentials, request: Request, pool: Pool, tokens: Tokens, gate: Gate
    ) -> Any:
        password_hash = await gate.run(hash_password, body.password)
        user_text = await call_api(pool, "anon", "", "signup", body.email, password_hash)
        created = json.loads(user_text or "null")
        session = await start_session(pool, tokens, created)
        if request.app.state.mail_enabled:
            # The verification link, mailed by the worker (never inline).
            claims = shim_claims(created["id"])
            await call_api(pool, "app_user", claims, "resend_verification")
        return JSONResponse({"user": created, **session}, status_code=201)

    @app.post("/v1/auth/login", tags=["auth"], response_model=SignupOut)
    async def login(body: LoginIn, request: Request, pool: Pool, tokens: Tokens, gate: Gate) -> Any:
        # Refused here (429) when the email had too many wrong passwords, or
        # the admin too many wrong codes, whatever this password is.
        found = json.loads(await call_api(pool, AUTH, "", "login_lookup", body.email) or "null")
        if found and found["mfa"] and body.otp is None:
            # Said before the password is checked, so it says nothing about it.
            raise Problem("MFA_REQUIRED", "Admins sign in with a one-time code (otp)")
        stored = found["password_hash"] if found else None
        ok = await gate.run(verify_password, stored, body.password)
        if not found or not ok:
            await call_api(pool, AUTH, "", "login_failed", body.email)
            raise Problem("INVALID_CREDENTIALS", "Wrong email or password")
        if found["mfa"]:
            # The code is checked in SQL (the secret never leaves it), which
            # counts wrong ones and begins the admin's refresh family.
            refresh, digest = new_refresh_token()
            args = (found["id"], body.otp, request.app.state.totp_key, digest)
            admin = json.loads(await call_api(pool, AUTH, "", "mfa_verify", *args) or "null")
            user = {k: admin[k] for k in ("id", "email", "role")}
            return {"user": user, **tokens.issue(admin), "refresh_token": refresh}
        user = {k: found[k] for k in ("id", "email", "role")}
        return {"user": user, **await start_session(pool, tokens, found)}

    @app.get("/v1/auth/verify-email", tags=["auth"], response_class=HTMLResponse)
    async def verify_email_page(token: VerifyToken) -> HTMLResponse:
        """The link in the email: a page to confirm, which spends nothing (mail
        scanners open links; only the person clicking Confirm verifies)."""
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>Confirm your email</title>"
            f'<form method=post action="/v1/auth/verify-email?token={token}">'
            "<p>Confirm that this email address is yours and that you signed up for OX Predict."
            " <button type=submit>Confirm</button></p></form>"
        )

    @app.post("/v1/auth/verify-email", tags=["auth"])
    async def verify_email(token: VerifyToken, pool: Pool) -> Response:
        """Spends the link (once, before it expires) and verifies the email."""
        return raw_json(await call_api(pool, AUTH, "", "verify_email", refresh_hash(token)))

    @app.post("/v1/auth/verify-email/resend", tags=["auth"], status_code=202)
    async def resend_verification(caller: User, request: Request, pool: Pool) -> Response:
        """Mails a new link to the signed-in user (at most one a minute)."""
        if not request.app.state.mail_enabled:
            # A mail job with no server would only retry until it died.
            raise Problem("UNAVAILABLE", "This server sends no email; an operator can verify you")
        args = ("resend_verification",)
        return raw_json(await call_api(pool, caller.role, caller.claims, *args), 202)

    @app.post("/v1/auth/refresh", tags=["auth"], response_model=TokenOut)
    async def refresh(body: RefreshIn, pool: Pool, tokens: Tokens) -> Any:
        new, digest = new_refresh_token()
        args = ("refresh", refresh_hash(body.refresh_token), digest)
        user = json.loads(await call_api(pool, AUTH, "", *args) or "null")
        return {**tokens.issue(user), "refresh_token": new}

    @app.post("/v1/auth/logout", tags=["auth"])
    async def logout(body: RefreshIn, pool: Pool) -> Response:
        """Revokes the refresh token's whole family; access tokens expire on their own."""
        args = ("logout", refresh_hash(body.refresh_token))
        return raw_json(await call_api(pool, AUTH, "", *args))

    @app.get("/v1/auth/oauth/google", tags=["auth"], status_code=302)
    async def oauth_google(pool: Pool, oidc: Oidc) -> Response:
        if not oidc.configured:
            raise Problem("UNAVAILABLE", "Google sign-in is not configured here")
        auth = await oidc.authorization()
        # The state is bound to this browser: a random cookie, its hash kept
        # with the state; the callback must come with it.
        browser, browser_hash = new_refresh_token()
        args = (auth.state, auth.nonce, auth.code_verifier, oidc.redirect_uri, browser_hash)
        await call_api(pool, AUTH, "", "oauth_begin", *args)
        response = RedirectResponse(auth.url, status_code=302)
        response.set_cookie(
            OAUTH_COOKIE,
            browser,
            max_age=600,
            path="/v1/auth/oauth",
            httponly=True,
            secure=oidc.redirect_uri.startswith("https://"),
            samesite="lax",  # sent on the top-level redirect back from Google
        )
        return response

    async def finish_oauth(
        pool: Pools,
        tokens: TokenService,
        oidc: OidcClient,
        code: str,
        state: str,
        browser: str | None,
    ) -> dict[str, Any]:
        # Spent first, in its own transaction: a replayed callback fails here
        # even if this one fails further on. Only by the browser that began it.
        binding = refresh_hash(browser) if browser else None
        args = ("oauth_consume", state, binding)
        flow = json.loads(await call_api(pool, AUTH, "", *args) or "{}")
        id_token = await oidc.exchange(code, flow["code_verifier"], flow["redirect_uri"])
        claims = await oidc.verify(id_token, flow["nonce"])
        if claims.get("email_verified") is not True or not claims.get("email"):
            raise Problem("EMAIL_NOT_VERIFIED", "Google has not verified this account's email")
        args = ("oauth_login", state, str(claims["sub"]), str(claims["email"]))
        user = json.loads(await call_api(pool, AUTH, "", *args) or "null")
        return await start_session(pool, tokens, user)

    @app.get("/v1/auth/oauth/callback", tags=["auth"], response_model=TokenOut)
    async def oauth_callback(
        request: Request,
        pool: Pool,
        tokens: Tokens,
        oidc: Oidc,
        code: Annotated[str | None, Query(max_length=2048)] = None,
        state: Annotated[str | None, Query(max_length=200)] = None,
        error: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Any:
        """Where the browser comes back from Google."""
        if error or not code or not state or len(state) < 32:
            raise Problem("OAUTH_FAILED", f"Sign-in did not complete: {error or 'no code'}")
        browser = request.cookies.get(OAUTH_COOKIE)
        return await finish_oauth(pool, tokens, oidc, code, state, browser)

    @app.post("/v1/auth/oauth/callback", tags=["auth"], response_model=TokenOut)
    async def oauth_callback_app(
        body: Annotated[OAuthCallbackIn, Body()],
        request: Request,
        pool: Pool,
        tokens: Tokens,
        oidc: Oidc,
    ) -> Any:
        """The same, for an app that caught the redirect itself (with the
        cookie it was given when it began)."""
        browser = request.cookies.get(OAUTH_COOKIE)
        return await finish_oauth(pool, tokens, oidc, body.code, body.state, browser)

    @app.get("/admin/health", tags=["admin"])
    async def admin_health(caller: Admin, pool: Pool) -> Response:
        return raw_json(await call_api(pool, caller.role, caller.claims, "admin_health"))

    @app.post("/admin/settlement/correct", tags=["admin"])
    async def admin_correct_settlement(body: CorrectionIn, caller: Admin, pool: Pool) -> Response:
        """Correct the closes a settled day read: outcomes recomputed, winners paid, wrong
        awards reversed (never below a zero balance); a retry changes nothing."""
        closes = [
            {"trading_day": c.trading_day.isoformat(), "symbol": c.symbol, "close": str(c.close)}
            for c in body.closes
        ]
        args = ("admin_correct_settlement", body.trading_day, Jsonb(closes), body.reason)
        return raw_json(await call_api(pool, caller.role, caller.claims, *args))

    @app.get("/v1/users/me", tags=["users"])
    async def me(caller: User, pool: Pool) -> Response:
        return raw_json(await call_api(pool, caller.role, caller.claims, "me"))

    @app.get("/v1/session/today", tags=["game"])
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

    @app.get("/v1/universe/today", tags=["game"])
    async def universe_today(caller: AnyCaller, pool: Pool) -> Response:
        return raw_json(await call_api(pool, caller.role, caller.claims, "universe_today"))

    @app.post("/v1/predictions/{symbol}", tags=["game"], status_code=201)
    async def predict(
        symbol: Symbol,
        body: PredictionIn,
        caller: User,
        pool: Pool,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        args = ("submit_prediction", symbol, body.choice, idempotency_key)
        return raw_json(await call_api(pool, caller.role, caller.claims, *args), 201)

    @app.get("/v1/predictions", tags=["game"])
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

    @app.get("/v1/settlements/{trading_day}", tags=["game"])
    async def settlements(trading_day: dt.date, caller: AnyCaller, pool: Pool) -> Response:
        args = ("settlements", trading_day)
        return raw_json(await call_api(pool, caller.role, caller.claims, *args))

    @app.get("/v1/points/balance", tags=["points"])
    async def balance(caller: User, pool: Pool) -> Response:
        return raw_json(await call_api(pool, caller.role, caller.claims, "points_balance"))

    @app.get("/v1/points/ledger", tags=["points"])
    async def ledger(
        caller: User, pool: Pool, cursor: Cursor = None, limit: Limit = 20
    ) -> Response:
        args = ("points_ledger", cursor, limit)
        return raw_json(await call_api(pool, caller.role, caller.claims, *args))

    @app.get("/v1/users/stats", tags=["users"])
    async def stats(caller: User, pool: Pool) -> Response:
        return raw_json(await call_api(pool, caller.role, caller.claims, "user_stats"))

    @app.post("/v1/users/me/nickname", tags=["users"])
    async def set_nickname(body: NicknameIn, caller: User, pool: Pool) -> Response:
        """The public name on the leaderboard (null removes it): 2 to 20
        characters, no "@", unique whatever the case (409 NICKNAME_TAKEN)."""
        return raw_json(
            await call_api(pool, caller.role, caller.claims, "set_nickname", body.nickname)
        )

    @app.get("/v1/leaderboard", tags=["users"])
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
        return raw_json(await call_api(pool, caller.role, caller.claims, *args))

    @app.get("/v1/rewards", tags=["rewards"])
    async def rewards(caller: AnyCaller, pool: Pool) -> Response:
        return raw_json(await call_api(pool, caller.role, caller.claims, "rewards"))

    @app.post("/v1/rewards/{sku}/redeem", tags=["rewards"], status_code=201)
    async def redeem(
        sku: Sku, caller: User, pool: Pool, idempotency_key: RequiredIdempotencyKey
    ) -> Response:
        args = ("redeem_reward", sku, idempotency_key)
        return raw_json(await call_api(pool, caller.role, caller.claims, *args), 201)

    @app.get("/v1/rewards/redemptions", tags=["rewards"])
    async def redemptions(
        caller: User, pool: Pool, cursor: Cursor = None, limit: Limit = 20
    ) -> Response:
        args = ("my_redemptions", cursor, limit)
        return raw_json(await call_api(pool, caller.role, caller.claims, *args))

    @app.get("/v1/ads", tags=["ads"])
    async def ads(caller: AnyCaller, pool: Pool) -> Response:
        return raw_json(await call_api(pool, caller.role, caller.claims, "ads"))

    @app.post("/v1/ads/{ad_id}/click", tags=["ads"], status_code=201)
    async def click_ad(
        ad_id: AdId, caller: User, pool: Pool, idempotency_key: RequiredIdempotencyKey
    ) -> Response:
        """Record that the ad is shown; pays nothing. Give the answer's `ssv.user_id`
        and `ssv.custom_data` to the ad SDK's server-side verification options:
        the reward comes with the network's callback to `/v1/ads/ssv`."""
        args = ("click_ad", ad_id, idempotency_key)
        return raw_json(await call_api(pool, caller.role, caller.claims, *args), 201)

    @app.get("/v1/ads/ssv", tags=["ads"], responses={400: PROBLEM, 403: PROBLEM, 409: PROBLEM})
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


# --- the admin API's bodies ---------------------------------------------------

Symbol = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9.\-]{0,9}$")]
Reason = Annotated[str, Field(min_length=3, max_length=500, description="Audited")]


class UniverseIn(BaseModel):
    trading_day: dt.date
    symbols: list[Symbol] = Field(min_length=1, max_length=100)


class InventoryIn(BaseModel):
    """A new SKU needs name, cost_points and stock; for one that exists,
    what is not given stays as it is."""

    sku: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,40}$")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    cost_points: int | None = Field(default=None, ge=1, le=10_000_000)
    stock: int | None = Field(default=None, ge=0, le=10_000_000)
    active: bool | None = None


class AdjustIn(BaseModel):
    email: str | None = Field(default=None, max_length=320)
    user_id: uuid.UUID | None = None
    amount: int = Field(ge=-1_000_000, le=1_000_000, description="Credits > 0, debits < 0")
    reason: Reason


class ReasonIn(BaseModel):
    reason: Reason


class ResolveIn(BaseModel):
    status: Literal["ISSUED", "FAILED"]
    vendor_ref: str | None = Field(default=None, min_length=1, max_length=200)
    reason: Reason


class ClosesIn(BaseModel):
    closes: list[CloseIn] = Field(min_length=1, max_length=5000)


class ManualSettlementIn(BaseModel):
    trading_day: dt.date
    void_missing: bool = False


class DayIn(BaseModel):
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


def _admin_routes(app: FastAPI) -> None:
    """/admin/* and the metrics reports: an admin token (password + code)
    or 403 before anything else is looked at; one SQL function each."""

    async def admin_call(caller: Caller, pool: Any, *args: Any, status: int = 200) -> Response:
        return raw_json(await call_api(pool, caller.role, caller.claims, *args), status)

    @app.get("/admin/dashboard", tags=["admin"])
    async def admin_dashboard(caller: Admin, pool: Pool) -> Response:
        """Today's session and participation, points issued, spent and held,
        open alerts, each job's last run, the queue and the worker."""
        return await admin_call(caller, pool, "admin_dashboard")

    @app.get("/admin/audit", tags=["admin"])
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

    @app.post("/admin/universe/upsert", tags=["admin"])
    async def admin_universe(body: UniverseIn, caller: Admin, pool: Pool) -> Response:
        args = ("admin_universe_upsert", body.trading_day, body.symbols)
        return await admin_call(caller, pool, *args)

    @app.post("/admin/rewards/inventory", tags=["admin"])
    async def admin_inventory(body: InventoryIn, caller: Admin, pool: Pool) -> Response:
        """Add a SKU, restock, change the price, disable or enable."""
        args = ("admin_reward_inventory", body.sku, body.name, body.cost_points, body.stock)
        return await admin_call(caller, pool, *args, body.active)

    @app.post("/admin/redemptions/{redemption_id}/resolve", tags=["admin"])
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

    @app.post("/admin/users/adjust-points", tags=["admin"])
    async def admin_adjust(
        body: AdjustIn, caller: Admin, pool: Pool, idempotency_key: RequiredIdempotencyKey
    ) -> Response:
        """Credit or debit a player (by email or user_id); a retry with the
        same Idempotency-Key changes nothing and answers the same."""
        args = ("admin_adjust_points", body.email, body.user_id, body.amount, body.reason)
        return await admin_call(caller, pool, *args, idempotency_key)

    @app.post("/admin/users/{user_id}/disable", tags=["admin"])
    async def admin_disable(
        user_id: uuid.UUID, body: ReasonIn, caller: Admin, pool: Pool
    ) -> Response:
        """Every request of theirs is refused at once, their sessions end."""
        args = ("admin_user_disabled", user_id, True, body.reason)
        return await admin_call(caller, pool, *args)

    @app.post("/admin/users/{user_id}/enable", tags=["admin"])
    async def admin_enable(
        user_id: uuid.UUID, body: ReasonIn, caller: Admin, pool: Pool
    ) -> Response:
        return await admin_call(caller, pool, "admin_user_disabled", user_id, False, body.reason)

    @app.post("/admin/settlement/manual", tags=["admin"])
    async def admin_settle(body: ManualSettlementIn, caller: Admin, pool: Pool) -> Response:
        args = ("admin_settlement_manual", body.trading_day, body.void_missing)
        return await admin_call(caller, pool, *args)

    @app.post("/admin/eod/trigger", tags=["admin"], status_code=202)
    async def admin_eod(body: DayIn, caller: Admin, pool: Pool) -> Response:
        """Ask the worker for a finished day's closes now."""
        return await admin_call(caller, pool, "admin_eod_trigger", body.trading_day, status=202)

    @app.post("/admin/eod/prices", tags=["admin"])
    async def admin_eod_prices(body: ClosesIn, caller: Admin, pool: Pool) -> Response:
        """Closes from elsewhere during a price outage, before the VOID
        deadline: all rows or none (each refused row named by its number)."""
        closes = [
            {"trading_day": c.trading_day.isoformat(), "symbol": c.symbol, "close": str(c.close)}
            for c in body.closes
        ]
        return await admin_call(caller, pool, "admin_load_eod_prices", Jsonb(closes))

    @app.post("/admin/maintenance/integrity-check", tags=["admin"])
    async def admin_integrity(caller: Admin, pool: Pool) -> Response:
        """Every ledger, stock and settlement invariant and the audit chain, now."""
        return await admin_call(caller, pool, "admin_integrity_check")

    @app.get("/admin/batches", tags=["admin"])
    async def admin_batches(caller: Admin, pool: Pool, limit: Limit = 50) -> Response:
        return await admin_call(caller, pool, "admin_batches", limit)

    @app.post("/admin/batches/{job}/run", tags=["admin"])
    async def admin_batch_run(
        job: Annotated[str, Path(pattern=r"^[a-z\-]{1,40}$")], caller: Admin, pool: Pool
    ) -> Response:
        return await admin_call(caller, pool, "admin_batch_run", job)

    @app.get("/admin/settings", tags=["admin"])
    async def admin_settings(caller: Admin, pool: Pool) -> Response:
        """The game's tunables, each with its rule."""
        return await admin_call(caller, pool, "admin_settings")

    @app.patch("/admin/settings", tags=["admin"])
    async def admin_settings_patch(
        body: Annotated[dict[str, Any], Body(min_length=1, max_length=50)],
        caller: Admin,
        pool: Pool,
    ) -> Response:
        """`{"key": value, ...}`: all or none, each by its rule, each audited."""
        return await admin_call(caller, pool, "admin_settings_patch", Jsonb(body))

    @app.post("/admin/ads", tags=["admin"], status_code=201)
    async def admin_ad_create(body: AdIn, caller: Admin, pool: Pool) -> Response:
        args = ("admin_ad_upsert", body.id, body.title, body.reward_kind, body.reward_points)
        return await admin_call(caller, pool, *args, body.active, status=201)

    @app.patch("/admin/ads/{ad_id}", tags=["admin"])
    async def admin_ad_patch(
        ad_id: Annotated[str, Path(pattern=r"^[a-z0-9\-]{1,40}$")],
        body: AdPatch,
        caller: Admin,
        pool: Pool,
    ) -> Response:
        args = ("admin_ad_upsert", ad_id, body.title, None, body.reward_points, body.active)
        return await admin_call(caller, pool, *args)

    @app.get("/v1/metrics/{report}", tags=["admin"])
    async def metrics_report(
        report: Literal["daily", "predictions", "points"],
        caller: Admin,
        pool: Pool,
        since: Annotated[dt.date, Query(alias="from")],
        until: Annotated[dt.date, Query(alias="to")],
    ) -> Response:
        """Per trading day from the rollup: `daily` is everything;
        `predictions` the game's counts and rates; `points` the money."""
        text = await call_api(pool, caller.role, caller.claims, "admin_metrics", since, until)
        items = json.loads(text or "{}").get("items", [])
        keep = _METRIC_REPORTS[report]
        if keep:
            items = [{k: v for k, v in item.items() if k in keep} for item in items]
        return JSONResponse({"items": items})


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


app = create_app()
