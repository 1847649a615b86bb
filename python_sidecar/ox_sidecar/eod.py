"""End-of-day closes: providers (yfinance, CSV) and the fetch of one trading day.

Only raw official closes count (never split/dividend-adjusted). SQL decides
what is missing and whether it is final; this module only brings numbers."""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

import httpx
import psycopg
import yfinance as yf
from yfinance.exceptions import YFRateLimitError, YFTickerMissingError

SIX_PLACES = Decimal("0.000001")


class CsvError(Exception):
    pass


class ProviderUnavailable(Exception):
    """The source refused or failed (rate limit, outage): retry later."""


class PricesNotFinal(Exception):
    pass


@dataclass(frozen=True)
class Close:
    day: dt.date
    symbol: str
    close: Decimal
    # Which source gave it, when a provider combines several (FallbackProvider).
    source: str | None = None


class PriceProvider(Protocol):
    @property
    def name(self) -> str:
        """What the fetch log calls this source."""
        ...

    def closes(self, days: set[dt.date], symbols: Iterable[str]) -> list[Close]:
        """The closes it has for those days and symbols; missing ones are left out."""
        ...


CSV_HEADER = ["trading_day", "symbol", "close"]


def read_csv_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a closes file as text, each with its line number: the database
    judges every row (crypto.eod_prices_problems) and names each refused one."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames != CSV_HEADER:
                raise CsvError(f"{path.name}: the header must be {','.join(CSV_HEADER)}")
            rows, extra = [], []
            for row in reader:
                if None in row:  # more fields than the header names
                    extra.append(str(reader.line_num))
                rows.append({"line": reader.line_num, **{k: row.get(k) for k in CSV_HEADER}})
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CsvError(f"{path.name}: not a UTF-8 CSV file ({exc})") from exc
    if extra:
        raise CsvError(f"{path.name}: more than 3 fields on line {', '.join(extra)}")
    if not rows:
        raise CsvError(f"{path.name}: no rows after the header")
    return rows


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
            except InvalidOperation as exc:
                # Decimal's own message is a class repr (decimal.ConversionSyntax).
                bad = row["close"]
                raise CsvError(f"{path.name}:{line}: close {bad!r} is not a number") from exc
            except (ValueError, AttributeError) as exc:
                raise CsvError(f"{path.name}:{line}: {exc}") from exc
            if not close.close.is_finite() or close.close <= 0:
                raise CsvError(f"{path.name}:{line}: close must be a positive number")
            closes.append(close)
    return closes


@dataclass
class CsvProvider:
    """Offline closes from a file, for demos and tests."""

    path: Path
    name: str = "csv"

    def closes(self, days: set[dt.date], symbols: Iterable[str]) -> list[Close]:
        wanted = set(symbols)
        return [c for c in read_closes_csv(self.path) if c.day in days and c.symbol in wanted]


@dataclass
class YFinanceProvider:
    """Yahoo Finance daily bars through yfinance, one symbol at a time:
    `Ticker.history` raises on a rate limit where `download` only logs it."""

    ticker: Callable[[str], Any] = yf.Ticker
    name: str = "yfinance"
    timeout: int = 20

    def closes(self, days: set[dt.date], symbols: Iterable[str]) -> list[Close]:
        start, end = min(days), max(days) + dt.timedelta(days=1)  # end is exclusive
        # By default yfinance logs a failed request (DNS, network, HTTP) and
        # returns an empty frame, which would read as "no close for this
        # symbol" and hide the real cause: have it raise instead.
        yf.config.debug.hide_exceptions = False
        found = []
        for symbol in symbols:
            try:
                frame = self.ticker(symbol).history(
                    start=start.isoformat(),
                    end=end.isoformat(),
                    interval="1d",
                    auto_adjust=False,  # raw closes, as the rules require
                    actions=False,
                    timeout=self.timeout,
                )
            except YFRateLimitError as exc:
                raise ProviderUnavailable(f"yfinance rate limit at {symbol}") from exc
            except YFTickerMissingError:
                continue  # Yahoo has no such symbol, or no bars for those days
            except Exception as exc:
                raise ProviderUnavailable(
                    f"yfinance failed at {symbol}: {type(exc).__name__}: {exc}"
                ) from exc
            if frame is None or frame.empty or "Close" not in frame:
                continue
            for stamp, value in frame["Close"].items():
                # Daily bars are stamped at midnight New York time: the trading day.
                day = stamp.date()
                if day in days and value is not None and math.isfinite(value) and value > 0:
                    found.append(
                        Close(day, symbol, Decimal(repr(float(value))).quantize(SIX_PLACES))
                    )
        return found


