"""The HTTP shim: each route authenticates, calls one SQL function, maps the result."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
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
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from . import environment, logs, ratelimit
from .ad_ssv import SsvVerifier
from .config import ROOT, Settings, get_settings
from .db import call_api, new_pool
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
    app.state.ad_ssv = SsvVerifier(
        settings.ad_ssv_keys_url,
        settings.ad_ssv_keys_cache_seconds,
        settings.ad_ssv_refetch_seconds,
    )
    app.state.trusted_proxies = ratelimit.parse_networks(settings.trusted_proxies)
    app.state.rate_limits = settings.rate_limits_enabled
    app.state.totp_key = settings.totp_key
    app.state.mail_enabled = bool(settings.smtp_host)
    app.state.hash_gate = HashGate(
        settings.argon2_memory_budget_mb * 1024 // hash_memory_kib(), settings.argon2_wait_seconds
    )
    app.state.pool = new_pool(settings.api_url, settings.api_pool_size)
    app.state.environment_refusal = None
    await app.state.pool.open(wait=False)
    loader = asyncio.create_task(_load_from_database(app, settings))
    # Serve once the codes are read, so no early answer falls back to a 500;
    # if the database is not up yet, keep trying in the background.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(loader), timeout=5)
    if app.state.environment_refusal:
        await app.state.pool.close()
        raise environment.EnvironmentMismatch(app.state.environment_refusal)
    yield
    loader.cancel()
    await app.state.pool.close()


async def _load_from_database(app: FastAPI, settings: Settings) -> None:
    """Until it succeeds: the error codes, and which world the database is.
    The service answers meanwhile, errors use fallbacks; a database of
    another ENV found after start-up stops every answer (environment_agrees)."""
    while True:
        try:
            async with app.state.pool.connection(timeout=10) as conn:
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
    return app


# --- who is calling ------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    role: str
    claims: str
    sub: str | None = None


# Dependencies are `async def`: FastAPI runs a plain `def` one in a thread
# pool, a thread hop per dependency per request.
async def _pool(request: Request) -> AsyncConnectionPool:
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


Pool = Annotated[AsyncConnectionPool, Depends(_pool)]
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


async def start_session(
    pool: AsyncConnectionPool, tokens: TokenService, user: dict[str, Any]
) -> dict[str, Any]:
    """Our tokens for a user who just proved who they are: a short access
    token and the first refresh token of a new family. Never an admin's: an
    admin's session begins in api.mfa_verify, with the second factor."""
    access = tokens.issue(user)
    refresh, digest = new_refresh_token()
    await call_api(pool, "app_user", shim_claims(user["id"]), "issue_refresh", digest)
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

    @app.get("/ready", tags=["ops"], responses={503: PROBLEM})
    async def ready(pool: Pool) -> dict[str, Any]:
        expected = sorted(p.name for p in (ROOT / VERSIONED).glob("*.sql"))
        try:
            async with pool.connection(timeout=2) as conn:
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
        found = json.loads(await call_api(pool, "anon", "", "login_lookup", body.email) or "null")
        if found and found["mfa"] and body.otp is None:
            # Said before the password is checked, so it says nothing about it.
            raise Problem("MFA_REQUIRED", "Admins sign in with a one-time code (otp)")
        stored = found["password_hash"] if found else None
        ok = await gate.run(verify_password, stored, body.password)
        if not found or not ok:
            await call_api(pool, "anon", "", "login_failed", body.email)
            raise Problem("INVALID_CREDENTIALS", "Wrong email or password")
        if found["mfa"]:
            # The code is checked in SQL (the secret never leaves it), which
            # counts wrong ones and begins the admin's refresh family.
            refresh, digest = new_refresh_token()
            args = (found["id"], body.otp, request.app.state.totp_key, digest)
            admin = json.loads(await call_api(pool, "anon", "", "mfa_verify", *args) or "null")
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
        return raw_json(await call_api(pool, "anon", "", "verify_email", refresh_hash(token)))

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
        user = json.loads(await call_api(pool, "anon", "", *args) or "null")
        return {**tokens.issue(user), "refresh_token": new}

    @app.post("/v1/auth/logout", tags=["auth"])
    async def logout(body: RefreshIn, pool: Pool) -> Response:
        """Revokes the refresh token's whole family; access tokens expire on their own."""
        args = ("logout", refresh_hash(body.refresh_token))
        return raw_json(await call_api(pool, "anon", "", *args))

    @app.get("/v1/auth/oauth/google", tags=["auth"], status_code=302)
    async def oauth_google(pool: Pool, oidc: Oidc) -> Response:
        if not oidc.configured:
            raise Problem("UNAVAILABLE", "Google sign-in is not configured here")
        auth = await oidc.authorization()
        # The state is bound to this browser: a random cookie, its hash kept
        # with the state; the callback must come with it.
        browser, browser_hash = new_refresh_token()
        args = (auth.state, auth.nonce, auth.code_verifier, oidc.redirect_uri, browser_hash)
        await call_api(pool, "anon", "", "oauth_begin", *args)
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
        pool: AsyncConnectionPool,
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
        flow = json.loads(await call_api(pool, "anon", "", *args) or "{}")
        id_token = await oidc.exchange(code, flow["code_verifier"], flow["redirect_uri"])
        claims = await oidc.verify(id_token, flow["nonce"])
        if claims.get("email_verified") is not True or not claims.get("email"):
            raise Problem("EMAIL_NOT_VERIFIED", "Google has not verified this account's email")
        args = ("oauth_login", state, str(claims["sub"]), str(claims["email"]))
        user = json.loads(await call_api(pool, "anon", "", *args) or "null")
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
        args = (
            "ad_ssv_reward",
            callback.transaction_id,
            callback.custom_data,
            callback.user_id,
            callback.rewarded_at,
            Jsonb(callback.evidence),
        )
        return raw_json(await call_api(pool, "ad_network", "", *args))


app = create_app()
