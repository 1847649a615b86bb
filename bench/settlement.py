"""bench/settlement: time crypto.settle_session (outcomes and awards through
the ledger) for growing numbers of predictions, 10 symbols per user.
--history N first writes N predictions over the year's earlier trading days
(the days settled, their awards not paid), so that the day is settled beside
a history: partitioned by month (sql/0038), it is read from its own month.
--ledger N first writes a ledger history of N entries (bench/ledger's
prefill, over the months before the day): the day's awards are written
beside it (partitioned by month, sql/0041)."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import time
from pathlib import Path

import psycopg
from ledger import prefill, seed_accounts
from psycopg import sql

from ox_sidecar.calendar_sync import nyse_sessions
from ox_sidecar.migrate import migrate
from throwaway import run_script, throwaway_cluster

ROOT = Path(__file__).resolve().parents[1]
DAY, PREV = "2026-11-24", "2026-11-23"

BUILD = """
insert into crypto.users (id, email, password_hash)
select ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, 'b' || i || '@example.com', '$argon2id$x'
from generate_series(1, %(users)s) as i;
insert into crypto.ledger_accounts (kind, user_id) select 'user', id from crypto.users where email like 'b%%';
insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
select u.id, %(day)s, a.symbol, (case when random() < 0.5 then 'UP' else 'DOWN' end)::crypto.prediction_choice, now()
from crypto.users as u cross join crypto.active_universe as a
where a.trading_day = %(day)s and u.email like 'b%%';
"""


# Earlier trading days of the year as settled sessions with the same ten
# symbols, and a history's predictions spread evenly over them by players of
# their own (h...@example.com).
HISTORY = """
insert into crypto.session_control (trading_day, phase, opened_at, closed_at, settling_at, settled_at)
select c.trading_day, 'SETTLED', c.open_at - interval '1 day', c.close_at, c.close_at, c.close_at
from crypto.trading_calendar as c
where c.trading_day < %(prev)s and c.trading_day >= date_trunc('year', %(prev)s::date);
insert into crypto.active_universe (trading_day, symbol, position)
select s.trading_day, a.symbol, a.position
from crypto.session_control as s cross join crypto.active_universe as a
where s.trading_day < %(prev)s and a.trading_day = %(day)s;
insert into crypto.users (id, email, password_hash)
select ('00000000-0000-0000-0001-' || lpad(to_hex(i), 12, '0'))::uuid, 'h' || i || '@example.com', '$argon2id$x'
from generate_series(1, %(players)s) as i;
insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
select u.id, s.trading_day, a.symbol,
    (case when random() < 0.5 then 'UP' else 'DOWN' end)::crypto.prediction_choice, s.opened_at