@dataclass
class StooqProvider:
    """Stooq's daily CSV over HTTP, the second source when Yahoo fails. One
    request per symbol (`AAPL.US`; a class share's dot becomes a dash). Its
    bars are split-adjusted, which is the raw close only for the day just
    ended (a split rewrites the days before it), so it gives that day alone:
    an older close it lacks stays missing for Yahoo or a person."""

    base_url: str = "https://stooq.com/q/d/l/"
    name: str = "stooq"
    timeout: float = 20.0
    transport: httpx.BaseTransport | None = None

    def closes(self, days: set[dt.date], symbols: Iterable[str]) -> list[Close]:
        latest = max(days)
        params = {"i": "d", "d1": latest.strftime("%Y%m%d"), "d2": latest.strftime("%Y%m%d")}
        found = []
        with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
            for symbol in symbols:
                code = symbol.replace(".", "-").lower() + ".us"
                try:
                    answer = client.get(self.base_url, params={"s": code, **params})
                    answer.raise_for_status()
                except httpx.HTTPError as exc:
                    raise ProviderUnavailable(
                        f"stooq failed at {symbol}: {type(exc).__name__}: {exc}"
                    ) from exc
                found += self._parse(symbol, answer.text, {latest})
        return found

    @staticmethod
    def _parse(symbol: str, text: str, days: set[dt.date]) -> list[Close]:
        lines = text.strip().splitlines()
        if not lines or lines[0].strip().lower() == "no data":
            return []  # no such symbol, or no bars for those days
        reader = csv.DictReader(lines)
        if (
            not reader.fieldnames
            or "Date" not in reader.fieldnames
            or "Close" not in reader.fieldnames
        ):
            # Stooq answers its refusals (a daily hit limit) as text with a 200.
            raise ProviderUnavailable(
                f"stooq did not answer with prices at {symbol}: {lines[0][:120]}"
            )
        found = []
        for row in reader:
            try:
                day, value = dt.date.fromisoformat(row["Date"]), Decimal(row["Close"])
            except (TypeError, ValueError, InvalidOperation) as exc:
                raise ProviderUnavailable(f"stooq sent a bad row for {symbol}: {row}") from exc
            if day in days and value.is_finite() and value > 0:
                found.append(Close(day, symbol, value.quantize(SIX_PLACES)))
        return found


@dataclass
class FallbackProvider:
    """The first source, then the next for what it could not give: a source
    that fails (ProviderUnavailable) or lacks a symbol is no longer a lost
    day. What each source said is kept in `notes` for the fetch log."""

    sources: list[PriceProvider]
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.sources)

    def closes(self, days: set[dt.date], symbols: Iterable[str]) -> list[Close]:
        self.notes = []
        wanted = {(d, s) for d in days for s in symbols}
        found: list[Close] = []
        last_error: ProviderUnavailable | None = None
        for source in self.sources:
            missing = sorted({s for _, s in wanted})
            if not missing:
                break
            try:
                got = source.closes({d for d, _ in wanted}, missing)
            except ProviderUnavailable as exc:
                self.notes.append(f"{source.name}: {exc}")
                last_error = exc
                continue
            for c in got:
                if (c.day, c.symbol) in wanted:
                    found.append(Close(c.day, c.symbol, c.close, c.source or source.name))
                    wanted.discard((c.day, c.symbol))
            last_error = None
        if last_error is not None and not found:
            raise ProviderUnavailable("; ".join(self.notes)) from last_error
        return found


@dataclass
class FetchReport:
    trading_day: dt.date
    loaded: int = 0
    missing: list[str] = field(default_factory=list)


def fetch_day(conn: psycopg.Connection, provider: PriceProvider, day: dt.date) -> FetchReport:
    """Fetch what `day` still misses, load it, and log the attempt, on an
    autocommit connection acting as the service role (the provider is called
    outside any transaction). Raises PricesNotFinal before the close."""
    plan = conn.execute("select crypto.eod_fetch_plan(%s)", (day,)).fetchone()[0]  # type: ignore[index]
    if not plan["final"]:
        raise PricesNotFinal(f"closes of {day} are not final before the New York close")
    report = FetchReport(day)
    wanted = {(dt.date.fromisoformat(m["trading_day"]), m["symbol"]) for m in plan["missing"]}
    if not wanted:
        return report

    started = conn.execute("select clock_timestamp()").fetchone()[0]  # type: ignore[index]
    try:
        closes = provider.closes({d for d, _ in wanted}, sorted({s for _, s in wanted}))
    except Exception as exc:
        # Every attempt is logged with its real cause (a DNS failure, a
        # rate limit, a bad file), never as a mere list of what is missing.
        error = str(exc) if isinstance(exc, ProviderUnavailable) else f"{type(exc).__name__}: {exc}"
        conn.execute(
            "select crypto.log_eod_fetch(%s, %s, %s, 'failed', 0, %s)",
            (day, provider.name, started, error),
        )
        raise
    with conn.transaction():
        # In (day, symbol) order: each load takes its day's settlement locks,
        # and days locked out of order would deadlock with a correction.
        for c in sorted(closes, key=lambda c: (c.day, c.symbol)):
            if (c.day, c.symbol) in wanted:
                conn.execute(
                    "select crypto.load_eod_price(%s, %s, %s, %s, %s)",
                    (c.day, c.symbol, c.close, c.source or provider.name, started),
                )
                report.loaded += 1
                wanted.discard((c.day, c.symbol))
        report.missing = [f"{s}@{d}" for d, s in sorted(wanted)]
        # A source that failed while another stood in is named even on success.
        notes = list(getattr(provider, "notes", []))
        if report.missing:
            notes.append(f"missing: {', '.join(report.missing)}")
        conn.execute(
            "select crypto.log_eod_fetch(%s, %s, %s, %s, %s, %s)",
            (
                day,
                provider.name,
                started,
                "failed" if report.missing else "succeeded",
                report.loaded,
                "; ".join(notes) or None,
            ),
        )
    return report


def _provider(which: str, csv_file: Path, stooq_url: str | None) -> PriceProvider:
    if which == "csv":
        return CsvProvider(csv_file)
    if which == "yfinance":
        return YFinanceProvider()
    if which == "stooq":
        return StooqProvider(stooq_url) if stooq_url else StooqProvider()
    raise ValueError(f"unknown EOD provider {which!r} (yfinance, stooq or csv)")


def provider_named(
    name: str, csv_file: Path, fallback: str | None = None, stooq_url: str | None = None
) -> PriceProvider:
    """The configured source, with a second one behind it when given."""
    first = _provider(name, csv_file, stooq_url)
    if fallback is None or fallback in ("none", name):
        return first
    return FallbackProvider([first, _provider(fallback, csv_file, stooq_url)])
