"""bench/leaderboard: GET /v1/leaderboard over HTTP on a board of 100,000
players and a month of settled predictions (21 trading days, settled by
crypto.settle_session), for period=week|month|all: the first page many
times, then a walk through every page by cursor (the deep pages), checking
that the walk shows each player once, in rank order. The limiter is off:
this measures the route, not the per-IP cap."""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import statistics
import time

import httpx
import psycopg

from ox_sidecar.calendar_sync import nyse_sessions
from ox_sidecar.migrate import migrate
from throwaway import run_script, running_api, throwaway_cluster

LAST = dt.date(2026, 11, 27)  # a Friday: the week, November and all time all hold players
DAYS = 21

# The players, with a nickname each (the board shows nicknames).
USERS = """
insert into crypto.users (id, email, password_hash, nickname)
select ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, 'b' || i || '@example.com',
    '$argon2id$x', 'p' || i
from generate_series(1, %(users)s) as i;
insert into crypto.ledger_accounts (kind, user_id) select 'user', id from crypto.users
"""

# A day's predictions: each player on `per_day` of the day's symbols, UP or DOWN at random.
PREDICTIONS = """
insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
select ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, %(day)s,
    u.symbols[1 + (i + k) %% cardinality(u.symbols)],
    (case when random() < 0.5 then 'UP' else 'DOWN' end)::crypto.prediction_choice, now()
from generate_series(1, %(users)s) as i
cross join generate_series(0, %(per_day)s - 1) as k
cross join (
    select array_agg(a.symbol order by a.symbol) as symbols from crypto.active_universe as a
    where a.trading_day = %(day)s
) as u
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def summary(times: list[float]) -> str:
    return (
        f"p50 {statistics.median(times):.1f} ms, p99 {percentile(times, 0.99):.1f} ms,"
        f" max {max(times):.1f} ms"
    )


def timed_get(client: httpx.Client, params: dict[str, str | int]) -> tuple[float, dict]:
    started = time.perf_counter()
    r = client.get("/v1/leaderboard", params=params)
    elapsed = (time.perf_counter() - started) * 1000
    assert r.status_code == 200, r.text
    return elapsed, r.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--per-day", type=int, default=1, help="predictions per player and day")
    parser.add_argument("--requests", type=int, default=500, help="first-page requests per period")
    parser.add_argument("--limit", type=int, default=50, help="page size (the web app asks 50)")
    parser.add_argument("--passes", type=int, default=2, help="measure every period this often")
    parser.add_argument("--shared-buffers", default="1GB")
    args = parser.parse_args()
    with throwaway_cluster(args.shared_buffers) as (work, port):
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        migrate(url, "development")
        with psycopg.connect(url, autocommit=True) as conn:
            # pg_cron's ticks would open and settle sessions by the moved
            # clock beside the bench's own steps: the bench drives the days.
            conn.execute("update cron.job set active = false")
            conn.execute("alter system set max_wal_size = '16GB'")
            conn.execute("select pg_reload_conf()")
            conn.execute(
                "select crypto.sync_calendar(%s::jsonb)", (json.dumps(nyse_sessions(2026, 2026)),)
            )
            days = [
                r[0]
                for r in conn.execute(
                    "select trading_day from crypto.trading_calendar where trading_day <= %s"
                    " order by trading_day desc limit %s",
                    (LAST, DAYS + 1),
                )
            ][::-1]
            started = time.perf_counter()
            run_script(conn, USERS, {"users": args.users})
            closes: dict[str, int] = {}
            settling = 0.0
            refreshes: list[float] = []
            for prev, day in itertools.pairwise(days):
                conn.execute("select crypto.clock_set(%s)", (f"{day}T09:00:00+09:00",))
                conn.execute("select crypto.open_session(%s)", (day,))
                symbols = [
                    r[0]
                    for r in conn.execute(
                        "select symbol from crypto.active_universe where trading_day = %s", (day,)
                    )
                ]
                conn.execute(
                    PREDICTIONS, {"users": args.users, "day": day, "per_day": args.per_day}
                )
                conn.execute("analyze crypto.predictions")
                conn.execute(
                    "select crypto.clock_set(%s)", (f"{day + dt.timedelta(days=1)}T07:00:00+09:00",)
                )
                conn.execute("select crypto.close_session(%s)", (day,))
                for i, symbol in enumerate(symbols):
                    if symbol not in closes:
                        closes[symbol] = 100
                        conn.execute(
                            "select crypto.load_eod_price(%s, %s, %s, 'bench')", (prev, symbol, 100)
                        )
                    # Up and down by turns, a few symbols flat (VOID) on some days.
                    closes[symbol] += (1 if (i + day.day) % 3 else -1) * (
                        0 if (i + day.day) % 7 == 0 else 1
                    )
                    conn.execute(
                        "select crypto.load_eod_price(%s, %s, %s, 'bench')",
                        (day, symbol, closes[symbol]),
                    )
                again = time.perf_counter()
                conn.execute("select crypto.settle_session(%s)", (day,))
                settling += time.perf_counter() - again
                # What crypto.rollup_metrics (pg_cron) does for a settled day.
                again = time.perf_counter()
                conn.execute("select crypto.leaderboard_refresh(%s)", (day,))
                refreshes.append(time.perf_counter() - again)
                conn.execute("analyze crypto.leaderboard_days")
            predictions = conn.execute("select count(*) from crypto.predictions").fetchone()[0]  # type: ignore[index]
            print(
                f"  built {args.users:,} players, {predictions:,} predictions over {len(days) - 1} trading days"
                f" ({days[1]} to {days[-1]}) in {time.perf_counter() - started:.0f} s"
                f" (of which settling {settling:.0f} s)"
            )
            print(
                f"  crypto.leaderboard_refresh after each settlement: mean {statistics.mean(refreshes):.1f} s,"
                f" max {max(refreshes):.1f} s"
            )
            conn.execute("vacuum analyze")
            conn.execute("checkpoint")
            rows = conn.execute(
                "select period, count(*) from crypto.leaderboard"
                " where period_start = crypto.leaderboard_start(period, %s) group by period order by period",
                (days[-1],),
            ).fetchall()
            print(f"  board rows {dict(rows)}")

        results = []
        with (
            running_api(url, work, API_POOL_SIZE="4", RATE_LIMITS_ENABLED="false") as base,
            httpx.Client(base_url=base) as client,
        ):
            for pass_, period in itertools.product(
                range(1, args.passes + 1), ("week", "month", "all")
            ):
                timed_get(client, {"period": period, "limit": args.limit})  # warm
                first = [
                    timed_get(client, {"period": period, "limit": args.limit})[0]
                    for _ in range(args.requests)
                ]
                deep: list[float] = []
                seen: set[str] = set()
                last_key: tuple[int, int] | None = None
                cursor: str | None = None
                while True:
                    params: dict[str, str | int] = {"period": period, "limit": args.limit}
                    if cursor:
                        params["cursor"] = cursor
                    elapsed, page = timed_get(client, params)
                    if cursor:
                        deep.append(elapsed)
                    for item in page["items"]:
                        assert item["nickname"] not in seen, item
                        seen.add(item["nickname"])
                        key = (item["points"], item["wins"])
                        assert last_key is None or key <= last_key, (last_key, item)
                        assert item["rank"] == len(seen), item
                        last_key = key
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                assert len(seen) == args.users, (period, len(seen))
                results.append((pass_, period, first, deep))
    print(
        f"bench/leaderboard on {os.cpu_count()} cores, {args.users:,} players,"
        f" {predictions:,} settled predictions, pages of {args.limit}"
    )
    for pass_, period, first, deep in results:
        print(
            f"  pass {pass_}: GET /v1/leaderboard?period={period}: first page x{len(first)}: {summary(first)}"
        )
        print(
            f"  pass {pass_}: GET /v1/leaderboard?period={period}: every next page by cursor x{len(deep)}"
            f" (ranks {args.limit + 1} to {args.users:,}): {summary(deep)}"
        )
    everything = [t for _, _, first, deep in results for t in first + deep]
    print(f"  all {len(everything):,} requests: {summary(everything)}  (target p99 <= 20 ms)")


if __name__ == "__main__":
    main()
