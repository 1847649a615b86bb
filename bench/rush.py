"""bench/rush: see the wrapper script of the same name."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ox_sidecar.tokens import hash_password
from throwaway import running_api, throwaway_cluster

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]
FLOOD_IP = "203.0.113.7"
ROUTES = ["GET /v1/session/today", "GET /v1/universe/today", "POST /v1/predictions/{symbol}"]
TARGET_P99_MS = 300


def player_ip(phase: int, i: int) -> str:
    return f"10.{phase}.{i // 250}.{i % 250 + 1}"


def prepare(url: str, players: int) -> tuple[str, Any]:
    """Migrated, today's session open, 2 x players accounts (one set per
    phase: each player has 3 predictions per session). The trading day and
    its cutoff."""
    env = {**os.environ, "DATABASE_URL": url}
    oxp = str(ROOT / ".venv" / "bin" / "oxp")
    for args in (["db", "migrate"], ["calendar", "sync"]):
        subprocess.run([oxp, *args], check=True, env=env, capture_output=True)
    stored = hash_password(PASSWORD)  # one real argon2id hash: logins really verify it
    with psycopg.connect(url, autocommit=True) as conn:
        # pg_cron's tick may have opened a session already: use that one.
        day, cutoff, opened = conn.execute(
            "select c.trading_day, c.cutoff_at, s.phase is not null from crypto.trading_calendar as c"
            " left join crypto.session_control as s on s.trading_day = c.trading_day"
            " and s.phase = 'OPEN'"
            " where s.phase is not null or c.cutoff_at > now() + interval '1 day'"
            " order by s.phase is null, c.trading_day limit 1"
        ).fetchone()  # type: ignore[misc]
        conn.execute("set role oxp_operator")
        conn.execute("select crypto.clock_set(%s::timestamptz - interval '6 hours')", (cutoff,))
        if not opened:
            conn.execute("select crypto.open_session(%s)", (day,))
        conn.execute("reset role")
        with conn.cursor().copy("copy crypto.users (email, password_hash) from stdin") as copy:
            for phase in (1, 2):
                for i in range(players):
                    copy.write_row((f"rush{phase}-{i}@example.com", stored))
        conn.execute(
            "insert into crypto.ledger_accounts (kind, user_id)"
            " select 'user', id from crypto.users where email like 'rush%'"
        )
        conn.execute("vacuum analyze")
    return str(day), cutoff


def log_in(base: str, phase: int, players: int) -> tuple[list[list[str]], list[float]]:
    """Every player of a phase signs in over HTTP from its own address;
    their tokens and the logins' latencies (ms)."""

    def one(i: int) -> tuple[str, float]:
        started = time.perf_counter()
        r = httpx.post(
            f"{base}/v1/auth/login",
            json={"email": f"rush{phase}-{i}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": player_ip(phase, i)},
            timeout=60,
        )
        r.raise_for_status()
        return str(r.json()["access_token"]), (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(one, range(players)))
    return [[t, player_ip(phase, i)] for i, (t, _) in enumerate(done)], [ms for _, ms in done]


def snapshot(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select d.xact_commit, d.tup_inserted, d.tup_updated, d.tup_deleted,"
            " pg_current_wal_lsn() - '0/0'::pg_lsn,"
            " (select count(*) from crypto.rate_limits),"
            " (select coalesce(sum(hits), 0) from crypto.rate_limits),"
            " (select coalesce(sum(hits), 0) from crypto.rate_limits where bucket = %s),"
            " (select count(*) from crypto.predictions)"
            " from pg_stat_database as d where d.datname = current_database()",
            ("ip:" + FLOOD_IP,),
        ).fetchone()
    assert row is not None
    keys = [
        "commits",
        "tup_inserted",
        "tup_updated",
        "tup_deleted",
        "wal_bytes",
        "ratelimit_rows",
        "ratelimit_hits",
        "flood_ip_hits",
        "predictions",
    ]
    return dict(zip(keys, (int(v) for v in row), strict=True))


