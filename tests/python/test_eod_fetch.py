"""The EOD fetch: the real yfinance code path on recorded frames, the CSV
provider, fetch logs, the worker job and the schedule that settles."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import psycopg
import pytest
from yfinance.exceptions import YFRateLimitError

from ox_sidecar.eod import (
    CsvProvider,
    FallbackProvider,
    PricesNotFinal,
    ProviderUnavailable,
    StooqProvider,
    YFinanceProvider,
    fetch_day,
    provider_named,
)
from ox_sidecar.worker import run_once
from support import service

pytestmark = pytest.mark.usefixtures("calendar")

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "yfinance"


class RecordedTicker:
    """Stands in for yfinance.Ticker: the network answer, from a file."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, symbol: str):
        self.symbol = symbol

    def history(self, **kwargs: Any) -> pd.DataFrame:
        RecordedTicker.calls.append({"symbol": self.symbol, **kwargs})
        path = RECORDED / f"{self.symbol}.csv"
        if not path.exists():
            return pd.DataFrame()  # what yfinance returns for an unknown or delisted symbol
        frame = pd.read_csv(path, index_col="Date")
        frame.index = pd.to_datetime(frame.index, utc=True).tz_convert("America/New_York")
        start = pd.Timestamp(kwargs["start"], tz="America/New_York")
        end = pd.Timestamp(kwargs["end"], tz="America/New_York")
        return frame[(frame.index >= start) & (frame.index < end)]


class RateLimitedTicker(RecordedTicker):
    def history(self, **kwargs: Any) -> pd.DataFrame:
        raise YFRateLimitError()


@pytest.fixture
def svc(db_url: str) -> psycopg.Connection:
    conn = psycopg.connect(db_url, autocommit=True)
    conn.execute("set role oxp_service")
    return conn


def prepare(db: psycopg.Connection, day: str, now_kst: str, symbols: list[str]) -> None:
    service(db, "select crypto.set_universe(%s, %s, true)", day, symbols)
    service(db, "select crypto.clock_set(%s::timestamptz)", now_kst)


def closes(db: psycopg.Connection) -> dict[tuple[str, str], Decimal]:
    rows = db.execute("select trading_day::text, symbol, close from crypto.eod_prices").fetchall()
    return {(d, s): c for d, s, c in rows}


@pytest.mark.parametrize(
    ("day", "previous", "after_close_kst"),
    [
        (
            "2026-11-30",
            "2026-11-27",
            "2026-12-01T07:00",
        ),  # Monday compares with Friday (early close)
        ("2026-11-27", "2026-11-25", "2026-11-28T04:00"),  # after Thanksgiving; closed 03:00 KST
        ("2026-03-09", "2026-03-06", "2026-03-10T06:00"),  # first day of New York summer time
    ],
)
def test_yfinance_brings_raw_closes_of_the_day_and_the_previous_session(
    db: psycopg.Connection, svc: psycopg.Connection, day: str, previous: str, after_close_kst: str
) -> None:
    prepare(db, day, after_close_kst + "+09:00", ["AAPL", "MSFT"])
    RecordedTicker.calls.clear()
    report = fetch_day(svc, YFinanceProvider(ticker=RecordedTicker), dt.date.fromisoformat(day))
    assert (report.loaded, report.missing) == (4, [])
    assert all(call["auto_adjust"] is False for call in RecordedTicker.calls)
    frame = pd.read_csv(RECORDED / "AAPL.csv")
    frame["day"] = frame["Date"].str[:10]
    expected = {
        d: Decimal(str(frame.loc[frame["day"] == d, "Close"].item())) for d in (day, previous)
    }
    got = closes(db)
    assert got[(day, "AAPL")] == expected[day]  # Close, never Adj Close
    assert got[(previous, "AAPL")] == expected[previous]
    assert {d for d, _ in got} == {day, previous}
    assert db.execute("select status::text, rows from crypto.eod_fetch_logs").fetchall() == [
        ("succeeded", 4)
    ]


