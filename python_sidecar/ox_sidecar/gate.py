"""The rate limiter's count of one request, carried to the request's first
database call (db.call_api), which counts it in the same transaction as the
call (and round trip, where pipelined): no extra transaction per request. See ratelimit.py
for who the client is and README "Rate limits" for the guarantees."""

from __future__ import annotations

import json
import math
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .problems import Problem


@dataclass
class Lease:
    """Requests of one subject (an IP, or a user's kind) this process may
    let through without asking, until `expires` (monotonic: the end of the
    window the gate counted them in)."""

    left: int
    expires: float
    limit: int
    remaining: int


class Leases:
    """This API process's leases (api.rate_limit_gate grants them; README
    "Rate limits"). A request whose every subject holds a lease is let
    through here, with no statement of the limiter's: per IP and for point
    reads the gate counted the leased requests when it granted them, so no
    limit is passed; the per-user prediction limits, counted when a
    prediction is accepted, may be passed by the leases other processes
    hold. Lease sizes are a share of each limit (ratelimit.lease_share):
    none where that is below one request, as for predictions a minute."""

    MAX = 100_000  # subjects held; past it, the expired ones are dropped
    # One request at a time asks for a subject's lease: a burst of requests
    # arriving before the first lease would otherwise each reserve one.
    # Forgotten after this long should its answer never come.
    ASK_SECONDS = 5.0

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], Lease] = {}
        self._asking: dict[tuple[str, str], float] = {}

    @staticmethod
    def _key(subject: str, ip: str, user: str | None) -> tuple[str, str]:
        return ("ip", ip) if subject == "ip" else (subject, user or "")

    @staticmethod
    def _subjects(ip: str, user: str | None, kinds: list[str]) -> list[tuple[str, str]]:
        return [("ip", ip)] + ([(kind, user) for kind in kinds] if user else [])

    def wanted(self, ip: str, user: str | None, kinds: list[str]) -> list[str]:
        """The subjects of a request that hold no live lease here: the gate
        is asked for those only, so a subject's unused lease is never
        reserved twice."""
        now = time.monotonic()
        wanted = []
        for subject, key in zip(["ip", *kinds], self._subjects(ip, user, kinds), strict=False):
            lease = self._held.get(key)
            if lease is not None and lease.left > 0 and lease.expires > now:
                continue
            if self._asking.get(key, 0.0) > now:
                continue
            self._asking[key] = now + self.ASK_SECONDS
            wanted.append(subject)
        return wanted

    def take(self, ip: str, user: str | None, kinds: list[str]) -> dict[str, str] | None:
        """The RateLimit-* headers of a request let through on its leases, or
        None when a subject holds none (the gate must count the request)."""
        now = time.monotonic()
        held = [self._held.get(s) for s in self._subjects(ip, user, kinds)]
        leases = [h for h in held if h is not None and h.left > 0 and h.expires > now]
        if len(leases) < len(held):
            return None
        for lease in leases:
            lease.left -= 1
            lease.remaining = max(lease.remaining - 1, 0)
        tightest = min(leases, key=lambda lease: lease.remaining)
        return headers(
            {
                "limit": tightest.limit,
                "remaining": tightest.remaining,
                "reset": math.ceil(tightest.expires - now),
            }
        )

    def settle(self, ip: str, user: str | None, asked: list[str], granted: dict[str, Any]) -> None:
        """The gate answered (or failed: nothing granted) what `wanted` asked."""
        now = time.monotonic()
        if len(self._held) > self.MAX:
            self._held = {k: v for k, v in self._held.items() if v.expires > now}
            self._asking = {k: v for k, v in self._asking.items() if v > now}
        for subject in asked:
            self._asking.pop(self._key(subject, ip, user), None)
        for subject, lease in granted.items():
            key = self._key(subject, ip, user)
            held = self._held.get(key)
            if held is not None and held.left > 0 and held.expires > now:
                # Two requests asked at once: both reserved, both are ours.
                held.left += int(lease["n"])
                continue
            self._held[key] = Lease(
                int(lease["n"]),
                now + float(lease["expires_in"]),
                int(lease["limit"]),
                int(lease["remaining"]),
            )


@dataclass
class Gate:
    """What to count (set by deps.rate_limited), and once counted, the
    RateLimit-* headers of the answer. `pending` until one database call (or
    the standalone count) has counted it: a request is counted once. With
    `leases`, the gated call may be granted leases for later requests."""

    ip: str
    user: str | None
    kinds: list[str]
    pending: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    leases: Leases | None = None
    asked: list[str] = field(default_factory=list)

    def take(self) -> Gate | None:
        """This gate, for the caller to count, if nobody counted it yet."""
        if not self.pending:
            return None
        self.pending = False
        return self


@dataclass
class Slot:
    """One per request (set by ratelimit.HeadersMiddleware around the app),
    so that the gate the dependency makes is seen by every task the request
    runs, and by the middleware after the route."""

    gate: Gate | None = None


SLOT: ContextVar[Slot | None] = ContextVar("oxp_rate_limit_slot", default=None)


def pending() -> Gate | None:
    """The current request's gate, taken (counted by the caller), if any."""
    slot = SLOT.get()
    return slot.gate.take() if slot and slot.gate else None


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


def verdict_lost(gate: Gate) -> None:
    """The gated call failed: what it asked leases for may be asked again."""
    if gate.leases is not None and gate.asked:
        gate.leases.settle(gate.ip, gate.user, gate.asked, {})
        gate.asked = []


def verdict(gate: Gate, answer_text: str | None) -> None:
    """The limiter's answer (api.rate_limit or api.rate_limit_gate): the
    headers go on the gate; a refusal is RATE_LIMITED with its headers."""
    answer = json.loads(answer_text or "{}")
    if gate.leases is not None and gate.asked:
        gate.leases.settle(gate.ip, gate.user, gate.asked, answer.get("leases") or {})
        gate.asked = []
    if not answer.get("allowed", False):
        retry = int(answer.get("retry_after") or 1)
        gate.headers = {}  # the refusal carries its own
        raise Problem(
            "RATE_LIMITED",
            f"Too many requests; retry in {retry} s",
            headers=headers(answer.get("tightest"), retry),
        )
    gate.headers = headers(answer.get("tightest"))
