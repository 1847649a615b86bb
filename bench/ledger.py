"""bench/ledger: crypto.ledger_transfer under pgbench at 1, 8 and 32 clients,
with the accounts spread (10,000 users) or concentrated (4 users), and the
TPC-B figure of the same cluster for scale. Durable commits throughout.
--prefill N first writes a history of N ledger entries (issue 14 item 6:
does an unpartitioned ledger of 50M entries slow down?), and the bench adds
a player's ledger page and the integrity check, timed. --convert-from REV
builds the schema and writes that history as release REV had them (its
sql/, plpgsql/ and pg_cron/, from git), then times the migration to this
tree's schema (sql/0040 and 0041 partition the ledger in place) before the
runs. --checks-ab ROUNDS instead times the single transfer's key checks
(sql/0044: two statement triggers) against none and against the foreign
keys they replaced, on one cluster, in interleaved rounds (below)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from ox_sidecar.migrate import migrate, migration_files
from throwaway import ROOT, throwaway_cluster

# One transfer of 1 point between two different user accounts, keyed like a
# real caller (a unique key per transfer). Account ids of users run from
# :first to :first + :n - 1.
TRANSFER = """
\\set a :first + random(0, :n - 1)
\\set b :first + (:a - :first + 1 + random(0, :n - 2)) % :n
select (crypto.ledger_transfer('bench:' || gen_random_uuid(), :a, :b, 1, 'bench')).id;
"""
# The first page of a player's ledger (GET /v1/points/ledger's query).
LEDGER_PAGE = """
\\set a :first + random(0, :n - 1)
select crypto.ledger_page((select user_id from crypto.ledger_accounts where id = :a), null, 20);
"""

# A history of 2 x transfers entries between the user accounts, in pairs
# (A, B) = (first + 2p, first + 2p + 1) that pass a point back and forth: in
# even rounds A pays B (A's balance after is B0 - 1, B's B0 + 1, B0 being
# the seed), in odd rounds it comes back (both B0 again). So each entry's
# balance_after is known without sorting 50M rows (the integrity check
# recomputes every one). Written in bulk without a foreign-key check per row
# (session_replication_role = replica), on this throwaway cluster only. Dated
# evenly from 2026-01-01 to a day before the bench, though written after the
# seed: a page shows it older. Each transfer's key first, which hands out
# its id (sql/0040); before 0040 (an A/B run on an older tree) the transfer
# takes its own identity.
PREFILL_KEYS = """
insert into crypto.ledger_transfer_keys (transfer_id, idempotency_key, created_at)
overriding system value
select %(ids)s + 1 + k - %(from)s, 'prefill:' || k, %(start)s::timestamptz + k * %(step)s::interval
from generate_series(%(from)s::bigint, %(to)s::bigint - 1) as k
order by k
"""
PREFILL_TRANSFERS = """
insert into crypto.ledger_transfers
    (id, idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
overriding system value
select
    %(ids)s + 1 + k - %(from)s,
    'prefill:' || k,
    case when x.r %% 2 = 0 then x.a else x.a + 1 end,
    case when x.r %% 2 = 0 then x.a + 1 else x.a end,
    1, 'bench', %(start)s::timestamptz + k * %(step)s::interval
from generate_series(%(from)s::bigint, %(to)s::bigint - 1) as k
cross join lateral (select %(first)s + 2 * (k %% %(pairs)s) as a, k / %(pairs)s as r) as x
order by k
"""
PREFILL_ENTRIES = """
insert into crypto.ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
select t.id, v.account, v.amount, a.balance + v.after, t.created_at
from crypto.ledger_transfers as t
cross join lateral (values
    (t.debit_account_id, -t.amount, case when (t.debit_account_id - %(first)s) %% 2 = 0 then -1 else 0 end),
    (t.credit_account_id, t.amount, case when (t.credit_account_id - %(first)s) %% 2 = 0 then 0 else 1 end)
) as v (account, amount, after)
join crypto.ledger_accounts as a on a.id = v.account
where t.id > %(ids)s
order by t.id, v.amount
"""
# Each pair's balances after its last round: moved when that round was even.
PREFILL_BALANCES = """
update crypto.ledger_accounts as a
set balance = a.balance + case when (a.id - %(first)s) %% 2 = 0 then -1 else 1 end
where a.kind = 'user' and a.id - %(first)s between 0 and 2 * %(pairs)s - 1
    and (case when (a.id - %(first)s) / 2 < %(reached)s then %(last)s else %(last)s - 1 end) %% 2 = 0
    and (case when (a.id - %(first)s) / 2 < %(reached)s then %(last)s else %(last)s - 1 end) >= 0
"""


PREFILL_START = "2026-01-01 00:00:00+00"

# The checks on a transfer's key (sql/0044), in the three forms compared by
# --checks-ab: (made so, undone after the round).
CHECKS = {
    "statement triggers (this tree)": ("", ""),
    "no check": (
        "alter table crypto.ledger_transfers disable trigger ledger_transfers_keyed;"
        " alter table crypto.ledger_entries disable trigger ledger_entries_keyed",
        "alter table crypto.ledger_transfers enable trigger ledger_transfers_keyed;"
        " alter table crypto.ledger_entries enable trigger ledger_entries_keyed",
    ),
    "foreign keys (before 0044)": (
        "alter table crypto.ledger_transfers disable trigger ledger_transfers_keyed;"
        " alter table crypto.ledger_entries disable trigger ledger_entries_keyed;"
        " alter table crypto.ledger_transfers add constraint ledger_transfers_key_fkey"
        "  foreign key (id) references crypto.ledger_transfer_keys (transfer_id);"
        " alter table crypto.ledger_entries add constraint ledger_entries_transfer_id_fkey"
        "  foreign key (transfer_id) references crypto.ledger_transfer_keys (transfer_id)",
        "alter table crypto.ledger_transfers drop constraint ledger_transfers_key_fkey;"
        " alter table crypto.ledger_entries drop constraint ledger_entries_transfer_id_fkey;"
        " alter table crypto.ledger_transfers enable trigger ledger_transfers_keyed;"
        " alter table crypto.ledger_entries enable trigger ledger_entries_keyed",
    ),
}
# `n` transfers of 1 point in one statement of one session, each its own
# crypto.ledger_transfer call with its own key, between accounts spread over
# the 10,000 (never the same two: :first + (i * 7919) % 10000 walks them all).
LOOP = """
select count((crypto.ledger_transfer(
    'loop:' || gen_random_uuid(),
    %(first)s + (i * 7919) %% 10000,
    %(first)s + (i * 7919 + 1 + i %% 9998) %% 10000,
    1, 'bench')).id)
from generate_series(1, %(n)s) as i
"""


def seed_accounts(conn: psycopg.Connection, users: int, history: bool = False) -> int:
    """`users` players (l<i>@example.com) with accounts in a row of ids,
    each seeded rich enough that no transfer is refused: through the audited
    adjustment, so the integrity check finds every point's cause. With a
    `history` to follow (prefill), the seed is dated before it, so that the
    ledger's dates follow its ids as a real one's do (crypto.ledger_page
    relies on that). The first account's id."""
    conn.execute(
        "insert into crypto.users (id, email, password_hash)"
        " select gen_random_uuid(), 'l' || i || '@example.com', '$argon2id$bench'"
        " from generate_series(1, %s) as i",
        (users,),
    )
    conn.execute(
        "insert into crypto.ledger_accounts (kind, user_id)"
        " select 'user', id from crypto.users where email like 'l%%' order by email"
    )
    first = conn.execute(
        "select min(a.id) from crypto.ledger_accounts as a"
        " join crypto.users as u on u.id = a.user_id where u.email like 'l%%'"
    ).fetchone()
    assert first is not None
    if history:
        conn.execute(
            "select crypto.clock_set(%s::timestamptz - interval '1 day')", (PREFILL_START,)
        )
    conn.execute(
        "select count(crypto.adjust_points(u.email, 1000000, 'bench seed', 'seed:' || u.id))"
        " from crypto.users as u where u.email like 'l%%'"
    )
    if history:
        conn.execute("select crypto.clock_reset()")
    conn.execute("vacuum analyze")
    conn.execute("checkpoint")
    return int(first[0])


def in_date_order(conn: psycopg.Connection) -> None:
    """The seed, then the history, then the runs at the real time: written
    in date order, as by a clock that never moved, though the seed's clock
    did (which turned ledger.dates_follow_ids off, and a migration from a
    release without the setting starts it off): a page reads as in
    production. Nothing before that setting existed."""
    conn.execute("update crypto.settings set value = 'true' where key = 'ledger.dates_follow_ids'")


def prefill(conn: psycopg.Connection, first: int, accounts: int, entries: int) -> float:
    """`entries` entries of history before the bench, in batches of a
    million transfers; the seconds it took."""
    started = time.perf_counter()
    pairs = accounts // 2
    transfers = entries // 2
    # The months the history spans (partitioned, sql/0041): made first, as
    # the hourly maintenance made them when that history was written. A
    # no-op before 0041.
    conn.execute(
        "select crypto.partition_ensure(t, m, 1)"
        " from unnest(array['crypto.ledger_transfers', 'crypto.ledger_entries']) as t,"
        " generate_series(%s::timestamptz, now(), interval '1 month') as m",
        (PREFILL_START,),
    )
    conn.execute("set session_replication_role = replica")
    try:
        _prefill_batches(conn, first, pairs, transfers, started)
    finally:
        conn.execute("set session_replication_role = origin")
    in_date_order(conn)
    conn.execute("vacuum analyze crypto.ledger_transfers, crypto.ledger_entries")
    conn.execute("checkpoint")
    return time.perf_counter() - started


def _prefill_batches(
    conn: psycopg.Connection, first: int, pairs: int, transfers: int, started: float
) -> None:
    batch = 1_000_000
    keyed = conn.execute("select to_regclass('crypto.ledger_transfer_keys') is not null").fetchone()
    step = conn.execute(
        "select ((now() - interval '1 day' - %s::timestamptz) / greatest(%s, 1))::text",
        (PREFILL_START, transfers),
    ).fetchone()
    assert keyed is not None and step is not None
    for low in range(0, transfers, batch):
        high = min(low + batch, transfers)
        with conn.transaction():
            row = conn.execute(
                "select coalesce(max(id), 0) from crypto.ledger_transfers"
            ).fetchone()
            assert row is not None
            params = {
                "start": PREFILL_START,
                "step": step[0],
                "ids": row[0],
                "from": low,
                "to": high,
                "first": first,
                "pairs": pairs,
            }
            if keyed[0]:
                conn.execute(PREFILL_KEYS, params)
            conn.execute(PREFILL_TRANSFERS, params)
            conn.execute(PREFILL_ENTRIES, {"ids": row[0], "first": first})
        print(f"  prefill: {2 * high:,} entries, {time.perf_counter() - started:.0f} s", flush=True)
    if transfers:
        last = (transfers - 1) // pairs  # the last round, which pairs below `reached` had
        reached = transfers - last * pairs
        with conn.transaction():
            conn.execute(
                PREFILL_BALANCES,
                {"first": first, "pairs": pairs, "last": last, "reached": reached},
            )
            # The identity that hands out transfer ids resumes after the history.
            conn.execute(
                "select setval(pg_get_serial_sequence(%s, %s), (select max(id) from crypto.ledger_transfers))",
                ("crypto.ledger_transfer_keys", "transfer_id")
                if keyed[0]
                else ("crypto.ledger_transfers", "id"),
            )


def nightly_check(conn: psycopg.Connection, label: str) -> str:
    """One daily run as pg_cron calls it (sql/0042): the first reads
    everything and sets the checkpoints, the next only the ledger since the
    last clean run less a day (here the history's last day and the bench's
    transfers). Nothing to say before 0042 (an A/B run on an older tree)."""
    if conn.execute("select to_regclass('crypto.ledger_checkpoints')").fetchone() == (None,):
        return ""
    started = time.perf_counter()
    found = conn.execute("select crypto.run_integrity_check()").fetchone()
    run = conn.execute(
        "select since::text, accounts_advanced from crypto.ledger_verifications order by id desc limit 1"
    ).fetchone()
    assert found is not None and run is not None
    return (
        f"  nightly integrity run, {label}: {time.perf_counter() - started:.1f} s,"
        f" {found[0]} violations, read since {run[0]}, {run[1]:,} checkpoints moved"
    )


def server_cpu_seconds(work: Path) -> float:
    """CPU seconds the cluster's ended backends used (the postmaster's reaped
    children: cutime + cstime), so that a run's CPU per transaction can be
    read beside its throughput. On a shared 2-core machine throughput moves
    by tens of percent between runs; CPU per transaction moves far less."""
    pid = (work / "pg" / "postmaster.pid").read_text().split()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def pgbench(
    url: str, clients: int, seconds: int, extra: list[str], work: Path | None = None
) -> tuple[float, float, float]:
    """(tx/s, average latency in ms, server CPU ms per transaction or 0)."""
    command = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2))]
    command += ["-T", str(seconds), *extra, url]
    if work:
        # A backend whose connection just closed (the first, full integrity
        # run's: a minute of CPU) is reaped a moment later: not this run's.
        time.sleep(2)
    before = server_cpu_seconds(work) if work else 0.0
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
    cpu = 0.0
    if work:
        time.sleep(1)  # the backends have exited and been reaped
        done_tx = next(
            int(x.split(":")[1]) for x in lines if x.startswith("number of transactions actually")
        )
        cpu = (server_cpu_seconds(work) - before) * 1000 / max(done_tx, 1)
    return tps, latency, cpu