def test_closes_are_not_final_before_the_new_york_close(
    db: psycopg.Connection, svc: psycopg.Connection
) -> None:
    # Friday 27 Nov 2026 closes early: 13:00 New York = 03:00 KST Saturday.
    prepare(db, "2026-11-27", "2026-11-28T02:59:00+09:00", ["AAPL"])
    with pytest.raises(PricesNotFinal):
        fetch_day(svc, YFinanceProvider(ticker=RecordedTicker), dt.date(2026, 11, 27))
    assert closes(db) == {}


def test_a_rate_limit_loads_nothing_and_is_logged(
    db: psycopg.Connection, svc: psycopg.Connection
) -> None:
    prepare(db, "2026-11-24", "2026-11-25T07:00:00+09:00", ["AAPL"])
    with pytest.raises(ProviderUnavailable):
        fetch_day(svc, YFinanceProvider(ticker=RateLimitedTicker), dt.date(2026, 11, 24))
    assert closes(db) == {}
    assert db.execute("select status::text, error from crypto.eod_fetch_logs").fetchone() == (
        "failed",
        "yfinance rate limit at AAPL",
    )


def test_an_empty_frame_leaves_the_symbol_missing(
    db: psycopg.Connection, svc: psycopg.Connection
) -> None:
    prepare(db, "2026-11-24", "2026-11-25T07:00:00+09:00", ["AAPL", "NOPE"])
    report = fetch_day(svc, YFinanceProvider(ticker=RecordedTicker), dt.date(2026, 11, 24))
    assert report.loaded == 2
    assert report.missing == ["NOPE@2026-11-23", "NOPE@2026-11-24"]
    log = db.execute("select status::text, rows, error from crypto.eod_fetch_logs").fetchone()
    assert log == ("failed", 2, "missing: NOPE@2026-11-23, NOPE@2026-11-24")
    # A second fetch asks only for what is still missing.
    RecordedTicker.calls.clear()
    fetch_day(svc, YFinanceProvider(ticker=RecordedTicker), dt.date(2026, 11, 24))
    assert [c["symbol"] for c in RecordedTicker.calls] == ["NOPE"]


