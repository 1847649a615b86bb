"""Cold storage of one ledger month (plpgsql/cold_storage.sql) on a
throwaway cluster: a history prefilled by month (bench/ledger's prefill),
then January's two partitions taken through every step while 8 clients make
transfers in the current month. Reports each step's time and the clients'
latency (p50, p99, max) before and during the move, and whether any failed.
The restore drill's word is given here by hand (the drill itself is in
tests/python/test_cold_storage.py), after the month was frozen and digested."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import threading
import time
from pathlib import Path

import psycopg
from ledger import prefill, seed_accounts

from ox_sidecar.migrate import migrate
from throwaway import throwaway_cluster

STEPS = "select crypto.cold_step(%s)"


def clients(
    url: str, first: int, stop: threading.Event, out: list[float], errors: list[str]
) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        n = 0
        while not stop.is_set():
            n += 1
            a = first + 2 * ((threading.get_ident() + n) % 4000)
            started = time.perf_counter()
            try:
                conn.execute(
                    "select crypto.ledger_transfer(%s, %s, %s, 1, 'bench')",
                    (f"cold:{threading.get_ident()}:{n}", a, a + 1),
                )
            except psycopg.Error as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            out.append((time.perf_counter() - started) * 1000)


def summary(ms: list[float]) -> str:
    if not ms:
        return "none"
    q = statistics.quantiles(ms, n=100)
    return f"{len(ms)} transfers, p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {max(ms):.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefill", type=int, default=11_000_000, help="ledger entries of history")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with throwaway_cluster() as (work, port):
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        migrate(url, "development")
        cold = Path(work) / "cold"
        cold.mkdir()
        with psycopg.connect(url, autocommit=True) as conn:
            first = seed_accounts(conn, 10000, history=True)
            filled = prefill(conn, first, 10000, args.prefill)
        if os.geteuid() == 0:
            shutil.chown(cold, "postgres", "postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"create tablespace oxp_cold location '{cold}'")
            conn.execute("grant create on tablespace oxp_cold to oxp_owner")
            conn.execute("select crypto.setting_set('retention.ledger_hot_months', '6')")
            months = conn.execute(
                "select partition from crypto.cold_months_due() where partition like '%p2026_01'"
            ).fetchall()
            sizes = conn.execute(
                "select string_agg(format('%s %s rows %s', c.relname, c.reltuples::bigint,"
                " pg_size_pretty(pg_total_relation_size(c.oid))), '; ')"
                " from pg_class as c where c.relname in ('ledger_entries_p2026_01', 'ledger_transfers_p2026_01')"
            ).fetchone()
            conn.execute(
                "insert into crypto.jobs (kind, status, attempts, run_after, locked_at, claimed_pid,"
                " created_at) values ('partition.cold', 'running', 1, now(), now(), pg_backend_pid(), now())"
            )
            print(
                f"prefill of {args.prefill:,} entries: {filled:.0f} s; January: {sizes[0] if sizes else ''}"
            )
            stop = threading.Event()
            base: list[float] = []
            errors: list[str] = []
            threads = [
                threading.Thread(target=clients, args=(url, first, stop, base, errors))
                for _ in range(args.clients)
            ]
            for t in threads:
                t.start()
            time.sleep(10)
            before = list(base)
            base.clear()
            steps: list[str] = []
            started = time.perf_counter()
            for (partition,) in months:
                while True:
                    t0 = time.perf_counter()
                    try:
                        with conn.transaction():
                            step = conn.execute(STEPS, (partition,)).fetchone()[0]  # type: ignore[index]
                    except psycopg.errors.LockNotAvailable:
                        steps.append(f"{partition} gave way after {time.perf_counter() - t0:.3f} s")
                        time.sleep(0.1)
                        continue
                    steps.append(f"{partition} {step['step']} in {time.perf_counter() - t0:.3f} s")
                    if step["step"] == "waiting":
                        conn.execute(
                            "update crypto.cold_months set backed_up_at = now(), backup = 'bench'"
                            " where partition = %s",
                            (partition,),
                        )
                    if step["step"] == "moved":
                        break
            moving = time.perf_counter() - started
            during = list(base)
            stop.set()
            for t in threads:
                t.join()
        for line in steps:
            print("  " + line)
        print(f"the move of both partitions: {moving:.1f} s")
        print(f"{args.clients} clients, 10 s before: {summary(before)}")
        print(f"{args.clients} clients, during the move: {summary(during)}")
        print(f"failed transfers: {len(errors)} {errors[:3]}")


if __name__ == "__main__":
    main()
