"""Ledger months on cold storage (plpgsql/ledger_cold.sql): a month older
than retention.ledger_hot_days, once a restore drill has verified a backup
of it, moves whole into the tablespace oxp_cold and stays in the ledger."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import url_for
from pytest_postgresql.janitor import DatabaseJanitor

from support import new_user, service

MONTHS = ("ledger_entries_p2023_03", "ledger_transfers_p2023_03")
LEDGER = (
    "select t.id, t.idempotency_key, t.amount, t.created_at, t.tableoid::regclass::text,"
    " array_agg(e.* order by e.id)::text"
    " from crypto.ledger_transfers as t join crypto.ledger_entries as e on e.transfer_id = t.id"
    " group by t.id, t.idempotency_key, t.amount, t.created_at, t.tableoid order by t.id"
)


@pytest.fixture
def cold_db(cluster: dict[str, Any], template: str) -> Iterator[str]:
    """A database of its own in a cluster with the tablespace oxp_cold (a
    real folder, as the DBA makes it), both gone afterwards in that order."""
    folder = Path(tempfile.mkdtemp(prefix="oxp-cold."))
    if os.geteuid() == 0:  # the cluster runs as postgres (scripts/localpg.sh)
        shutil.chown(folder, "postgres", "postgres")
    admin = url_for(cluster, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create tablespace oxp_cold location '{folder}'")
        conn.execute("grant create on tablespace oxp_cold to oxp_owner")
    janitor = DatabaseJanitor(
        user="postgres",
        host=cluster["host"],
        port=cluster["port"],
        dbname=f"oxp_cold_{os.getpid()}",
        template_dbname=template,
    )
    janitor.init()
    try:
        yield url_for(cluster, janitor.dbname)
    finally:
        janitor.drop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("drop tablespace oxp_cold")
        shutil.rmtree(folder, ignore_errors=True)


def adjust(db: psycopg.Connection, key: str, amount: int) -> Any:
    """An operator's adjustment (oxp points adjust): a transfer the books explain."""
    return service(
        db, "select crypto.adjust_points('cold@example.com', %s, 'cold', %s)", amount, key
    )


def storage(db: psycopg.Connection) -> Any:
    """One run of the daily job, as pg_cron runs it (the service role)."""
    with db.transaction():
        db.execute("set local role oxp_service")
        row = db.execute("select crypto.ledger_cold_storage()").fetchone()
    assert row is not None
    return row[0]


def tablespaces(db: psycopg.Connection) -> dict[str, str]:
    """Each March month and its indexes: the tablespace they are in."""
    rows = db.execute(
        "select c.relname, coalesce(t.spcname, 'default') from pg_class as c"
        " left join pg_tablespace as t on t.oid = c.reltablespace"
        " where c.oid = any(array[%s, %s]::regclass[])"
        " or c.oid in (select indexrelid from pg_index where indrelid = any(array[%s, %s]::regclass[]))",
        [f"crypto.{m}" for m in MONTHS] * 2,
    ).fetchall()
    return {name: space for name, space in rows}


def backed_up(db: psycopg.Connection, backup_days_ago: int, drill_days_ago: int) -> None:
    """A successful full backup and restore drill, as the worker records them."""
    db.execute(
        "insert into crypto.job_runs (job, started_at, finished_at, status) values"
        " ('backup.full', now() - make_interval(days => %s), now() - make_interval(days => %s)"
        "  + interval '1 hour', 'succeeded'),"
        " ('backup.verify', now() - make_interval(days => %s), now() - make_interval(days => %s)"
        "  + interval '1 hour', 'succeeded')",
        (backup_days_ago, backup_days_ago, drill_days_ago, drill_days_ago),
    )