def test_the_worker_fetches_and_the_tick_settles(
    db: psycopg.Connection, svc: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "closes.csv"
    csv.write_text(
        "trading_day,symbol,close\n"
        "2026-11-23,AAPL,100\n2026-11-24,AAPL,101\n2026-11-23,MSFT,100\n2026-11-24,MSFT,99\n"
    )
    monkeypatch.setenv("EOD_PROVIDER", "csv")
    monkeypatch.setenv("EOD_CSV_FILE", str(csv))
    monkeypatch.setenv("DATABASE_URL", db.info.dsn)
    from ox_sidecar.config import clear_settings

    clear_settings()
    prepare(db, "2026-11-24", "2026-11-24T09:00:00+09:00", ["AAPL", "MSFT"])
    service(db, "select crypto.schedule_tick()")  # opens Tuesday
    service(db, "select crypto.clock_set('2026-11-25T06:15:00+09:00')")
    service(db, "select crypto.schedule_tick()")  # closes it, asks for prices

    assert run_once(svc) is True
    assert run_once(svc) is False  # nothing else is due
    assert db.execute("select status::text, attempts from crypto.jobs").fetchone() == ("done", 1)
    service(db, "select crypto.schedule_tick()")
    assert db.execute(
        "select symbol, outcome::text from crypto.settlements order by symbol"
    ).fetchall() == [("AAPL", "UP"), ("MSFT", "DOWN")]
    clear_settings()


def test_a_failing_fetch_backs_off_then_goes_dead(
    db: psycopg.Connection, svc: psycopg.Connection
) -> None:
    service(db, "select crypto.clock_set('2026-11-25T07:00:00+09:00')")
    job = service(
        db, "select crypto.enqueue_job('eod.fetch', '{\"trading_day\": \"2026-11-26\"}', null, 2)"
    )
    assert run_once(svc) is True  # Thanksgiving: NOT_A_TRADING_DAY, so it fails
    status, attempts, error, delay = db.execute(
        "select status::text, attempts, last_error, run_after - crypto.now() from crypto.jobs where id = %s",
        (job,),
    ).fetchone()  # type: ignore[misc]
    assert (status, attempts) == ("queued", 1)
    assert "NOT_A_TRADING_DAY" in error
    assert delay >= dt.timedelta(seconds=29)
    # Backing off: the only job due is the delivery of the alert its failure opened.
    assert run_once(svc) is True
    delivered = "select count(*) from crypto.jobs where kind = 'alert.deliver' and status = 'done'"
    assert db.execute(delivered).fetchone() == (1,)
    assert run_once(svc) is False
    service(db, "select crypto.clock_set('2026-11-25T07:01:00+09:00')")
    assert run_once(svc) is True
    final = "select status::text, attempts from crypto.jobs where id = %s"
    assert db.execute(final, (job,)).fetchone() == ("dead", 2)


def test_csv_provider_filters_days_and_symbols(tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    csv.write_text(
        "trading_day,symbol,close\n2026-11-24,AAPL,1.5\n2026-11-24,MSFT,2\n2026-11-23,AAPL,3\n"
    )
    got = CsvProvider(csv).closes({dt.date(2026, 11, 24)}, ["AAPL"])
    assert [(c.day.isoformat(), c.symbol, c.close) for c in got] == [
        ("2026-11-24", "AAPL", Decimal("1.5"))
    ]


# --- the second source: Stooq, served from recorded answers -------------------

STOOQ = RECORDED.parent / "stooq"


class StooqStandIn(http.server.BaseHTTPRequestHandler):
    """Stooq's CSV download on a local port: the recorded file of `s`, cut to
    d1..d2; `No data` for a symbol it lacks; its hit-limit text when told."""

    asked: ClassVar[list[dict[str, str]]] = []
    refuse = False

    def do_GET(self) -> None:
        query = {
            k: v[0]
            for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()
        }
        StooqStandIn.asked.append(query)
        if StooqStandIn.refuse:
            body = "Exceeded the daily hits limit"
        else:
            path = STOOQ / f"{query['s']}.csv"
            if not path.exists():
                body = "No data"
            else:
                header, *rows = path.read_text().splitlines()
                d1, d2 = (dt.datetime.strptime(query[k], "%Y%m%d").date() for k in ("d1", "d2"))
                kept = [r for r in rows if d1 <= dt.date.fromisoformat(r[:10]) <= d2]
                body = "\n".join([header, *kept]) if kept else "No data"
        data = body.encode()
        self.send_response(200)  # Stooq answers refusals with 200 too
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stooq_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StooqStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StooqStandIn.asked.clear()
    StooqStandIn.refuse = False
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/q/d/l/"
    finally:
        server.shutdown()
        server.server_close()


def sources(db: psycopg.Connection) -> dict[tuple[str, str], str]:
    rows = db.execute("select trading_day::text, symbol, source from crypto.eod_prices").fetchall()
    return {(d, s): src for d, s, src in rows}


def test_stooq_brings_the_closes_of_its_csv(
    db: psycopg.Connection, svc: psycopg.Connection, stooq_url: str
) -> None:
    prepare(db, "2026-11-24", "2026-11-25T07:00:00+09:00", ["AAPL", "MSFT"])
    report = fetch_day(svc, StooqProvider(stooq_url), dt.date(2026, 11, 24))
    # Only the day just ended: Stooq's split-adjusted bars are raw for it alone.
    assert report.loaded == 2
    assert report.missing == ["AAPL@2026-11-23", "MSFT@2026-11-23"]
    assert closes(db) == {
        ("2026-11-24", "AAPL"): Decimal("224.53"),
        ("2026-11-24", "MSFT"): Decimal("469.37"),
    }
    assert set(sources(db).values()) == {"stooq"}
    assert StooqStandIn.asked[0] == {"s": "aapl.us", "i": "d", "d1": "20261124", "d2": "20261124"}


def test_when_yahoo_is_down_stooq_stands_in_and_the_log_says_so(
    db: psycopg.Connection, svc: psycopg.Connection, stooq_url: str
) -> None:
    prepare(db, "2026-11-24", "2026-11-25T07:00:00+09:00", ["AAPL", "MSFT"])
    service(
        db,
        "select crypto.load_eod_price('2026-11-23', s, 100, 'yesterday') from unnest(array['AAPL', 'MSFT']) as s",
    )
    both = FallbackProvider([YFinanceProvider(ticker=RateLimitedTicker), StooqProvider(stooq_url)])
    report = fetch_day(svc, both, dt.date(2026, 11, 24))
    assert (report.loaded, report.missing) == (2, [])
    assert sources(db)[("2026-11-24", "AAPL")] == "stooq"
    log = db.execute("select provider, status::text, rows, error from crypto.eod_fetch_logs")
    assert log.fetchall() == [
        ("yfinance+stooq", "succeeded", 2, "yfinance: yfinance rate limit at AAPL")
    ]


def test_stooq_gives_only_what_yahoo_lacks(
    db: psycopg.Connection, svc: psycopg.Connection, stooq_url: str
) -> None:
    """Yahoo has AAPL; BRK.B (Stooq's brk-b.us) comes from Stooq alone."""
    prepare(db, "2026-11-24", "2026-11-25T07:00:00+09:00", ["AAPL", "BRK.B"])
    both = FallbackProvider([YFinanceProvider(ticker=RecordedTicker), StooqProvider(stooq_url)])
    report = fetch_day(svc, both, dt.date(2026, 11, 24))
    assert (report.loaded, report.missing) == (3, ["BRK.B@2026-11-23"])
    assert sources(db) == {
        ("2026-11-23", "AAPL"): "yfinance",
        ("2026-11-24", "AAPL"): "yfinance",
        ("2026-11-24", "BRK.B"): "stooq",
    }
    assert closes(db)[("2026-11-24", "AAPL")] == Decimal("224.54")  # Yahoo's, not Stooq's
    assert [q["s"] for q in StooqStandIn.asked] == ["brk-b.us"]


def test_both_sources_down_loads_nothing_and_names_both(
    db: psycopg.Connection, svc: psycopg.Connection, stooq_url: str
) -> None:
    prepare(db, "2026-11-24", "2026-11-25T07:00:00+09:00", ["AAPL"])
    StooqStandIn.refuse = True
    both = FallbackProvider([YFinanceProvider(ticker=RateLimitedTicker), StooqProvider(stooq_url)])
    with pytest.raises(ProviderUnavailable, match="hits limit"):
        fetch_day(svc, both, dt.date(2026, 11, 24))
    assert closes(db) == {}
    status, error = db.execute("select status::text, error from crypto.eod_fetch_logs").fetchone()  # type: ignore[misc]
    assert status == "failed"
    assert "yfinance rate limit at AAPL" in error and "stooq did not answer with prices" in error


def test_stooq_stands_behind_yfinance_unless_told_otherwise(tmp_path: Path) -> None:
    from ox_sidecar.config import Settings

    default = Settings(eod_provider="yfinance", eod_fallback_provider=None)
    chosen = provider_named(default.eod_provider, tmp_path, default.eod_fallback, "http://x/")
    assert isinstance(chosen, FallbackProvider) and chosen.name == "yfinance+stooq"
    offline = Settings(eod_provider="csv")
    assert isinstance(provider_named("csv", tmp_path, offline.eod_fallback), CsvProvider)
    alone = Settings(eod_fallback_provider="none")
    assert isinstance(provider_named("yfinance", tmp_path, alone.eod_fallback), YFinanceProvider)