def run_phase(
    url: str, base: str, cutoff: Any, spec: dict[str, Any], settle: float
) -> tuple[dict[str, Any], dict[str, int]]:
    """One rush: the clock 10 minutes before the cutoff, the load, then what
    it wrote (pg_stat_database is flushed by idle backends within ~10 s)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set role oxp_operator")
        conn.execute("select crypto.clock_set(%s::timestamptz - interval '10 minutes')", (cutoff,))
    time.sleep(settle)
    before = snapshot(url)
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps({**spec, "base": base}))
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "rush_load.py"), spec_file, out_file],
            check=True,
        )
        result = json.loads(out_file.read_text())
    time.sleep(settle)
    after = snapshot(url)
    return result, {k: after[k] - before[k] for k in before}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def print_phase(title: str, result: dict[str, Any], cost: dict[str, int]) -> None:
    print(f"\n{title}: {result['elapsed_s']:.0f} s")
    print(
        f"  {'route':44} {'req':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'fail':>5}  statuses"
    )
    total = 0
    for name, r in result["routes"].items():
        total += r["requests"]
        statuses = " ".join(f"{k}:{v}" for k, v in r["statuses"].items())
        print(
            f"  {name:44} {r['requests']:6d} {r['rps']:7.1f} {r['p50_ms']:7.0f}"
            f" {r['p99_ms']:7.0f} {r['failures']:5d}  {statuses}"
        )
    legit = [result["routes"][n] for n in ROUTES if n in result["routes"]]
    ok = sum(r["statuses"].get("200", 0) + r["statuses"].get("201", 0) for r in legit)
    asked = sum(r["requests"] for r in legit)
    worst = max((r["p99_ms"] for r in legit), default=0)
    verdict = "meets" if worst < TARGET_P99_MS else "MISSES"
    print(
        f"  players: {result['players_all_3']}/{result['players']} placed all 3;"
        f" player requests {ok}/{asked} succeeded ({100 * ok / max(asked, 1):.2f} %);"
        f" worst player p99 {worst:.0f} ms ({verdict} p99 < {TARGET_P99_MS} ms)"
    )
    for e in result["errors"][:5]:
        print(f"  error x{e['count']} on {e['route']}: {e['error']}")
    print(
        f"  database: {cost['commits']} commits, {cost['tup_inserted']} rows inserted,"
        f" {cost['tup_updated']} updated, {cost['wal_bytes'] / 1e6:.1f} MB WAL;"
        f" {cost['predictions']} predictions; rate-limit table +{cost['ratelimit_hits']} hits"
        f" in +{cost['ratelimit_rows']} rows; {total} requests in all"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--players", type=int, default=300)
    parser.add_argument(
        "--rush", type=int, default=60, help="seconds the last 10 minutes are compressed into"
    )
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--flood-users", type=int, default=8, help="connections of the one IP")
    parser.add_argument("--rotate-users", type=int, default=8, help="connections of the pool")
    parser.add_argument("--rotate-ips", type=int, default=500)
    parser.add_argument("--no-flood", action="store_true", help="only the first rush")
    parser.add_argument("--settle", type=float, default=11.0, help="seconds for stats to flush")
    args = parser.parse_args()
    with throwaway_cluster() as (work, port):
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        started = time.perf_counter()
        _day, cutoff = prepare(url, args.players)
        # The production configuration: limiter on, default limits; the
        # bench host is the trusted proxy that names each client.
        with running_api(
            url,
            work,
            workers=args.api_workers,
            RATE_LIMITS_ENABLED="true",
            TRUSTED_PROXIES='["127.0.0.1/32"]',
        ) as base:
            phases = [1] if args.no_flood else [1, 2]
            tokens, login_ms = {}, []
            for phase in phases:
                tokens[phase], ms = log_in(base, phase, args.players)
                login_ms += ms
            print(
                f"bench/rush on {os.cpu_count()} cores (shared; the load generator, API and"
                f" PostgreSQL on one machine), {args.api_workers} API processes, limiter on"
            )
            print(
                f"  setup {time.perf_counter() - started:.0f} s; {len(login_ms)} logins"
                f" beforehand (argon2id): p50 {pct(login_ms, 0.5):.0f} ms,"
                f" p99 {pct(login_ms, 0.99):.0f} ms"
            )
            print(
                f"  {args.players} players, the last 10 minutes before the cutoff compressed"
                f" into {args.rush} s ({600 / args.rush:.0f}x the arrival rate)"
            )
            spec: dict[str, Any] = {
                "players": tokens[1],
                "rush_seconds": args.rush,
                "symbols": SYMBOLS,
            }
            first, cost1 = run_phase(url, base, cutoff, spec, args.settle)
            print_phase("Rush", first, cost1)
            if args.no_flood:
                return
            rotate = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(args.rotate_ips)]
            spec = {
                **spec,
                "players": tokens[2],
                "flood_users": args.flood_users,
                "flood_ip": FLOOD_IP,
                "rotate_users": args.rotate_users,
                "rotate_ips": rotate,
            }
            second, cost2 = run_phase(url, base, cutoff, spec, args.settle)
            print_phase(
                f"Rush + flood (one IP x {args.flood_users} connections,"
                f" {args.rotate_ips} IPs in turn x {args.rotate_users})",
                second,
                cost2,
            )
            flood = next(
                (r for n, r in second["routes"].items() if n.startswith("flood, one IP")), None
            )
            pool = next(
                (
                    r
                    for n, r in second["routes"].items()
                    if n.startswith("flood, ") and r is not flood
                ),
                None,
            )
            if flood:
                refused = flood["statuses"].get("429", 0)
                print(
                    f"  the one IP: {flood['requests']} requests, {refused} refused (429);"
                    f" its rate-limit bucket counted {cost2['flood_ip_hits']}"
                    f" (one row update per request, refused or not)"
                )
            if pool:
                refused = pool["statuses"].get("429", 0)
                print(
                    f"  the {args.rotate_ips} IPs: {pool['requests']} requests,"
                    f" {refused} refused (429)"
                    + (": each IP stays under its own per-IP limit" if not refused else "")
                )
            # What a refused request costs: the commits the flood added, less
            # what its served requests cost (a request of the rush alone).
            extra = cost2["commits"] - cost1["commits"]
            floods = [r for n, r in second["routes"].items() if n.startswith("flood, ")]
            flood_requests = sum(r["requests"] for r in floods)
            refused = sum(r["statuses"].get("429", 0) for r in floods)
            per_served = cost1["commits"] / max(
                sum(r["requests"] for r in first["routes"].values()), 1
            )
            print(
                f"  the flood's cost: +{extra} commits over the rush alone for"
                f" {flood_requests} flood requests ({extra / max(flood_requests, 1):.2f} each);"
                f" a served request costs {per_served:.2f} (the rush alone), so a refused one"
                f" ~{(extra - (flood_requests - refused) * per_served) / max(refused, 1):.2f}"
                f"; WAL +{(cost2['wal_bytes'] - cost1['wal_bytes']) / 1e6:.2f} MB"
            )
            print(
                "  (an estimate: pg_cron and the API's periodic reports commit too; a refusal"
                " is the pool's connection check and the limiter's upsert in the unlogged"
                " crypto.rate_limits)"
            )


if __name__ == "__main__":
    main()
