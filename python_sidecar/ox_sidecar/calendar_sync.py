"""The NYSE trading calendar from exchange_calendars (XNYS), never a typed list."""

from __future__ import annotations

import datetime as dt
from typing import Any

import exchange_calendars as xcals


def nyse_sessions(first_year: int, last_year: int) -> list[dict[str, Any]]:
    # Explicit bounds: the library's default ends one year from today.
    cal = xcals.get_calendar("XNYS", start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    early = set(cal.early_closes)
    return [
        {
            "trading_day": day.date().isoformat(),
            "open_at": row.open.isoformat(),
            "close_at": row.close.isoformat(),
            "early_close": day in early,
        }
        for day, row in cal.schedule.iterrows()
    ]


def default_years(today: dt.date, years: int) -> tuple[int, int]:
    """This year and the next years-1, plus last year: January's first session
    compares with December's last close."""
    return today.year - 1, today.year + years - 1
