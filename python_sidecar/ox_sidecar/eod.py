"""End-of-day closes: the offline CSV provider (header trading_day,symbol,close)."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path


class CsvError(Exception):
    pass


@dataclass(frozen=True)
class Close:
    day: dt.date
    symbol: str
    close: Decimal


def read_closes_csv(path: Path) -> list[Close]:
    """Every row or an error naming the first bad line: a half-loaded file is worse than none."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != ["trading_day", "symbol", "close"]:
            raise CsvError(f"{path.name}: header must be trading_day,symbol,close")
        closes = []
        for line, row in enumerate(reader, start=2):
            try:
                close = Close(
                    dt.date.fromisoformat(row["trading_day"]),
                    row["symbol"].strip().upper(),
                    Decimal(row["close"]),
                )
            except (ValueError, InvalidOperation, AttributeError) as exc:
                raise CsvError(f"{path.name}:{line}: {exc}") from exc
            if not close.close.is_finite() or close.close <= 0:
                raise CsvError(f"{path.name}:{line}: close must be a positive number")
            closes.append(close)
    return closes
