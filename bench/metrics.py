"""bench/metrics: crypto.compute_daily_metrics for a settled day of
1,000,000 predictions (100,000 players, 10 symbols each), and
GET /admin/dashboard over HTTP on that data (the limiter off: this measures
the route, not the per-IP cap)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import httpx
import psycopg
from settlement import BUILD as SETTLEMENT_BUILD

from ox_sidecar.calendar_sync import nyse_sessions
from ox_sidecar.config import Settings
from ox_sidecar.migrate import migrate
from ox_sidecar.tokens import TokenService
from throwaway import run_script, running_api, throwaway_cluster

DAY, PREV = "2026-11-24", "2026-11-23"
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]
ADMIN = "00000000-0000-0000-0001-000000000001"  # outside the players' range

# The players and their predictions as bench/settlement builds them, plus
# their sign-ins of the day and an admin to ask the dashboard.
BUILD = (
    SETTLEMENT_BUILD.rstrip().rstrip(";")
    + """;
insert into crypto.daily_activity (kst_day, user_id) select %(day)s, id from crypto.users;
insert into crypto.users (id, email, password_hash, role, totp_secret)
values (%(admin)s, 'boss@example.com', '$argon2id$x', 'admin', 'JBSWY3DPEHPK3PXP')
"""
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--shared-buffers", default="4GB")
    args = parser.parse_args()
    with throwaway_cluster(args.shared_buffers) as (work, port):
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        migrate(url, "development")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("alter system set max_wal_size = '16GB'")
            conn.execute("select pg_reload_conf()")
            conn.execute(
                "select crypto.sync_calendar(%s::jsonb)", (json.dumps(nyse_sessions(2026, 2026)),)
            )
            conn.execute("select crypto.clock_set('2026-11-24T09:00:00+09:00')")
            conn.execute("select crypto.open_session(%s)", (DAY,))
            started = time.perf_counter()
            run_script(conn, BUILD, {"users": args.users, "day": DAY, "admin": ADMIN})
            conn.execute("vacuum analyze")
            print(
                f"  built {args.users:,} players, {args.users * 10:,} predictions in {time.perf_counter() - started:.0f} s"
            )
            conn.execute("select crypto.clock_set('2026-11-25T07:00:00+09:00')")
            conn.execute("select crypto.close_session(%s)", (DAY,))
            for day, price in ((PREV, 100), (DAY, 101)):
                for i, symbol in enumerate(SYMBOLS):
                    conn.execute(
                        "select crypto.load_eod_price(%s, %s, %s, 'bench')",
                        (day, symbol, price if i < 5 else 200 - price),
                    )
            started = time.perf_counter()
            conn.execute("select crypto.settle_session(%s)", (DAY,))
            print(f"  settled in {time.perf_counter() - started:.1f} s")
            conn.execute("vacuum analyze")
            conn.execute("checkpoint")
            rollups = []
            for _ in range(3):
                started = time.perf_counter()
                row = conn.execute("select crypto.compute_daily_metrics(%s)", (DAY,)).fetchone()
                rollups.append(time.perf_counter() - started)
            print(f"  the day's row: {row[0]}")  # type: ignore[index]

        os.environ["JWT_PRIVATE_KEY_FILE"] = str(work / "jwt.pem")
        settings = Settings(database_url=url, jwt_private_key_file=work / "jwt.pem")
        tokens = TokenService(settings)
        token = tokens.issue({"id": ADMIN, "email": "boss@example.com", "role": "admin"})[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        with (
            running_api(url, work, API_POOL_SIZE="4", RATE_LIMITS_ENABLED="false") as base,
            httpx.Client(base_url=base, headers=headers) as client,
        ):
            first = client.get("/admin/dashboard")
            assert first.status_code == 200, first.text
            times = []
            for _ in range(args.requests):
                started = time.perf_counter()
                assert client.get("/admin/dashboard").status_code == 200
                times.append((time.perf_counter() - started) * 1000)
    print(
        f"bench/metrics on {os.cpu_count()} cores, {args.users:,} players, {args.users * 10:,} predictions"
    )
    print(
        f"  rollup (crypto.compute_daily_metrics): {', '.join(f'{t:.2f}' for t in rollups)} s"
        f"  (target <= 5 s)"
    )
    print(
        f"  GET /admin/dashboard x{args.requests}: p50 {statistics.median(times):.1f} ms,"
        f" p99 {percentile(times, 0.99):.1f} ms, max {max(times):.1f} ms  (target p99 <= 50 ms)"
    )


if __name__ == "__main__":
    main()
