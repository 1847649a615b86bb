"""bench/ledger_cold: what moving the ledger's old months to cold storage
costs (plpgsql/ledger_cold.sql): each move's copy and its swap under the
parents' lock, and what a player's transfer and ledger page wait meanwhile.

A throwaway cluster with a tablespace oxp_cold (a folder on the same disk:
this measures the locks, not a slower disk), bench/ledger's prefill of
--prefill entries over the year's months, retention.ledger_hot_days at its
least (90), and a backup and restore drill recorded as the worker records
them (the bench runs no pgBackRest). Then --moves runs of the daily job,
oldest month first, while one client adjusts a player's points and another
reads a player's ledger page, each in a loop."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import threading
import time
from typing import Any

import psycopg
from ledger import prefill, seed_accounts

from ox_sidecar.migrate import migrate
from throwaway import ROOT, throwaway_cluster


class Loop(threading.Thread):
    """One client calling `query` as fast as it answers; each call's start and latency."""

    def __init__(self, url: str, role: str, query: str, params: Any) -> None:
        super().__init__(daemon=True)
        self.url, self.role, self.query, self.params = url, role, query, params
        self.calls: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"set role {self.role}")
            n = 0
            while not self.stop.is_set():
                n += 1
                started = time.perf_counter()
                conn.execute(self.query, self.params(n)).fetchone()
                self.calls.append((started, time.perf_counter() - started))

    def window(self, start: float, end: float) -> str:
        ms = sorted(1000 * d for s, d in self.calls if start <= s < end)
        if not ms:
            return "no calls"
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return f"{len(ms)} calls, p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefill", type=int, default=5_000_000, help="ledger entries of history")
    parser.add_argument("--moves", type=int, default=4, help="runs of the daily job")
    parser.add_argument("--shared-buffers", default="1GB")
    args = parser.parse_args()
    with throwaway_cluster(args.shared_buffers) as (work, port):
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        migrate(url, "development", root=ROOT)
        cold = work / "cold"
        cold.mkdir()
        if os.geteuid() == 0:
            shutil.chown(cold, "postgres", "postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"create tablespace oxp_cold location '{cold}'")
            conn.execute("grant create on tablespace oxp_cold to oxp_owner")
            first = seed_accounts(conn, 10000, history=True)
            took = prefill(conn, first, 10000, args.prefill)
            print(f"ledger history: {args.prefill:,} entries, written in {took:.0f} s", flush=True)
            conn.execute(
                "update crypto.settings set value = '90' where key = 'retention.ledger_hot_days'"
            )
            conn.execute(
                "insert into crypto.job_runs (job, started_at, finished_at, status) values"
                " ('backup.full', now() - interval '2 hours', now() - interval '1 hour', 'succeeded'),"
                " ('backup.verify', now() - interval '50 minutes', now() - interval '40 minutes', 'succeeded')"
            )
            user = conn.execute(
                "select user_id from crypto.ledger_accounts where id = %s", (first,)
            ).fetchone()
            email = conn.execute(
                "select email from crypto.users where id = %s", (user[0],)
            ).fetchone()  # type: ignore[index]
        writer = Loop(
            url,
            "oxp_operator",
            "select crypto.adjust_points(%s, 1, 'bench', %s)",
            lambda n: (email[0], f"cold-bench:{n}"),  # type: ignore[index]
        )
        reader = Loop(
            url, "postgres", "select crypto.ledger_page(%s, null, 20)", lambda n: (user[0],)
        )  # type: ignore[index]
        writer.start()
        reader.start()
        time.sleep(10)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("set role oxp_service")
            for _ in range(args.moves):
                started = time.perf_counter()
                report = conn.execute("select crypto.ledger_cold_storage()").fetchone()[0]  # type: ignore[index]
                ended = time.perf_counter()
                moved = report["moved"]
                if moved is None:
                    print(f"  nothing moved: {report['reason']}")
                    break
                print(
                    f"  {moved['partition']}: {moved['rows']:,} rows in {ended - started:.2f} s"
                    f" (copy {moved['copy_seconds']:.2f} s, swap {moved['swap_seconds'] * 1000:.1f} ms);"
                    f" {report['due']} due after",
                    flush=True,
                )
                print(f"    adjustment meanwhile: {writer.window(started, ended)}")
                print(f"    ledger page meanwhile: {reader.window(started, ended)}", flush=True)
                time.sleep(2)
        before = writer.calls[0][0] if writer.calls else 0.0
        print(f"  adjustment before the moves (10 s): {writer.window(before, before + 10)}")
        print(f"  ledger page before the moves (10 s): {reader.window(before, before + 10)}")
        writer.stop.set()
        reader.stop.set()
        writer.join()
        reader.join()
        with psycopg.connect(url, autocommit=True) as conn:
            spaces = conn.execute(
                "select coalesce(t.spcname, 'default'), count(*) from pg_inherits as i"
                " join pg_class as c on c.oid = i.inhrelid left join pg_tablespace as t on t.oid = c.reltablespace"
                " where i.inhparent in ('crypto.ledger_transfers'::regclass, 'crypto.ledger_entries'::regclass)"
                " group by 1 order by 1"
            ).fetchall()
            violations = conn.execute(
                "select count(*) from crypto.integrity_violations()"
            ).fetchone()
        print(
            f"  months by tablespace: {dict(spaces)}; integrity violations after: {violations[0]}"
        )  # type: ignore[index]
    print(f"bench/ledger_cold on {os.cpu_count()} cores, shared_buffers {args.shared_buffers}")


if __name__ == "__main__":
    main()
