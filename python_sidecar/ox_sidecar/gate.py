"""The rate limiter's count of one request, carried to the request's first
database call (db.call_api), which counts it in the same transaction as the
call (and round trip, where pipelined): no extra transaction per request;
and this process's leases, which let requests through with no count at all.
See ratelimit.py for who the client is and README "Rate limits" for the
guarantees."""

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

    def live(self, now: float) -> bool:
        return self.left > 0 and self.expires > now


class Leases:
    """This API process's leases (api.rate_limit_gate grants them; README
    "Rate limits"). A request spends one unit of the lease of each of its
    subjects (its IP; its user's point reads) that holds one, with no
    statement of the limiter's; the gate counts only the rest, and none at
    all when every subject held a lease. The gate counted the leased
    requests when it granted them. Lease sizes are a share of each limit
    (ratelimit.lease_share): none where that is below one request. The
    bounds this puts on each limit: README "Rate limits"."""

    # Subjects held; past it, the expired ones go (looked for at most once a
    # second), then the least recently granted.
    MAX = 100_000
    # One request at a time asks for a subject's lease: a burst of requests
    # arriving before the first lease would otherwise each reserve one.
    # Forgotten after this long should its answer never come: longer than
    # an ask can take (the gate waits on a player's row at most the
    # statement timeout, 5 s, and the call takes as long again).
    ASK_SECONDS = 15.0

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], Lease] = {}
        self._asking: dict[tuple[str, str], float] = {}
        self._swept = 0.0

    @staticmethod
    def _key(subject: str, ip: str | None, user: str | None) -> tuple[str, str]:
        return ("ip", ip or "") if subject == "ip" else (subject, user or "")

    @staticmethod
    def subjects(ip: str | None, user: str | None, kinds: list[str]) -> list[str]:
        """A request's subjects: its IP, and its user's kinds (an anonymous
        request has none of those: the user limits need a user)."""
        return (["ip"] if ip is not None else []) + (list(kinds) if user else [])

    def take(self, ip: str, user: str | None, kinds: list[str]) -> tuple[list[str], dict[str, str]]:
        """Spends a unit of every live lease of the request's subjects; the
        subjects left for the gate to count, and the RateLimit-* headers of
        the tightest lease spent ({} when none was)."""
        now = time.monotonic()
        left, spent = [], []
        for subject in self.subjects(ip, user, kinds):
            lease = self._held.get(self._key(subject, ip, user))
            if lease is not None and lease.live(now):
                lease.left -= 1
                lease.remaining = max(lease.remaining - 1, 0)
                spent.append(lease)
            else:
                left.append(subject)
        if not spent:
            return left, {}
        tightest = min(spent, key=lambda lease: lease.remaining)
        return left, headers(
            {
                "limit": tightest.limit,
                "remaining": tightest.remaining,
                "reset": max(math.ceil(tightest.expires - now), 0),
            }
        )

    def wanted(self, ip: str | None, user: str | None, kinds: list[str], now: float) -> list[str]:
        """The subjects the gate is to count that hold no live lease and
        that no other request of this process is asking for: the gate is
        asked to lease those only. `now`: when the ask is made (monotonic),
        handed back to `settle` as its `asked_at`."""
        wanted = []
        for subject in self.subjects(ip, user, kinds):
            key = self._key(subject, ip, user)
            lease = self._held.get(key)
            if lease is not None and lease.live(now):
                continue
            if self._asking.get(key, 0.0) > now:
                continue
            self._asking[key] = self.asked_until(now)
            _bound(self._asking, self.MAX)
            wanted.append(subject)
        return wanted

    def asked_until(self, asked_at: float) -> float:
        """The mark `wanted` left for an ask made at `asked_at`."""
        return asked_at + self.ASK_SECONDS

    def settle(
        self,
        ip: str | None,
        user: str | None,
        asked: list[str],
        granted: dict[str, Any],
        asked_at: float,
    ) -> None:
        """The gate answered (or failed: nothing granted) what `wanted` asked
        at `asked_at` (monotonic, before the gate's statement was sent: the
        lease's window is measured from no later than the gate's clock)."""
        for subject in asked:
            key = self._key(subject, ip, user)
            # Only this ask's own mark: a later ask (after ours timed out)
            # keeps its own.
            if self._asking.get(key) == self.asked_until(asked_at):
                del self._asking[key]
        for subject, lease in granted.items():
            key = self._key(subject, ip, user)
            expires = asked_at + float(lease["expires_in"])
            held = self._held.get(key)
            now = time.monotonic()
            if held is not None and held.live(now) and abs(held.expires - expires) < 1.0:
                # Asked at once in one window: both reserved, both ours.
                held.left += int(lease["n"])
                held.expires = min(held.expires, expires)
                continue
            # Re-inserted, so that the table's order is the order of grants.
            self._held.pop(key, None)
            self._held[key] = Lease(
                int(lease["n"]), expires, int(lease["limit"]), int(lease["remaining"])
            )
            if len(self._held) > self.MAX and now - self._swept >= 1.0:
                self._swept = now
                self._held = {k: v for k, v in self._held.items() if v.expires > now}
            _bound(self._held, self.MAX)


