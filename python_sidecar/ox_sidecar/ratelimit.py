"""Who the client is for rate limiting, and the headers of the answer. The
counting and the limits live in SQL (api.rate_limit_gate, api.rate_limit,
crypto.settings); a request is counted in the transaction of its first
database call (db.call_api, gate.py), or on its own when it has none."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db import Pools, count_alone
from .gate import SLOT, Slot, pending, tighter
from .problems import Problem, problem_response

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The request kinds with limits of their own, by route (method, path template).
# Predictions have limits of their own too, but as a rule of the call
# (crypto.prediction_rate in crypto.place_prediction), not the gate's.
KINDS: dict[tuple[str, str], list[str]] = {
    ("GET", "/v1/points/balance"): ["point_reads"],
    ("GET", "/v1/points/ledger"): ["point_reads"],
    # Both return the balance: reading it there is a point read too.
    ("GET", "/v1/users/me"): ["point_reads"],
    ("GET", "/v1/users/stats"): ["point_reads"],
}
# Probes of load balancers and orchestrators, and the scraper, are never limited; nor is the
# ad network's callback, refused before any database work unless its
# signature verifies (a cheap check), and called from the network's many
# addresses, where a per-IP limit would only refuse real rewards.
EXEMPT = frozenset({"/health", "/ready", "/metrics", "/v1/ads/ssv"})


def parse_networks(values: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip()]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_ip(peer: str, forwarded_for: str | list[str] | None, trusted: list[Network]) -> str:
    """The peer, unless the peer is a trusted proxy: then the rightmost address
    in X-Forwarded-For that is not one of ours (anything left of it is what
    the client claimed, and a client can claim anything). Several header
    lines are one list, in order (RFC 9110 5.3): a proxy may append a line
    rather than extend the first, so reading only the first would believe
    the client."""

    def is_trusted(address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in net for net in trusted)

    if isinstance(forwarded_for, list):
        forwarded_for = ",".join(forwarded_for)
    if not forwarded_for or not is_trusted(peer):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if _ip(hop) is None:
            return peer  # a malformed chain: fall back to who connected
        if not is_trusted(hop):
            return hop
    return peer


@functools.lru_cache(maxsize=65536)  # a pure function of the peer, parsed on every request
def limit_key(address: str) -> str:
    """What one client is, for the per-IP limit: an IPv4 address, or the /64
    of an IPv6 one (a single host usually gets a whole /64 and can pick any
    address in it)."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address


async def settle(pools: Pools) -> None:
    """Count the current request now, in a transaction of its own, if no
    call counted it yet: for routes with costly work before their first
    database call (argon2, the identity provider), which a refused request
    must not reach. RATE_LIMITED when over a limit."""
    gate = pending()
    if gate is not None:
        await count_alone(pools, gate)


class HeadersMiddleware:
    """Plain ASGI: makes the request's slot for its rate-limit gate (gate.py;
    the `rate_limited` dependency, deps.py, puts the gate in it), and puts
    the RateLimit-* headers of its count on every answer the limiter let
    through (a refusal carries its own). A request that reached no call
    that counted it (no database call, or refused before its call: a bad
    token, a bad body) is counted on its own before its answer goes out,
    and answered 429 instead when that count refuses it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot = Slot()
        token = SLOT.set(slot)
        refused = False

        async def send_with_headers(message: Message) -> None:
            nonlocal refused
            if refused:
                return  # the route's own answer, replaced by the refusal
            if message["type"] == "http.response.start":
                gate = slot.gate.take() if slot.gate else None
                if gate is not None:
                    try:
                        await count_alone(scope["app"].state.pool, gate)
                    except Problem as problem:
                        refused = True
                        path = scope.get("path")
                        await problem_response(problem, path)(scope, receive, send)
                        return
                counted = tighter(slot.gate.headers if slot.gate else {}, slot.call_headers)
                if counted:
                    # A refusal's own RateLimit-* (a limit the call checked
                    # itself, db._answer) are the ones it answers with.
                    present = {name for name, _ in message.get("headers", [])}
                    extra = [
                        (name, v.encode())
                        for k, v in counted.items()
                        if (name := k.lower().encode()) not in present
                    ]
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            SLOT.reset(token)
