"""The ledger's upgrade from the release before it was partitioned (3769874,
the last main without sql/0040-0042): a database built and written by that
release's own files (its functions wrote the ledger) is migrated to today's.
Every transfer gets its key, every row is kept in its month, the identity
that hands out transfer ids resumes after the largest, a retry of an old key
finds its transfer and pays nothing, and the books balance, read whole and
read from the checkpoints on."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_partitions import LEDGER_DIGEST, empty_db, place_and_correct  # noqa: F401 (a fixture)

from ox_sidecar.config import ROOT
from ox_sidecar.migrate import migrate, migration_files

RELEASE = "3769874"
LEDGER = "select" + LEDGER_DIGEST


def release_files(into: Path) -> None:
    """That release's migrations, from this repository's history."""
    known = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{RELEASE}^{{commit}}"], check=False
    )
    if known.returncode != 0:
        pytest.skip(f"this clone has no history back to {RELEASE}")
    migration_files(RELEASE, into)


def test_a_ledger_written_by_the_release_before_upgrades_whole(
    empty_db: str,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    release_files(tmp_path)
    assert not (tmp_path / "sql" / "0040_ledger_transfer_keys.sql").exists()
    migrate(empty_db, "development", root=tmp_path)
    with psycopg.connect(empty_db, autocommit=True) as db:
        # Awards of a settled November day, an adjustment in March (audited
        # as adjust_points audits one) and a refusal, by that release's own
        # functions.
        place_and_correct(db, corrections=False)
        db.execute("select crypto.audit('test', 'points.adjust', 'adjust:test:march', '{}')")
        user = "(select id from crypto.users where email = 'b@example.com')"
        refused = db.execute(
            f"select (crypto.ledger_transfer('spend:test:1', crypto.user_account({user}),"
            " crypto.system_account('redemptions'), 1000000, 'redemption')).refusal"
        ).fetchone()
        assert refused == ("OX201",)
        before = db.execute(LEDGER).fetchone()
        assert before is not None and before[0] == 4 and before[2] == 6
        top = db.execute("select max(id) from crypto.ledger_transfers").fetchone()
        assert top is not None

    report = migrate(empty_db, "development")
    assert report.applied == [
        "0040_ledger_transfer_keys.sql",
        "0041_partition_ledger.sql",
        "0042_ledger_checkpoints.sql",
        "0043_partition_archives.sql",
        "0044_ledger_key_checks.sql",
        "0045_cold_months.sql",
    ]

    with psycopg.connect(empty_db, autocommit=True) as db:
        assert db.execute(LEDGER).fetchone() == before
        # That ledger was written under a clock moved to March and November
        # (clock.set in its audit log): its pages read every month.
        assert db.execute("select crypto.ledger_dates_follow_ids()").fetchone() == (False,)
        # Every transfer, the refusal too, has its key, with its time.
        assert db.execute(
            "select count(*), count(*) filter (where k.idempotency_key = t.idempotency_key"
            " and k.created_at = t.created_at)"
            " from crypto.ledger_transfers as t"
            " left join crypto.ledger_transfer_keys as k on k.transfer_id = t.id"
        ).fetchone() == (4, 4)
        assert db.execute(
            "select array_agg(distinct tableoid::regclass::text order by tableoid::regclass::text)"
            " from crypto.ledger_transfers"
        ).fetchone() == (["crypto.ledger_transfers_p2026_03", "crypto.ledger_transfers_p2026_11"],)
        user = "(select id from crypto.users where email = 'a@example.com')"
        # A retry of the March key finds its transfer and moves nothing;
        # the refusal is remembered; a new transfer takes the next id.
        again: Any = db.execute(
            "select (t).id, (t).created_at < '2026-04-01' from (select crypto.ledger_transfer("
            f"'adjust:test:march', crypto.system_account('adjustments'), crypto.user_account({user}),"
            " 40, 'adjustment') as t) as x"
        ).fetchone()
        assert again[1] is True
        assert db.execute(
            "select (crypto.ledger_transfer('spend:test:1', crypto.user_account("
            "(select id from crypto.users where email = 'b@example.com')),"
            " crypto.system_account('redemptions'), 1000000, 'redemption')).refusal"
        ).fetchone() == ("OX201",)
        assert db.execute(LEDGER).fetchone() == before
        moved = db.execute(
            "select (crypto.adjust_points('a@example.com', 5, 'test', 'test:after') ->> 'transfer_id')::bigint"
        ).fetchone()
        # (a retry's claim spends an id too, as the transfers' own identity did)
        assert moved is not None and moved[0] > top[0]
        # The books balance, read whole (the first run after 0042), then
        # from the checkpoints on, after one more movement.
        assert db.execute("select count(*) from crypto.integrity_violations()").fetchone() == (0,)
        assert db.execute("select crypto.run_integrity_check()").fetchone() == (0,)
        db.execute("select crypto.adjust_points('b@example.com', 3, 'test', 'test:later')")
        assert db.execute("select crypto.run_integrity_check()").fetchone() == (0,)
        assert db.execute(
            "select array_agg(since = '-infinity' order by id), array_agg(accounts_advanced order by id)"
            " from crypto.ledger_verifications"
        ).fetchone() == ([True, False], [1, 1])  # a's checkpoint, then b's first entry
