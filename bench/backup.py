"""bench/backup: pgBackRest against a ledger of 1,000,000 entries: a full
backup, a differential after 100,000 more entries, and a point-in-time
restore to the moment before those; prints sizes, times and the recovery
time objective (restore + replay) they imply."""

from __future__ import annotations

import argparse
import os
import subprocess
import time

import psycopg

from ox_sidecar import backups
from ox_sidecar.config import get_settings
from ox_sidecar.migrate import migrate
from throwaway import ROOT, throwaway_cluster


def transfers(url: str, count: int) -> float:
    """`count` transfers (two entries each) between 1,000 accounts, in batches."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        first = conn.execute(
            "select min(id) from crypto.ledger_accounts where kind = 'user'"
        ).fetchone()[0]  # type: ignore[index]
        done = 0
        while done < count:
            batch = min(10000, count - done)
            conn.execute(
                "select count(crypto.ledger_transfer('bench:' || gen_random_uuid(),"
                " %s + (i %% 1000), %s + ((i + 1) %% 1000), 1, 'bench'))"
                " from generate_series(1, %s) as i",
                (first, first, batch),
            )
            done += batch
    return time.monotonic() - started


def mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--more", type=int, default=100_000)
    args = parser.parse_args()
    with throwaway_cluster() as (work, port):
        data, repo = work / "pg", work / "repo"
        subprocess.run(
            [ROOT / "scripts" / "backups.sh", "setup", data, str(port), repo], check=True
        )
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        os.environ |= {
            "DATABASE_URL": url,
            "BACKUP_CONFIG": str(repo / "pgbackrest.conf"),
            "PG_DATA_DIR": str(data),
        }
        get_settings.cache_clear()
        settings = get_settings()
        migrate(url, "development")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "insert into crypto.users (id, email, password_hash)"
                " select gen_random_uuid(), 'b' || i || '@example.com', '$argon2id$bench'"
                " from generate_series(1, 1000) as i"
            )
            conn.execute(
                "insert into crypto.ledger_accounts (kind, user_id)"
                " select 'user', id from crypto.users order by email"
            )
            conn.execute(
                "select count(crypto.adjust_points(u.email, 1000000, 'bench seed', 'seed:' || u.id))"
                " from crypto.users as u"
            )
        load = transfers(url, args.entries // 2)
        full = backups.backup(settings, "full")
        time.sleep(1.1)
        with psycopg.connect(url) as conn:
            target = conn.execute("select clock_timestamp()").fetchone()[0]  # type: ignore[index]
            before = conn.execute("select count(*) from crypto.ledger_entries").fetchone()[0]  # type: ignore[index]
        more = transfers(url, args.more // 2)
        diff = backups.backup(settings, "diff")
        restored = backups.restore(settings, target)
        with psycopg.connect(url) as conn:
            after = conn.execute("select count(*) from crypto.ledger_entries").fetchone()[0]  # type: ignore[index]
        latest = backups.restore(settings, None)
        drill = backups.verify(settings)
    print(f"{'step':<44} {'seconds':>8}  size")
    print(f"{'load ' + str(args.entries) + ' ledger entries':<44} {load:>8.1f}")
    print(
        f"{'full backup':<44} {full['seconds']:>8.1f}  {mib(full['size_bytes'])} database,"
        f" {mib(full['repo_bytes'])} in the repository"
    )
    print(f"{'load ' + str(args.more) + ' more':<44} {more:>8.1f}")
    print(
        f"{'differential backup':<44} {diff['seconds']:>8.1f}  {mib(diff['repo_bytes'])} in the"
        " repository"
    )
    print(f"{'PITR restore to before them (stop..start)':<44} {restored['seconds']:>8.1f}")
    print(f"{'restore --latest (every archived WAL)':<44} {latest['seconds']:>8.1f}")
    print(f"{'restore drill (verify-backup)':<44} {drill['seconds']:>8.1f}  ok={drill['ok']}")
    assert after == before, (after, before)
    print(
        f"entries at T {before}, after the PITR {after}: exact. RTO here: about"
        f" {max(restored['seconds'], latest['seconds']):.0f} s of downtime for"
        f" {mib(full['size_bytes'])} plus replay; RPO: archive_timeout (60 s) at worst."
    )


if __name__ == "__main__":
    main()