from crypto.session_control as s
join crypto.active_universe as a on a.trading_day = s.trading_day
cross join crypto.users as u
where s.trading_day < %(prev)s and u.email like 'h%%'
order by s.trading_day;
"""


def write_history(url: str, predictions: int) -> None:
    """Writes the history and says what it wrote (rows, days, partitions)."""
    with psycopg.connect(url, autocommit=True) as conn:
        days = conn.execute(
            "select count(*) from crypto.trading_calendar"
            " where trading_day < %s and trading_day >= date_trunc('year', %s::date)",
            (PREV, PREV),
        ).fetchone()[0]  # type: ignore[index]
        players = max(1, predictions // (days * 10))
        started = time.perf_counter()
        # The months a running system would have made ahead (hourly
        # maintenance): none before sql/0038, where predictions is one table.
        conn.execute(
            "select crypto.partition_ensure('crypto.predictions', date_trunc('year', %s::date), 12)",
            (PREV,),
        )
        run_script(conn, HISTORY, {"prev": PREV, "day": DAY, "players": players})
        conn.execute("vacuum analyze")
        rows = conn.execute("select count(*) from crypto.predictions").fetchone()[0]  # type: ignore[index]
        parts = conn.execute(
            "select count(*) from pg_inherits where inhparent = 'crypto.predictions'::regclass"
        ).fetchone()[0]  # type: ignore[index]
        print(
            f"  history: {rows:,} predictions over {days} days, {parts} partitions of predictions,"
            f" written in {time.perf_counter() - started:.0f} s",
            flush=True,
        )


def run_size(admin: str, template: str, predictions: int) -> dict[str, float]:
    name = f"bench_{predictions}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    url = admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as conn:
        run_script(conn, BUILD, {"users": predictions // 10, "day": DAY})
        conn.execute("vacuum analyze")
        # The setup's own writes must not be flushed during the timed settlement.
        conn.execute("checkpoint")
        if os.environ.get("BENCH_EXPLAIN"):
            # Every statement's plan with timings (and trigger times) in the server log.
            conn.execute("load 'auto_explain'")
            for name, value in (
                ("log_min_duration", "50"),
                ("log_analyze", "on"),
                ("log_nested_statements", "on"),
                ("log_triggers", "on"),
                ("log_buffers", "on"),
            ):
                conn.execute(f"set auto_explain.{name} = '{value}'")
        conn.execute("set role oxp_operator")
        conn.execute("select crypto.clock_set('2026-11-25T07:00:00+09:00')")
        conn.execute("select crypto.close_session(%s)", (DAY,))
        started = time.perf_counter()
        result = conn.execute("select crypto.settle_session(%s)", (DAY,)).fetchone()[0]  # type: ignore[index]
        seconds = time.perf_counter() - started
        again = time.perf_counter()
        repeat = conn.execute("select crypto.settle_session(%s)", (DAY,)).fetchone()[0]  # type: ignore[index]
        repeat_seconds = time.perf_counter() - again
        conn.execute("reset role")
        if os.environ.get("BENCH_SCANS"):
            for row in conn.execute(
                "select relname, seq_scan, seq_tup_read, idx_scan from pg_stat_user_tables"
                " where seq_scan > 2 order by seq_tup_read desc limit 6"
            ):
                print("   ", row)
        paid = conn.execute(
            "select count(*), coalesce(sum(amount), 0) from crypto.ledger_transfers where reason = 'settlement_award'"
        ).fetchone()
    assert repeat["already_settled"] and paid[0] == result["winners"]  # type: ignore[index]
    return {
        "predictions": predictions,
        "winners": result["winners"],
        "seconds": seconds,
        "rerun_seconds": repeat_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    # A quarter of this machine's memory, as a server sized for it would have:
    # with the default 256MB the 1M run measures eviction, not settlement.
    parser.add_argument("--shared-buffers", default="4GB")
    parser.add_argument("--history", type=int, default=0, help="predictions of earlier days")
    parser.add_argument("--ledger", type=int, default=0, help="ledger entries of history")
    args = parser.parse_args()
    results: list[dict[str, float]] = []
    with throwaway_cluster(args.shared_buffers) as (work, port):
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        template = f"postgresql://postgres@127.0.0.1:{port}/oxp_bench_template"
        with psycopg.connect(admin, autocommit=True) as conn:
            # A day's awards write a few GB of WAL; with the default 1GB the
            # 1M run pays for forced checkpoints that smaller runs never see.
            conn.execute("alter system set max_wal_size = '16GB'")
            conn.execute("select pg_reload_conf()")
            conn.execute("create database oxp_bench_template")
        # This tree's migrations (ROOT), whichever sidecar is imported: an A/B
        # runs an older tree's files with this one's bench.
        migrate(template, "development", root=ROOT)
        with psycopg.connect(template, autocommit=True) as conn:
            conn.execute(
                "select crypto.sync_calendar(%s::jsonb)", (json.dumps(nyse_sessions(2026, 2026)),)
            )
            conn.execute("set role oxp_operator")
            conn.execute("select crypto.clock_set('2026-11-24T09:00:00+09:00')")
            conn.execute("select crypto.open_session(%s)", (DAY,))
            # Closes exist once New York has closed the day.
            conn.execute("select crypto.clock_set('2026-11-25T07:00:00+09:00')")
            for day, price in ((PREV, 100), (DAY, 101)):
                for i, symbol in enumerate(
                    ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]
                ):
                    close = price if i < 5 else 200 - price  # five up, five down
                    conn.execute(
                        "select crypto.load_eod_price(%s, %s, %s, 'bench')", (day, symbol, close)
                    )
        if args.history:
            write_history(template, args.history)
        if args.ledger:
            with psycopg.connect(template, autocommit=True) as conn:
                conn.execute("select crypto.clock_reset()")
                took = prefill(conn, seed_accounts(conn, 10000, history=True), 10000, args.ledger)
                count = conn.execute("select count(*) from crypto.ledger_entries").fetchone()
                assert count is not None
            print(f"  ledger history: {count[0]:,} entries, written in {took:.0f} s", flush=True)
        for size in (int(s) for s in args.sizes.split(",")):
            results.append(run_size(admin, "oxp_bench_template", size))
            r = results[-1]
            print(
                f"  {r['predictions']:>9,} predictions  {r['winners']:>8,} winners  settle {r['seconds']:7.2f} s"
                f"  ({r['predictions'] / r['seconds']:,.0f}/s)  re-run {r['rerun_seconds'] * 1000:.1f} ms",
                flush=True,
            )
        if os.environ.get("BENCH_EXPLAIN"):
            shutil.copy(work / "pg" / "server.log", os.environ["BENCH_EXPLAIN"])
    print(
        f"bench/settlement on {os.cpu_count()} cores, shared_buffers {args.shared_buffers}"
        " (target: 1M in <= 30 s; 10x the work in <= 11x the time)"
    )
    for a, b in itertools.pairwise(results):
        print(
            f"  {b['predictions'] // a['predictions']}x the work: {b['seconds'] / a['seconds']:.1f}x the time"
        )


if __name__ == "__main__":
    main()
