"""Signing in (password, second factor, refresh, Google) and the account:
`/v1/auth/*`, the JWKS, and `/v1/users/me` with its nickname."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..db import AUTH, Pools, call_api
from ..deps import Gate, Oidc, Pool, Tokens, User, raw_json
from ..oauth import OidcClient
from ..problems import Problem
from ..tokens import (
    TokenService,
    claims_json,
    hash_password,
    new_refresh_token,
    refresh_hash,
    verify_password,
)
from .schemas import Done, MeOut, answers

router = APIRouter()


class Credentials(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=8, max_length=128)


class SignupIn(Credentials):
    # The rule api.signup applies (after trimming spaces), stated in the schema.
    email: str = Field(min_length=3, max_length=254, pattern=r"^ *[^@\s]+@[^@\s]+\.[^@\s]+ *$")


class LoginIn(Credentials):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "player@example.com", "password": "correct horse battery"}]
        }
    )

    otp: str | None = Field(default=None, pattern=r"^[0-9]{6}$", description="Admins: TOTP code")


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=20, max_length=200)


class OAuthCallbackIn(BaseModel):
    code: str = Field(min_length=1, max_length=2048)
    state: str = Field(min_length=32, max_length=200)


class NicknameIn(BaseModel):
    nickname: str | None = Field(max_length=40, description="2 to 20 characters; null removes it")


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


@router.get("/.well-known/jwks.json", tags=["auth"])
async def jwks(tokens: Tokens) -> dict[str, Any]:
    return tokens.jwks()


@router.post("/v1/auth/signup", status_code=201, response_model=SignupOut, tags=["auth"])
async def signup(body: SignupIn, request: Request, pool: Pool, tokens: Tokens, gate: Gate) -> Any:
    password_hash = await gate.run(hash_password, body.password)
    user_text = await call_api(pool, "anon", "", "signup", body.email, password_hash)
    created = json.loads(user_text or "null")
    session = await start_session(pool, tokens, created)
    if request.app.state.mail_enabled:
        # The verification link, mailed by the worker (never inline).
        claims = shim_claims(created["id"])
        await call_api(pool, "app_user", claims, "resend_verification")
    return JSONResponse({"user": created, **session}, status_code=201)


@router.post("/v1/auth/login", response_model=SignupOut, tags=["auth"])
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


@router.get("/v1/auth/verify-email", response_class=HTMLResponse, tags=["auth"])
async def verify_email_page(token: VerifyToken) -> HTMLResponse:
    """The link in the email: a page to confirm, which spends nothing (mail
    scanners open links; only the person clicking Confirm verifies)."""
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Confirm your email</title>"
        f'<form method=post action="/v1/auth/verify-email?token={token}">'
        "<p>Confirm that this email address is yours and that you signed up for OX Predict."
        " <button type=submit>Confirm</button></p></form>"
    )


@router.post("/v1/auth/verify-email", tags=["auth"], responses=answers(Done))
async def verify_email(token: VerifyToken, pool: Pool) -> Response:
    """Spends the link (once, before it expires) and verifies the email."""
    return raw_json(await call_api(pool, AUTH, "", "verify_email", refresh_hash(token)))


@router.post(
    "/v1/auth/verify-email/resend", status_code=202, tags=["auth"], responses=answers(Done, 202)
)
async def resend_verification(caller: User, request: Request, pool: Pool) -> Response:
    """Mails a new link to the signed-in user (at most one a minute)."""
    if not request.app.state.mail_enabled:
        # A mail job with no server would only retry until it died.
        raise Problem("UNAVAILABLE", "This server sends no email; an operator can verify you")
    args = ("resend_verification",)
    return raw_json(await call_api(pool, caller.role, caller.claims, *args), 202)


@router.post("/v1/auth/refresh", response_model=TokenOut, tags=["auth"])
async def refresh(body: RefreshIn, pool: Pool, tokens: Tokens) -> Any:
    new, digest = new_refresh_token()
    args = ("refresh", refresh_hash(body.refresh_token), digest)
    user = json.loads(await call_api(pool, AUTH, "", *args) or "null")
    return {**tokens.issue(user), "refresh_token": new}


@router.post("/v1/auth/logout", tags=["auth"], responses=answers(Done))
async def logout(body: RefreshIn, pool: Pool) -> Response:
    """Revokes the refresh token's whole family; access tokens expire on their own."""
    args = ("logout", refresh_hash(body.refresh_token))
    return raw_json(await call_api(pool, AUTH, "", *args))


@router.get(
    "/v1/auth/oauth/google",
    status_code=302,
    tags=["auth"],
    response_class=RedirectResponse,
    responses={
        302: {
            "description": "To Google's sign-in page (a cookie binds the state to this browser)",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    },
)
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
    flow = json.loads(await call_api(pool, AUTH, "", "oauth_consume", state, binding) or "{}")
    id_token = await oidc.exchange(code, flow["code_verifier"], flow["redirect_uri"])
    claims = await oidc.verify(id_token, flow["nonce"])
    if claims.get("email_verified") is not True or not claims.get("email"):
        raise Problem("EMAIL_NOT_VERIFIED", "Google has not verified this account's email")
    args = ("oauth_login", state, str(claims["sub"]), str(claims["email"]))
    user = json.loads(await call_api(pool, AUTH, "", *args) or "null")
    return await start_session(pool, tokens, user)


@router.get("/v1/auth/oauth/callback", response_model=TokenOut, tags=["auth"])
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


@router.post("/v1/auth/oauth/callback", response_model=TokenOut, tags=["auth"])
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


@router.get("/v1/users/me", tags=["users"], responses=answers(MeOut))
async def me(caller: User, pool: Pool) -> Response:
    return raw_json(await call_api(pool, caller.role, caller.claims, "me"))


@router.post("/v1/users/me/nickname", tags=["users"], responses=answers(Done))
async def set_nickname(body: NicknameIn, caller: User, pool: Pool) -> Response:
    """The public name on the leaderboard (null removes it): 2 to 20
    characters, no "@", unique whatever the case (409 NICKNAME_TAKEN)."""
    return raw_json(await call_api(pool, caller.role, caller.claims, "set_nickname", body.nickname))
