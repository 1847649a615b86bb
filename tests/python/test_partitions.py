"""sql/0034_partitions.sql, 0038_partition_predictions.sql and
0041_partition_ledger.sql convert a database that already has rows: the log
tables', the predictions' and the ledger's rows before are the rows after,
the audit chain still verifies, a correction's transfers still point at their
predictions, the books still balance, and the identities resume after the
largest id."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from pytest_postgresql.janitor import DatabaseJanitor

from ox_sidecar.config import ROOT
from ox_sidecar.migrate import migrate

# Every column of every row of the ledger, in id order: equal digests are
# equal rows (with the accounts' balances).
LEDGER_DIGEST = """
    (select count(*) from crypto.ledger_transfers),
    (select md5(string_agg(
        concat_ws('|', id, idempotency_key, debit_account_id, credit_account_id, amount, reason, memo,
            created_at, refusal), ',' order by id))
     from crypto.ledger_transfers),
    (select count(*) from crypto.ledger_entries),
    (select md5(string_agg(
        concat_ws('|', id, transfer_id, account_id, amount, balance_after, created_at), ',' order by id))
     from crypto.ledger_entries),
    (select md5(string_agg(concat_ws('|', id, balance), ',' order by id)) from crypto.ledger_accounts)
"""
# ... and of the log tables, the predictions and the corrections.
DIGEST = (
    """
select
    (select count(*) from crypto.audit_logs),
    (select md5(string_agg(
        concat_ws('|', id, at, actor, action, subject, details, prev_hash, hash, txid, seq), ',' order by id))
     from crypto.audit_logs),
    (select count(*) from crypto.eod_fetch_logs),
    (select md5(string_agg(
        concat_ws('|', id, trading_day, provider, started_at, finished_at, status, rows, error), ','
        order by id))
     from crypto.eod_fetch_logs),
    (select count(*) from crypto.rate_limits),
    (select sum(hits) from crypto.rate_limits),
    (select md5(string_agg(concat_ws('|', bucket, window_start, hits), ',' order by bucket, window_start))
     from crypto.rate_limits),
    (select count(*) from crypto.predictions),
    (select md5(string_agg(
        concat_ws('|', id, user_id, trading_day, symbol, choice, created_at), ',' order by id))
     from crypto.predictions),
    (select md5(string_agg(
        concat_ws('|', correction_id, prediction_id, target, amount, transfer_id, written_off), ','
        order by prediction_id, correction_id))
     from crypto.correction_transfers),
    (select md5(string_agg(concat_ws('|', transfer_id, idempotency_key, created_at), ',' order by transfer_id))
     from crypto.ledger_transfer_keys),