def test_an_old_month_moves_whole_to_cold_storage_after_a_verified_backup(cold_db: str) -> None:
    with psycopg.connect(cold_db, autocommit=True) as db:
        user = new_user(db, "cold@example.com")
        db.execute("select crypto.clock_set('2023-03-05 12:00Z')")
        for i in range(300):  # more rows than one page of the copy
            adjust(db, f"cold:{i}", 3)
        db.execute("select crypto.clock_reset()")
        adjust(db, "cold:now", -100)
        before = db.execute(LEDGER).fetchall()
        assert len(before) == 301

        # No verified backup of March yet: a drill before the backup that
        # holds the month proves nothing, nor a backup without a drill.
        backed_up(db, backup_days_ago=3, drill_days_ago=4)
        assert storage(db) == {"moved": None, "due": 0, "reason": "nothing due"}
        backed_up(db, backup_days_ago=2, drill_days_ago=1)

        # One month a run, oldest first: March and the four empty months
        # made ahead of the clock then, of both tables.
        runs = [storage(db)]
        while runs[-1]["moved"] is not None:
            runs.append(storage(db))
        assert runs[-1] == {"moved": None, "due": 0, "reason": "nothing due"}
        moved = [(r["moved"]["partition"], r["moved"]["rows"], r["due"]) for r in runs[:-1]]
        assert moved[:2] == [(MONTHS[0], 600, 9), (MONTHS[1], 300, 8)]
        assert [m[0] for m in moved[2:]] == [
            f"ledger_{table}_p2023_{month:02d}"
            for month in (4, 5, 6, 7)
            for table in ("entries", "transfers")
        ]
        assert all(m[1] == 0 for m in moved[2:])

        # Every relation of March is in oxp_cold; this month stays where it was.
        spaces = tablespaces(db)
        assert set(spaces) >= set(MONTHS) and len(spaces) == 6  # two months, four indexes
        assert set(spaces.values()) == {"oxp_cold"}
        assert db.execute(
            "select reltablespace from pg_class where relname = %s",
            ("ledger_transfers_p" + db.execute("select to_char(now(), 'YYYY_MM')").fetchone()[0],),  # type: ignore[index]
        ).fetchone() == (0,)

        # Still the ledger: the same rows in the same months, the books
        # balance, a retry of a March key is the same transfer, guarded.
        assert db.execute(LEDGER).fetchall() == before
        assert db.execute(
            "select pg_get_expr(relpartbound, oid) from pg_class where relname = %s", (MONTHS[1],)
        ).fetchone() == (
            "FOR VALUES FROM ('2023-03-01 00:00:00+00') TO ('2023-04-01 00:00:00+00')",
        )
        assert db.execute(
            "select coalesce(json_agg(v), '[]') from crypto.integrity_violations() as v"
        ).fetchone() == ([],)
        assert adjust(db, "cold:7", 3)["transfer_id"] == before[7][0]
        assert db.execute(LEDGER).fetchall() == before
        assert db.execute(
            "select balance from crypto.ledger_accounts where id = crypto.user_account(%s)", (user,)
        ).fetchone() == (800,)
        for sql in (
            f"update crypto.{MONTHS[1]} set amount = 4",
            f"delete from crypto.{MONTHS[0]}",
            f"truncate crypto.{MONTHS[0]}",
        ):
            with pytest.raises(psycopg.Error) as refused:
                db.execute(sql)
            assert refused.value.sqlstate == "OX003"
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            db.execute(
                f"insert into crypto.{MONTHS[0]} (id, transfer_id, account_id, amount, created_at)"
                " values (-1, 1, -5, 1, '2023-03-05 12:00Z')"
            )

        audited = db.execute(
            "select subject, (details->>'rows')::int from crypto.audit_logs where action = 'partition.cold'"
            " order by id"
        ).fetchall()
        assert audited == [(m[0], m[1]) for m in moved]


def test_a_month_waits_while_the_ledger_is_busy(cold_db: str) -> None:
    """The swap waits half the deadlock check's delay for the parents' lock,
    then gives up whole: the month is where it was, and no copy is left."""
    with psycopg.connect(cold_db, autocommit=True) as db:
        new_user(db, "cold@example.com")
        db.execute("select crypto.clock_set('2023-03-05 12:00Z')")
        adjust(db, "busy", 3)
        db.execute("select crypto.clock_reset()")
        backed_up(db, backup_days_ago=2, drill_days_ago=1)
        with psycopg.connect(cold_db) as reader:
            reader.execute("select count(*) from crypto.ledger_entries")  # holds every month
            with pytest.raises(psycopg.errors.LockNotAvailable):
                storage(db)
        assert set(tablespaces(db).values()) == {"default"}
        assert db.execute(
            "select count(*) from pg_class where relname like '%%\\_cold%%' and relnamespace = 'crypto'::regnamespace"
        ).fetchone() == (0,)
        assert storage(db)["moved"]["partition"] == MONTHS[0]


def test_no_tablespace_moves_nothing_and_who_may_not_move(db: psycopg.Connection) -> None:
    assert storage(db) == {"moved": None, "due": 0, "reason": "no tablespace oxp_cold"}
    for role in ("app_user", "app_admin", "auditor", "anon"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute(f"set local role {role}")
            db.execute("select crypto.ledger_cold_storage()")
    for role in ("oxp_service", "oxp_operator"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute(f"set local role {role}")
            db.execute("select crypto.ledger_cold_move('ledger_entries_p2023_03')")
