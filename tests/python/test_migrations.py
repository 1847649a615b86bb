"""Versioned files apply once with a checksum; repeatable ones re-apply; all idempotent."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ox_sidecar.config import ROOT
from ox_sidecar.migrate import (
    ATOMIC,
    CLUSTER_LOCK_KEY,
    MigrationError,
    migrate,
    pending,
    reset,
)
from support import act_as, new_user, service

# Listed here, not with the migrator's glob: every versioned file is
# NNNN_<name>.sql (a misnamed file fails here, not silently out of order).
VERSIONED_FILES = sorted(p.name for p in (ROOT / "sql").iterdir() if p.suffix == ".sql")
assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.sql", name) for name in VERSIONED_FILES)

CATALOG = """
select
    (select string_agg(p.oid::regprocedure::text || md5(p.prosrc) || coalesce(p.proacl::text, ''), ','
                       order by p.oid::regprocedure::text)
     from pg_proc as p where p.pronamespace in ('crypto'::regnamespace, 'api'::regnamespace)),
    (select string_agg(c.relname || coalesce(c.relacl::text, ''), ',' order by c.relname)
     from pg_class as c where c.relnamespace = 'crypto'::regnamespace),
    (select string_agg(key || value::text, ',' order by key) from crypto.settings),
    (select count(*) from crypto.ledger_accounts)
