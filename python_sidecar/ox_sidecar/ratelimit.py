"""Who the client is for rate limiting, and the headers of the answer. The
counting and the limits live in SQL (api.rate_limit, crypto.settings)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db import AUTH, Pools, call_api
from .problems import Problem

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The request kinds with limits of their own, by route (method, path template).
KINDS: dict[tuple[str, str], list[str]] = {
    ("POST", "/v1/predictions/{symbol}"): ["predictions"],
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


def headers(tightest: dict[str, int] | None, retry_after: int | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    if tightest:
        out = {
            "RateLimit-Limit": str(tightest["limit"]),
            "RateLimit-Remaining": str(tightest["remaining"]),
            "RateLimit-Reset": str(tightest["reset"]),
        }
    if retry_after:
        out["Retry-After"] = str(retry_after)
    return out


async def check(pools: Pools, ip: str, user: str | None, kinds: list[str]) -> dict[str, str]:
    """Counts this request; the headers to send, or RATE_LIMITED."""
    answer = json.loads(await call_api(pools, AUTH, "", "rate_limit", ip, user, kinds) or "{}")
    if not answer.get("allowed", False):
        retry = int(answer.get("retry_after") or 1)
        raise Problem(
            "RATE_LIMITED",
            f"Too many requests; retry in {retry} s",
            headers=headers(answer.get("tightest"), retry),
        )
    return headers(answer.get("tightest"))


class HeadersMiddleware:
    """Plain ASGI: the RateLimit-* headers of what `check` counted (kept in
    the request's state by the `rate_limited` dependency, deps.py) on every
    answer the limiter let through. A refusal carries its own (Problem)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                counted = (scope.get("state") or {}).get("ratelimit") or {}
                if counted:
                    extra = [(k.lower().encode(), v.encode()) for k, v in counted.items()]
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
