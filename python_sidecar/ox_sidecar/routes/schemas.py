"""What the routes answer, for /openapi.json. The routes pass the SQL
function's JSON through untouched (no re-validation cost); these models only
document it: the keys every answer has, with their types. `extra="allow"`:
an answer may carry more than is listed here, never less."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Page(Open):
    """A cursor page, newest first: pass `next_cursor` back as `cursor`
    (null on the last page)."""

    items: list[dict[str, Any]]
    next_cursor: int | None


class Items(Open):
    items: list[dict[str, Any]]


class BalanceOut(Open):
    balance: int
    as_of: str = Field(description="KST (+09:00)")


class MeOut(Open):
    id: str
    email: str
    role: str
    display_name: str | None
    nickname: str | None
    created_at: str
    balance: int


class StatsOut(Open):
    balance: int
    predictions: int
    won: int
    lost: int
    void: int
    pending: int
    win_rate: float | None = Field(description="wins / decided, null before any")
    current_streak: int
    best_streak: int
    accuracy: dict[str, float | None] = Field(
        description="wins / decided in the week, month and all time (VOIDs left out)"
    )
    recent_settlements: list[dict[str, Any]]


class UniverseOut(Open):
    trading_day: str
    previous_trading_day: str | None
    symbols: list[dict[str, Any]]


class SessionOut(Open):
    """Today's session (see the route's description for the keys)."""


class PredictionOut(Open):
    """The accepted prediction (the same answer on a retry with the same key)."""


class SettlementsOut(Open):
    """A trading day's settled outcomes per symbol."""


class LeaderboardOut(Page):
    next_cursor: str | None = Field(  # type: ignore[assignment]
        description="opaque keyset of the last row shown; null on the last page"
    )
    period: str
    period_start: str | None
    min_decided: int


class RedemptionOut(Open):
    """The redemption: REQUESTED until the worker hears from the vendor."""


class AdClickOut(Open):
    """The click, with `ssv` for the ad SDK's server-side verification options."""


class SsvOut(Open):
    """The reward the callback paid (the same on a replay)."""


class Done(Open):
    """What the function did: the changed record, or a summary of it."""


class AdminOut(Open):
    """The admin function's answer (one JSON object)."""


# The admin lists that are a JSON array (batches, settings).
AdminRows = list[dict[str, Any]]


class MetricsOut(BaseModel):
    items: list[dict[str, Any]] = Field(description="One per trading day")


def answers(model: Any, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that passes its SQL function's JSON through."""
    model_doc = model.__doc__ if isinstance(model, type) and issubclass(model, BaseModel) else None
    return {status: {"model": model, "description": model_doc or "Success"}}