def checks_ab(url: str, first: int, rounds: int, n: int) -> None:
    """The CPU a single transfer spends, with each form of the key checks in
    turn, round after round on the same cluster and data: `n` transfers in
    one server-side statement, commits asynchronous, so neither the disk
    nor the scheduling of 8 clients on 2 cores (which moved pgbench's CPU
    per transfer from 0.75 to 1.56 ms between rounds of one configuration)
    is in the figure. The medians, and each round's."""
    times: dict[str, list[float]] = {name: [] for name in CHECKS}
    for round_ in range(rounds):
        for name, (make, undo) in CHECKS.items():
            with psycopg.connect(url, autocommit=True) as conn:
                if make:
                    conn.execute(make)
                try:
                    conn.execute("set synchronous_commit = off")
                    conn.execute(LOOP, {"first": first, "n": 200})  # the session's plans
                    started = time.perf_counter()
                    conn.execute(LOOP, {"first": first, "n": n})
                    times[name].append((time.perf_counter() - started) * 1e6 / n)
                finally:
                    if undo:
                        conn.execute(undo)
            print(
                f"  round {round_ + 1}: {name:<32} {times[name][-1]:6.0f} us a transfer", flush=True
            )
    print(f"bench/ledger --checks-ab: {n:,} transfers a round, {rounds} rounds, medians:")
    for name, spent in times.items():
        each = ", ".join(f"{x:.0f}" for x in spent)
        print(f"  {name:<32} {statistics.median(spent):6.0f} us a transfer ({each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument(
        "--convert-from",
        default=None,
        help="a git revision: fill the ledger on its schema, then time the migration to this one",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="ledger entries of history written before the bench (e.g. 50000000)",
    )
    parser.add_argument(
        "--checks-ab",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only compare the key checks' forms on single transfers, in ROUNDS interleaved rounds",
    )
    parser.add_argument("--loop", type=int, default=20000, help="transfers a round of --checks-ab")
    args = parser.parse_args()
    if args.checks_ab:
        with throwaway_cluster() as (_, port):
            url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
            migrate(url, "development")
            with psycopg.connect(url, autocommit=True) as conn:
                first = seed_accounts(conn, 10000)
            checks_ab(url, first, args.checks_ab, args.loop)
        return
    clients = [int(c) for c in args.clients.split(",")]
    rows: list[tuple[str, int, float, float]] = []
    with throwaway_cluster() as (work, port):
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        with tempfile.TemporaryDirectory() as old:
            if args.convert_from:
                migration_files(args.convert_from, Path(old))
            migrate(url, "development", root=Path(old) if args.convert_from else ROOT)
            with psycopg.connect(url, autocommit=True) as conn:
                first = seed_accounts(conn, 10000, history=args.prefill > 0)
                filled = prefill(conn, first, 10000, args.prefill) if args.prefill else 0.0
        if args.convert_from:
            started = time.perf_counter()
            report = migrate(url, "development")
            if args.prefill:
                with psycopg.connect(url, autocommit=True) as conn:
                    in_date_order(conn)
            print(
                f"  migrated from {args.convert_from} in {time.perf_counter() - started:.1f} s"
                f" ({', '.join(report.applied)} and the repeatable files)",
                flush=True,
            )
        with psycopg.connect(url, autocommit=True) as conn:
            # Summed over the partitions (a parent itself holds nothing), and
            # the transfers' keys with them when they have a table (sql/0040).
            sizes = conn.execute(
                "select pg_size_pretty((select sum(pg_total_relation_size(p.relid))"
                "  from pg_partition_tree('crypto.ledger_entries') as p)),"
                " pg_size_pretty((select sum(pg_total_relation_size(p.relid))"
                "  from pg_partition_tree('crypto.ledger_transfers') as p)"
                "  + coalesce(pg_total_relation_size(to_regclass('crypto.ledger_transfer_keys')), 0)),"
                " (select count(*) from crypto.ledger_entries)"
            ).fetchone()
            assert sizes is not None
            first_night = nightly_check(conn, "before the runs (the first: full)")
        print(
            f"  ledger before the runs: {sizes[2]:,} entries (entries {sizes[0]},"
            f" transfers {sizes[1]} with their keys and indexes); prefill took {filled:.0f} s",
            flush=True,
        )
        script = Path(work) / "transfer.sql"
        script.write_text(TRANSFER)
        page = Path(work) / "page.sql"
        page.write_text(LEDGER_PAGE)
        tps, latency, cpu = pgbench(
            url, 8, args.seconds, ["-f", str(page), "-D", "n=10000", "-D", f"first={first}"], work
        )
        rows.append(("a player's ledger page (20 entries)", 8, tps, latency))
        print(
            f"  {rows[-1][0]:<48} {8:>3} clients  {tps:9,.0f} tx/s  {latency:7.2f} ms avg"
            f"  {cpu:5.2f} ms CPU/tx",
            flush=True,
        )
        for label, n in (("spread over 10,000 accounts", 10000), ("concentrated on 4 accounts", 4)):
            for c in clients:
                tps, latency, cpu = pgbench(
                    url,
                    c,
                    args.seconds,
                    ["-f", str(script), "-D", f"n={n}", "-D", f"first={first}"],
                    work,
                )
                rows.append((f"ledger_transfer, {label}", c, tps, latency))
                print(
                    f"  {rows[-1][0]:<48} {c:>3} clients  {tps:9,.0f} tx/s  {latency:7.2f} ms avg"
                    f"  {cpu:5.2f} ms CPU/tx",
                    flush=True,
                )
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", admin], check=True, capture_output=True)
        for c in clients:
            tps, latency, _ = pgbench(admin, c, args.seconds, [])
            rows.append(("pgbench TPC-B (scale 10)", c, tps, latency))
            print(
                f"  {rows[-1][0]:<48} {c:>3} clients  {tps:9,.0f} tx/s  {latency:7.2f} ms avg",
                flush=True,
            )
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            violations = conn.execute(
                "select count(*) from crypto.integrity_violations()"
            ).fetchone()[0]  # type: ignore[index]
            integrity_seconds = time.perf_counter() - started
            nightly = nightly_check(conn, "after the runs (incremental)")
            # pg_cron's sealer ran every minute during the run; seal the rest, verify all.
            sealed = conn.execute("select crypto.audit_seal()").fetchone()[0]  # type: ignore[index]
            started = time.perf_counter()
            verified = conn.execute("select crypto.audit_verify()").fetchone()[0]  # type: ignore[index]
            verify_seconds = time.perf_counter() - started
    print(
        f"bench/ledger on {os.cpu_count()} cores, {args.seconds} s per run, durable commits;"
        f" integrity violations afterwards: {violations} (the check took {integrity_seconds:.1f} s)"
    )
    for said in (first_night, nightly):
        if said:
            print(said)
    print(
        f"  audit chain: {verified['rows_checked']:,} rows ({sealed:,} sealed at the end, the rest"
        f" by pg_cron during the run); verified in {verify_seconds:.2f} s, ok: {verified['ok']}"
    )


if __name__ == "__main__":
    main()
