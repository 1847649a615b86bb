"""What the routes share: who is calling, the app's services as FastAPI
dependencies, the path/query/header parameters several areas use, and the
raw-JSON answer (as full-stack-fastapi-template's `api/deps.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from . import ratelimit
from .db import Pools, count_alone
from .gate import SLOT
from .gate import Gate as RateLimitGate
from .guards import HashGate
from .oauth import OidcClient
from .problems import Problem
from .tokens import TokenService, claims_json


class ProblemOut(BaseModel):
    """RFC 9457 problem+json, as problems.problem_response writes it."""

    type: str = Field(description="A URI naming the problem")
    title: str
    status: int
    detail: str = Field(description="A sentence for people")
    code: str = Field(description="The stable code (crypto.error_codes), e.g. NO_SESSION")
    instance: str | None = Field(default=None, description="The request's path")
    errors: list[dict[str, str]] | None = Field(
        default=None, description="Invalid input: one entry per field (field, in, rule)"
    )


PROBLEM: dict[str, Any] = {
    "content": {"application/problem+json": {"schema": ProblemOut.model_json_schema()}},
    "description": "problem+json (RFC 9457)",
}
# Every route may answer these (bad input, tokens, limits, the database).
PROBLEM_STATUSES = (400, 401, 403, 404, 409, 413, 422, 429, 503)


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
    # Not getattr(route, "path", request.url.path): that builds the URL
    # (a few % of a request's CPU) even when the route has its path.
    path = route.path if route is not None else request.url.path
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
    slot = SLOT.get()
    if slot is None:  # not under HeadersMiddleware: count now
        await count_alone(request.app.state.pool, RateLimitGate(ip, user, kinds))
        return
    # Let through on this process's leases (gate.Leases), or counted by the
    # request's first database call, in its transaction and round trip
    # (db.call_api), which may grant leases, or on its own if there is none
    # (ratelimit.py).
    leases = request.app.state.leases
    rest, leased = leases.take(ip, user, kinds)
    if not rest:
        slot.gate = RateLimitGate(ip, user, kinds, pending=False, headers=leased)
        return
    slot.gate = RateLimitGate(
        ip if "ip" in rest else None,
        user,
        [kind for kind in kinds if kind in rest],
        leases=leases,
        leased_headers=leased,
    )


async def signed_in(caller: Annotated[Caller, Depends(optional_caller)]) -> Caller:
    if caller.role == "anon":
        raise Problem("INVALID_TOKEN", "This request needs a signed-in user")
    return caller


async def admin(caller: Annotated[Caller, Depends(signed_in)]) -> Caller:
    if caller.role != "app_admin":
        raise Problem("FORBIDDEN", "Admins only")
    return caller


async def _oidc(request: Request) -> OidcClient:
    # Calls to the identity provider come before the first database call.
    await ratelimit.settle(request.app.state.pool)
    return request.app.state.oidc  # type: ignore[no-any-return]


async def _hash_gate(request: Request) -> HashGate:
    # argon2 (64 MiB, tens of ms) comes before the first database call.
    await ratelimit.settle(request.app.state.pool)
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


# --- parameters several areas share --------------------------------------------

# A bigint: anything larger is refused here (it would reach SQL as numeric).
Cursor = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=100)]

# Spending and earning points: a missing key is how a double click pays twice.
# At most 150 characters: the ledger key adds the user's id to it.
RequiredIdempotencyKey = Annotated[
    str,
    Header(alias="Idempotency-Key", min_length=1, max_length=150, description="Required"),
]
