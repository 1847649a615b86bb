"""The rate limiter's count of one request, carried to the request's first
database call (db.call_api), which counts it in the same transaction as the
call (and round trip, where pipelined): no extra transaction per request. See ratelimit.py
for who the client is and README "Rate limits" for the guarantees."""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass, field

from .problems import Problem


@dataclass
class Gate:
    """What to count (set by deps.rate_limited), and once counted, the
    RateLimit-* headers of the answer. `pending` until one database call (or
    the standalone count) has counted it: a request is counted once."""

    ip: str
    user: str | None
    kinds: list[str]
    pending: bool = True
    headers: dict[str, str] = field(default_factory=dict)

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


def verdict(gate: Gate, answer_text: str | None) -> None:
    """The limiter's answer (api.rate_limit or api.rate_limit_gate): the
    headers go on the gate; a refusal is RATE_LIMITED with its headers."""
    answer = json.loads(answer_text or "{}")
    if not answer.get("allowed", False):
        retry = int(answer.get("retry_after") or 1)
        gate.headers = {}  # the refusal carries its own
        raise Problem(
            "RATE_LIMITED",
            f"Too many requests; retry in {retry} s",
            headers=headers(answer.get("tightest"), retry),
        )
    gate.headers = headers(answer.get("tightest"))
