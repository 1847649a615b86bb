"""bench/ledger: crypto.ledger_transfer under pgbench at 1, 8 and 32 clients,
with the accounts spread (10,000 users) or concentrated (4 users), and the
TPC-B figure of the same cluster for scale. Durable commits throughout."""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import psycopg

from ox_sidecar.migrate import migrate
from throwaway import throwaway_cluster

# One transfer of 1 point between two different user accounts, keyed like a
# real caller (a unique key per transfer). Account ids of users run from
# :first to :first + :n - 1.
TRANSFER = """
\\set a :first + random(0, :n - 1)
\\set b :first + (:a - :first + 1 + random(0, :n - 2)) % :n
select (crypto.ledger_transfer('bench:' || gen_random_uuid(), :a, :b, 1, 'bench')).id;
"""


def pgbench(url: str, clients: int, seconds: int, extra: list[str]) -> tuple[float, float]:
    command = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2))]
    command += ["-T", str(seconds), *extra, url]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pgbench failed: {done.stderr[-2000:]}")
    lines = done.stdout.splitlines()
    tps = next(float(x.split("=")[1].split()[0]) for x in lines if x.startswith("tps"))
    latency = next(
        float(x.split("=")[1].split()[0]) for x in lines if x.startswith("latency average")
    )
    failed = next((x for x in lines if x.startswith("number of failed")), "")
    if failed and not failed.split(":")[1].strip().startswith("0"):
        raise SystemExit(f"pgbench reported failures: {failed}")
    return tps, latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", default="1,8,32")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    rows: list[tuple[str, int, float, float]] = []
    with throwaway_cluster() as (work, port):
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        migrate(url, "development")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "insert into crypto.users (id, email, password_hash)"
                " select gen_random_uuid(), 'l' || i || '@example.com', '$argon2id$bench'"
                " from generate_series(1, 10000) as i"
            )
            conn.execute(
                "insert into crypto.ledger_accounts (kind, user_id)"
                " select 'user', id from crypto.users order by email"
            )
            first = conn.execute(
                "select min(id) from crypto.ledger_accounts where kind = 'user'"
            ).fetchone()[0]  # type: ignore[index]
            # Everyone starts rich enough that no transfer is refused; through
            # the audited adjustment, so the integrity check finds every point's cause.
            conn.execute(
                "select count(crypto.adjust_points(u.email, 1000000, 'bench seed', 'seed:' || u.id))"
                " from crypto.users as u"
            )
            conn.execute("vacuum analyze")
            conn.execute("checkpoint")
        script = Path(work) / "transfer.sql"
        script.write_text(TRANSFER)
        for label, n in (("spread over 10,000 accounts", 10000), ("concentrated on 4 accounts", 4)):
            for c in clients:
                tps, latency = pgbench(
                    url,
                    c,
                    args.seconds,
                    ["-f", str(script), "-D", f"n={n}", "-D", f"first={first}"],
                )
                rows.append((f"ledger_transfer, {label}", c, tps, latency))
                print(
                    f"  {rows[-1][0]:<48} {c:>3} clients  {tps:9,.0f} tx/s  {latency:7.2f} ms avg",
                    flush=True,
                )
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", admin], check=True, capture_output=True)
        for c in clients:
            tps, latency = pgbench(admin, c, args.seconds, [])
            rows.append(("pgbench TPC-B (scale 10)", c, tps, latency))
            print(
                f"  {rows[-1][0]:<48} {c:>3} clients  {tps:9,.0f} tx/s  {latency:7.2f} ms avg",
                flush=True,
            )
        with psycopg.connect(url, autocommit=True) as conn:
            violations = conn.execute(
                "select count(*) from crypto.integrity_violations()"
            ).fetchone()[0]  # type: ignore[index]
            # pg_cron's sealer ran every minute during the run; seal the rest, verify all.
            sealed = conn.execute("select crypto.audit_seal()").fetchone()[0]  # type: ignore[index]
            started = time.perf_counter()
            verified = conn.execute("select crypto.audit_verify()").fetchone()[0]  # type: ignore[index]
            verify_seconds = time.perf_counter() - started
    print(
        f"bench/ledger on {os.cpu_count()} cores, {args.seconds} s per run, durable commits;"
        f" integrity violations afterwards: {violations}"
    )
    print(
        f"  audit chain: {verified['rows_checked']:,} rows ({sealed:,} sealed at the end, the rest"
        f" by pg_cron during the run); verified in {verify_seconds:.2f} s, ok: {verified['ok']}"
    )


if __name__ == "__main__":
    main()