"""


def test_migrate_twice_changes_nothing(db: psycopg.Connection, db_url: str) -> None:
    before = db.execute(CATALOG).fetchone()
    report = migrate(db_url, "development")
    assert report.applied == []
    assert "plpgsql/submit_prediction.sql" in report.repeatable
    assert db.execute(CATALOG).fetchone() == before
    assert pending(db) == []


def test_an_edited_applied_file_is_an_error(db_url: str, tmp_path: Path) -> None:
    for folder in ("sql", "plpgsql", "pg_cron"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    migrate(db_url, "development", root=tmp_path)
    seed = tmp_path / "sql" / "0004_seed.sql"
    seed.write_text(seed.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=r"0004_seed\.sql was edited"):
        migrate(db_url, "development", root=tmp_path)


def test_a_new_versioned_file_is_applied_once(
    db: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    for folder in ("sql", "plpgsql", "pg_cron"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "sql" / "9999_extra.sql").write_text(
        "create table crypto.extra (id integer primary key);\n"
    )
    assert migrate(db_url, "development", root=tmp_path).applied == ["9999_extra.sql"]
    assert migrate(db_url, "development", root=tmp_path).applied == []
    assert db.execute("select to_regclass('crypto.extra') is not null").fetchone() == (True,)


def test_an_atomic_file_commits_with_the_repeatable_pass_or_not_at_all(
    db: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    # 9998 commits on its own; 9999 (ATOMIC) only with the repeatable pass,
    # so a pass that fails leaves 9999 unapplied and its change undone, and
    # the next migrate applies both.
    for folder in ("sql", "plpgsql", "pg_cron"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "sql" / "9998_plain.sql").write_text("create table crypto.plain (id integer);\n")
    (tmp_path / "sql" / "9999_atomic.sql").write_text(
        f"{ATOMIC}\ndrop function crypto.award_key_day(text);\n"
    )
    broken = tmp_path / "pg_cron" / "zzz_broken.sql"
    broken.write_text("select 1 / 0;\n")
    with pytest.raises(psycopg.errors.DivisionByZero):
        migrate(db_url, "development", root=tmp_path)
    assert db.execute(
        "select to_regclass('crypto.plain') is not null,"
        " to_regprocedure('crypto.award_key_day(text)') is not null,"
        " exists (select from migrations.applied where version = '9999_atomic.sql')"
    ).fetchone() == (True, True, False)
    broken.unlink()
    assert migrate(db_url, "development", root=tmp_path).applied == ["9999_atomic.sql"]
    # The pass that ran with it made the function again in the same commit.
    assert db.execute(
        "select to_regprocedure('crypto.award_key_day(text)') is not null"
    ).fetchone() == (True,)


def test_reset_rebuilds_and_refuses_production(db: psycopg.Connection, db_url: str) -> None:
    db.execute(
        "insert into crypto.rewards_inventory (sku, name, cost_points, stock) values ('s', 'S', 1, 1)"
    )
    reset(db_url, "development")
    assert db.execute("select count(*) from crypto.rewards_inventory").fetchone() == (0,)
    # A new ledger's dates follow its ids, so a ledger page may read the
    # last month alone (crypto.ledger_page).
    assert db.execute("select crypto.ledger_dates_follow_ids()").fetchone() == (True,)
    with pytest.raises(MigrationError, match="production"):
        reset(db_url, "production")
    migrate(db_url, "production")
    with pytest.raises(MigrationError, match="production"):
        reset(db_url, "development")
    applied = db.execute("select version from migrations.applied order by version").fetchall()
    assert [v for (v,) in applied] == VERSIONED_FILES


def test_the_clock_refuses_to_move_in_production(db: psycopg.Connection, db_url: str) -> None:
    migrate(db_url, "production")
    db.execute("set role oxp_operator")
    with pytest.raises(psycopg.Error) as info:
        db.execute("select crypto.clock_set(now() + interval '1 day')")
    assert info.value.sqlstate == "OX008"


def backfill_of_0033() -> str:
    """The statement of sql/0033_vendor_sent_mark.sql that marks the rows from before the mark."""
    text = (ROOT / "sql" / "0033_vendor_sent_mark.sql").read_text()
    found = re.search(r"^update crypto\.rewards_redemptions as r\n.*?;$", text, re.S | re.M)
    assert found, "0033 marks the redemptions from before the mark"
    return found.group(0)


def test_0033_marks_every_call_from_before_the_mark(db: psycopg.Connection, db_url: str) -> None:
    """A database with redemptions from before 0033: an UNKNOWN one, and a
    REQUESTED one whose vendor call was tried or is running, may have a
    voucher at the vendor. 0033 marks them (no cancel refunds them); a
    REQUESTED one never tried, and a final one, stay unmarked."""
    uid = new_user(db, "before@example.com")
    service(db, "select crypto.adjust_points('before@example.com', 1000, 'start', 'start:before')")
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 100, 9)")
    ids: dict[str, int] = {}
    with psycopg.connect(db_url) as conn:
        for name in ("unknown", "tried", "running", "fresh", "issued"):
            act_as(conn, uid)
            answer = conn.execute("select api.redeem_reward('MUG', %s)", (name,)).fetchone()
            conn.commit()
            ids[name] = int(answer[0]["id"])  # type: ignore[index]

    def job(name: str) -> str:
        return f"reward.issue:{ids[name]}"

    db.execute("select crypto.redemption_unknown(%s, 'ReadTimeout')", (ids["unknown"],))
    db.execute("update crypto.jobs set attempts = 1 where dedupe_key = %s", (job("tried"),))
    db.execute(
        "update crypto.jobs set status = 'running', attempts = 1, locked_at = crypto.now()"
        " where dedupe_key = %s",
        (job("running"),),
    )
    db.execute("select crypto.redemption_issued(%s, 'VND-BEFORE-0123456789')", (ids["issued"],))
    db.execute(
        "update crypto.jobs set status = 'done', attempts = 1 where dedupe_key = %s",
        (job("issued"),),
    )
    # As 0033's new columns find them.
    db.execute(
        "update crypto.rewards_redemptions set sent_at = null, sent_call = null, vendor_calls = 0"
    )

    db.execute(backfill_of_0033())
    rows = dict(
        db.execute(
            "select id, (sent_at = updated_at, sent_call, vendor_calls)::text"
            " from crypto.rewards_redemptions"
        ).fetchall()
    )
    marked = "(t,1,1)"
    assert {name: rows[rid] for name, rid in ids.items()} == {
        "unknown": marked,
        "tried": marked,
        "running": marked,
        "fresh": "(,,0)",
        "issued": "(,,0)",
    }
    with pytest.raises(psycopg.Error) as refused:
        service(db, "select crypto.cancel_redemption(%s, 'before')", ids["tried"])
    assert refused.value.sqlstate == "OX150", "a tried call may have made a voucher: no refund"
    cancelled = service(db, "select crypto.cancel_redemption(%s, 'before')", ids["fresh"])
    assert cancelled["status"] == "CANCELLED", "one never tried is cancelled as before"


def test_one_migration_at_a_time_in_a_cluster(db_url: str) -> None:
    """Roles are the cluster's: a migration of another database waits for
    the one running (its lock is in the postgres database), and goes on
    when it ends. Two at once failed one time in four ("tuple concurrently
    updated" on the roles they both alter)."""
    others = make_conninfo(db_url, dbname="postgres")
    # Its sessions' name, kept on the postgres connection: the waiter found
    # below is this migration, not another test's.
    name = f"lock-test-{os.getpid()}-{time.monotonic_ns()}"
    with psycopg.connect(others, autocommit=True) as running:
        running.execute("select pg_advisory_lock(%s)", (CLUSTER_LOCK_KEY,))
        done = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            try:
                migrate(make_conninfo(db_url, application_name=name), "development")
            except BaseException as exc:  # reported below
                failed.append(exc)
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 30
        while not running.execute(
            "select exists (select from pg_locks as l join pg_stat_activity as a on a.pid = l.pid"
            " where a.datname = 'postgres' and a.application_name = %s"
            " and l.locktype = 'advisory' and not l.granted and l.objid = %s)",
            (name, CLUSTER_LOCK_KEY),
        ).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the migration never asked for the cluster's lock"
            time.sleep(0.05)
        # Nothing of it has run: its own database's lock is not taken yet.
        assert not done.is_set()
        assert running.execute(
            "select count(*) from pg_stat_activity where application_name = %s", (name,)
        ).fetchone() == (1,)
        running.execute("select pg_advisory_unlock(%s)", (CLUSTER_LOCK_KEY,))
        assert done.wait(60), "it never went on"
        thread.join()
    assert failed == []