"""
    + LEDGER_DIGEST
)


def place_and_correct(db: psycopg.Connection[Any], corrections: bool = True) -> None:
    """Two days of predictions (March and November), the November one
    settled, an adjustment in March, and (unless told not to: they are
    written as the schema before 0038 wrote them) a correction's rows for
    two of them. With the pgTAP helpers (tests/sql/helpers)."""
    db.execute((ROOT / "tests" / "sql" / "helpers" / "setup.sql").read_text())
    db.execute("select tests.load_calendar()")
    a = db.execute("select tests.create_user('a@example.com')").fetchone()[0]
    b = db.execute("select tests.create_user('b@example.com')").fetchone()[0]
    days = {
        "2026-03-05": [(a, "AAPL", "UP")],
        "2026-11-24": [(a, "AAPL", "UP"), (a, "MSFT", "DOWN"), (b, "AAPL", "DOWN")],
    }
    for day, picks in days.items():
        db.execute("select tests.open_session(%s)", (day,))
        db.execute("select crypto.set_universe(%s, array['AAPL', 'MSFT'])", (day,))
        # Written as place_prediction writes them (today's would count its
        # rate in the sharded buckets of 0036, which this schema lacks).
        for user, symbol, choice in picks:
            db.execute(
                "insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)"
                " values (%s, %s, %s, %s, crypto.now())",
                (user, day, symbol, choice),
            )
        db.execute("select crypto.clock_set((%s::date + time '22:00') at time zone 'UTC')", (day,))
        db.execute("select crypto.close_session(%s)", (day,))
    db.execute(
        "select crypto.load_eod_prices(%s, 'test')",
        (
            '[{"trading_day": "2026-11-23", "symbol": "AAPL", "close": 100},'
            ' {"trading_day": "2026-11-23", "symbol": "MSFT", "close": 100},'
            ' {"trading_day": "2026-11-24", "symbol": "AAPL", "close": 101},'
            ' {"trading_day": "2026-11-24", "symbol": "MSFT", "close": 99}]',
        ),
    )
    db.execute("select crypto.settle_session('2026-11-24')")
    # The ledger in two months: an adjustment in March beside November's awards.
    db.execute("select crypto.clock_set('2026-03-05 12:00Z')")
    db.execute(
        "select crypto.ledger_transfer('adjust:test:march', crypto.system_account('adjustments'),"
        " crypto.user_account(%s), 40, 'adjustment')",
        (a,),
    )
    if corrections:
        # Rows as the correct_settlement of before 0038 wrote them (today's
        # writes the column 0038 adds): two predictions' targets, nothing moved.
        db.execute(
            "insert into crypto.settlement_corrections (trading_day, reason, actor, created_at)"
            " values ('2026-11-24', 'test', 'test', crypto.now())"
        )
        db.execute(
            "insert into crypto.correction_transfers"
            " (correction_id, prediction_id, target, amount, transfer_id, written_off)"
            " select (select max(c.id) from crypto.settlement_corrections as c), p.id, 0, 0, null, 0"
            " from crypto.predictions as p where p.trading_day = '2026-11-24' and p.symbol = 'AAPL'"
        )
    db.execute("select crypto.clock_reset()")


@pytest.fixture
def empty_db(cluster: dict[str, Any]) -> Iterator[str]:
    name = f"oxp_partitions_{os.getpid()}"
    janitor = DatabaseJanitor(
        user="postgres", host=cluster["host"], port=cluster["port"], dbname=name
    )
    janitor.drop()
    janitor.init()
    try:
        yield make_conninfo(
            host=cluster["host"], port=cluster["port"], user="postgres", dbname=name
        )
    finally:
        janitor.drop()


# The versioned files migrate_before_0034 leaves out, in order.
PARTITIONED_SINCE = [
    "0034_partitions.sql",
    "0036_rate_limit_shards.sql",
    "0037_prediction_rate_in_the_call.sql",
    "0038_partition_predictions.sql",
    "0041_partition_ledger.sql",
    "0044_ledger_key_checks.sql",
]


def migrate_before_0034(url: str, tmp_path: Path) -> None:
    """The schema as it was before 0034: every other file of today but 0036,
    which alters a table 0034 partitions, 0037, which comments on it, 0038,
    which partitions predictions, 0041, which partitions the ledger, and
    0044, which drops two of its foreign keys.
    Today's repeatable files need 0035, 0039 (its type crypto.rate_window is
    in their signatures) and 0040 (the transfer keys), so those are applied
    before 0034 here, out of their order."""
    for folder in ("plpgsql", "pg_cron"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "sql").mkdir()
    for path in (ROOT / "sql").glob("*.sql"):
        if path.name not in PARTITIONED_SINCE:
            shutil.copy(path, tmp_path / "sql" / path.name)
    migrate(url, "development", root=tmp_path)


def test_partitioning_keeps_every_row(empty_db: str, tmp_path: Path) -> None:
    migrate_before_0034(empty_db, tmp_path)
    with psycopg.connect(empty_db, autocommit=True) as db:
        assert db.execute(
            "select relkind from pg_class where oid = 'crypto.audit_logs'::regclass"
        ).fetchone() == ("r",)
        # Rows over three months, and two months back (older than any partition
        # a fresh database would make): the migration starts at the oldest.
        for at in ("2026-08-14 03:00+00", "2026-10-01 00:00+00", "2026-11-20 12:00+00"):
            db.execute("select crypto.clock_set(%s)", (at,))
            for n in range(3):
                db.execute(
                    "select crypto.audit('test', 'test.row', %s, jsonb_build_object('n', %s))",
                    (at, n),
                )
            db.execute(
                "insert into crypto.eod_fetch_logs"
                " (trading_day, provider, started_at, finished_at, status, rows)"
                " values (crypto.now()::date, 'test', crypto.now(), crypto.now(), 'succeeded', 10)"
            )
            db.execute(
                "insert into crypto.rate_limits (bucket, window_start, hits)"
                " values ('ip:1', date_trunc('minute', crypto.now()), 7)"
            )
        db.execute("select crypto.clock_reset()")
        place_and_correct(db)
        # Two left unsealed: the sealer links them after the migration.
        assert db.execute("select crypto.audit_seal()").fetchone()[0] >= 9
        db.execute("select crypto.audit('test', 'test.late', 'x', '{}')")
        db.execute("select crypto.audit('test', 'test.late', 'y', '{}')")
        before = db.execute(DIGEST).fetchone()
        max_id = db.execute("select max(id) from crypto.audit_logs").fetchone()[0]
        max_prediction = db.execute("select max(id) from crypto.predictions").fetchone()[0]
        max_entry = db.execute("select max(id) from crypto.ledger_entries").fetchone()[0]
        before_max_transfer = db.execute("select max(id) from crypto.ledger_transfers").fetchone()[
            0
        ]
        assert before[7] == 4 and before[9] is not None  # predictions, corrections
        assert before[11] == 3 and before[13] == 6  # an adjustment and two awards, their entries

    report = migrate(empty_db, "development")
    assert report.applied == PARTITIONED_SINCE

    with psycopg.connect(empty_db, autocommit=True) as db:
        assert db.execute(DIGEST).fetchone() == before
        assert db.execute(
            "select relkind from pg_class where oid = 'crypto.audit_logs'::regclass"
        ).fetchone() == ("p",)
        # The rows sit in their months' partitions, none in the default one.
        placed = db.execute(
            "select tableoid::regclass::text, count(*) from crypto.audit_logs"
            " where action = 'test.row' group by 1 order by 1"
        ).fetchall()
        assert placed == [
            ("crypto.audit_logs_p2026_08", 3),
            ("crypto.audit_logs_p2026_10", 3),
            ("crypto.audit_logs_p2026_11", 3),
        ]
        assert db.execute("select count(*) from crypto.eod_fetch_logs_default").fetchone() == (0,)
        # Rate-limit windows older than yesterday (only two hours are read)
        # wait in the default partition for rate_limit_cleanup.
        assert db.execute("select count(*) from crypto.rate_limits_default").fetchone() == (3,)
        # The chain: the pending rows seal onto it, and it verifies whole.
        assert db.execute("select crypto.audit_seal()").fetchone()[0] >= 2
        verify = db.execute("select crypto.audit_verify()").fetchone()[0]
        assert verify["ok"] is True and verify["pending"] == 0
        assert verify["rows_checked"] == before[0]
        new_id = db.execute("select crypto.audit('test', 'test.after', null, '{}')").fetchone()[0]
        assert new_id == max_id + 1
        # Predictions sit in their months; each correction transfer carries
        # its prediction's day (its foreign key); the identity resumes.
        assert db.execute(
            "select tableoid::regclass::text, count(*) from crypto.predictions group by 1 order by 1"
        ).fetchall() == [("crypto.predictions_p2026_03", 1), ("crypto.predictions_p2026_11", 3)]
        assert db.execute(
            "select count(*), count(*) filter (where c.trading_day = p.trading_day)"
            " from crypto.correction_transfers as c join crypto.predictions as p on p.id = c.prediction_id"
        ).fetchone() == (2, 2)
        assert db.execute(
            "select nextval(pg_get_serial_sequence('crypto.predictions', 'id'))"
        ).fetchone() == (max_prediction + 1,)
        # The ledger's rows sit in their months, entries beside their
        # transfers; the entries' identity resumes and the books balance.
        assert db.execute(
            "select tableoid::regclass::text, count(*) from crypto.ledger_transfers group by 1 order by 1"
        ).fetchall() == [
            ("crypto.ledger_transfers_p2026_03", 1),
            ("crypto.ledger_transfers_p2026_11", 2),
        ]
        assert db.execute(
            "select tableoid::regclass::text, count(*) from crypto.ledger_entries group by 1 order by 1"
        ).fetchall() == [
            ("crypto.ledger_entries_p2026_03", 2),
            ("crypto.ledger_entries_p2026_11", 4),
        ]
        assert db.execute(
            "select nextval(pg_get_serial_sequence('crypto.ledger_entries', 'id'))"
        ).fetchone() == (max_entry + 1,)
        # 0041 dropped the functions typed by the old table; the repeatable
        # pass made them again: points move, and a retry of a March key
        # finds its transfer.
        user = "(select id from crypto.users where email = 'a@example.com')"
        moved = db.execute(
            "select (crypto.ledger_transfer('adjust:test:after', crypto.system_account('adjustments'),"
            f" crypto.user_account({user}), 5, 'adjustment')).id"
        ).fetchone()[0]
        assert moved > before_max_transfer
        assert db.execute(
            "select (crypto.ledger_transfer('adjust:test:march', crypto.system_account('adjustments'),"
            f" crypto.user_account({user}), 40, 'adjustment')).created_at < '2026-04-01'"
        ).fetchone() == (True,)
        assert db.execute(
            "select count(*) from crypto.integrity_violations() where check_name in"
            " ('transfer_entries', 'transfer_key', 'ledger_sum', 'balance_mismatch', 'balance_chain')"
        ).fetchone() == (0,)
        # A second migrate changes nothing.
        assert migrate(empty_db, "development").applied == []
        # (the audit rows of test.after and of the one new transfer)
        assert db.execute(DIGEST).fetchone()[0] == before[0] + 2


def test_guards_hold_inside_0034(empty_db: str, tmp_path: Path) -> None:
    # The migration's own transaction, before any repeatable file runs again:
    # the audit log is append-only, its partitions refuse TRUNCATE by name,
    # and every partition is oxp_owner's with row security on.
    migrate_before_0034(empty_db, tmp_path)
    with psycopg.connect(empty_db, autocommit=True) as db:
        db.execute("select crypto.audit('test', 'test.row', 'x', '{}')")
        with db.transaction():
            db.execute((ROOT / "sql" / "0034_partitions.sql").read_text())
            loose = db.execute(
                "select i.inhrelid::regclass::text from pg_inherits as i"
                " join pg_class as c on c.oid = i.inhrelid"
                " where i.inhparent in ('crypto.audit_logs'::regclass,"
                " 'crypto.eod_fetch_logs'::regclass, 'crypto.rate_limits'::regclass)"
                " and (c.relowner <> 'oxp_owner'::regrole or not c.relrowsecurity)"
            ).fetchall()
            assert loose == []
            part = db.execute(
                "select tableoid::regclass::text from crypto.audit_logs where action = 'test.row'"
            ).fetchone()[0]
            for sql in (
                "update crypto.audit_logs set actor = 'forged'",
                "delete from crypto.audit_logs",
                "truncate crypto.audit_logs",
                f"truncate {part}",
                "truncate crypto.audit_logs_default",
            ):
                with pytest.raises(psycopg.DatabaseError) as refused, db.transaction():
                    db.execute(sql)
                assert refused.value.diag.sqlstate == "OX003"
            raise psycopg.Rollback()


def test_a_held_lock_skips_the_hour_without_alert(empty_db: str) -> None:
    # Maintenance waits at most 100 ms for a lock (every request writes
    # rate_limits): a reader holding the default partition makes it give up
    # on that table for the hour, with no alert while the next day exists.
    migrate(empty_db, "development")
    with (
        psycopg.connect(empty_db, autocommit=True) as db,
        psycopg.connect(empty_db, autocommit=True) as reader,
    ):
        day4 = db.execute(
            "select 'crypto.rate_limits_p' || to_char(now() at time zone 'UTC' + interval '4 days',"
            " 'YYYY_MM_DD')"
        ).fetchone()[0]
        db.execute(f"drop table {day4}")
        with reader.transaction():
            reader.execute("lock table crypto.rate_limits_default in access share mode")
            db.execute("set role oxp_service")
            started = db.execute("select clock_timestamp()").fetchone()[0]
            report = db.execute("select crypto.partition_maintenance()").fetchone()[0]
            took = db.execute("select clock_timestamp() - %s", (started,)).fetchone()[0]
            db.execute("reset role")
            assert [(e["table"], e["code"]) for e in report["errors"]] == [
                ("crypto.rate_limits", "55P03")
            ]
            assert took.total_seconds() < 1.5
            assert db.execute(
                "select count(*) from crypto.alerts"
                " where rule = 'partition_maintenance_failing' and resolved_at is null"
            ).fetchone() == (0,)
            assert db.execute("select to_regclass(%s)", (day4,)).fetchone() == (None,)
        report = db.execute("select crypto.partition_maintenance()").fetchone()[0]
        assert report["errors"] == []
        assert db.execute("select to_regclass(%s)::text", (day4,)).fetchone() == (day4,)