def _bound(table: dict[Any, Any], most: int) -> None:
    """Forget the oldest entries past `most` (dicts keep insertion order):
    a lease forgotten early only wastes what it reserved."""
    while len(table) > most:
        del table[next(iter(table))]


@dataclass
class Gate:
    """What to count (set by deps.rate_limited), and once counted, the
    RateLimit-* headers of the answer. `pending` until one database call (or
    the standalone count) has counted it: a request is counted once. The IP
    (None when a lease covered it) and the kinds are those left to count.
    With `leases`, the gated call may be granted leases for later requests."""

    ip: str | None
    user: str | None
    kinds: list[str]
    pending: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    leases: Leases | None = None
    asked: list[str] = field(default_factory=list)
    asked_at: float = 0.0
    leased_headers: dict[str, str] = field(default_factory=dict)

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
    # The RateLimit-* headers of a limit the call checked itself (call_verdict).
    call_headers: dict[str, str] = field(default_factory=dict)


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
    _settle(gate, {})


def _settle(gate: Gate, granted: dict[str, Any]) -> None:
    if gate.leases is not None and gate.asked:
        gate.leases.settle(gate.ip, gate.user, gate.asked, granted, gate.asked_at)
        gate.asked = []


def verdict(gate: Gate, answer_text: str | None) -> None:
    """The limiter's answer (api.rate_limit or api.rate_limit_gate): the
    headers go on the gate; a refusal is RATE_LIMITED with its headers."""
    answer = json.loads(answer_text or "{}")
    _settle(gate, answer.get("leases") or {})
    if not answer.get("allowed", False):
        retry = int(answer.get("retry_after") or 1)
        gate.headers = {}  # the refusal carries its own
        raise Problem(
            "RATE_LIMITED",
            f"Too many requests; retry in {retry} s",
            headers=headers(answer.get("tightest"), retry),
        )
    gate.headers = tighter(headers(answer.get("tightest")), gate.leased_headers)


def tighter(one: dict[str, str], other: dict[str, str]) -> dict[str, str]:
    """Of two limits' RateLimit-* headers, those with less remaining."""
    if not one or not other:
        return one or other
    if int(other["RateLimit-Remaining"]) < int(one["RateLimit-Remaining"]):
        return other
    return one


def call_verdict(answer_text: str | None) -> dict[str, str]:
    """A limit the call checked itself (crypto.prediction_rate, whose
    answer the call's statement reads, db._api_query): its RateLimit-*
    headers, for the answer (Slot.call_headers) when it let the call
    through, or, with Retry-After, for the refusal the call returned."""
    if not answer_text:
        return {}
    answer = json.loads(answer_text)
    if not answer.get("allowed", False):
        return headers(answer.get("tightest"), int(answer.get("retry_after") or 1))
    counted = headers(answer.get("tightest"))
    slot = SLOT.get()
    if slot is not None:
        slot.call_headers = counted
    return counted
