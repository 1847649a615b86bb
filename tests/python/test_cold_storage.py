"""Cold storage of the ledger's old months (plpgsql/cold_storage.sql): a
month is frozen and digested, leaves the main disk only once a real restore
drill found exactly its rows, and is swapped in from the tablespace oxp_cold
while players' transfers go on. On a cluster of this module's own, with
pgBackRest (the fixture of test_backups)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import make_conninfo
from test_backups import backed_up, books_clean, oxp

from ox_sidecar import backups, replica
from ox_sidecar import cold as cold_storage
from ox_sidecar.config import clear_settings, get_worker_settings
from ox_sidecar.worker import run_once
from support import free_port, new_user

__all__ = ["backed_up"]

PLAYERS = [f"cold{i}@example.com" for i in range(3)]
MARCH = "created_at >= '2026-03-01' and created_at < '2026-04-01'"


def month_books(url: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"select (select count(*) from crypto.ledger_transfers where {MARCH}),"
            f" (select count(*) from crypto.ledger_entries where {MARCH}),"
            f" (select sum(amount) from crypto.ledger_entries where {MARCH} and amount > 0),"
            f" (select sum(amount) from crypto.ledger_transfers where {MARCH})"
        ).fetchone()
    assert row is not None
    return tuple(row)


def tablespace_of(url: str, partition: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select t.spcname from pg_class as c"
            " left join pg_tablespace as t on t.oid = c.reltablespace where c.relname = %s",
            (partition,),
        ).fetchone()
    assert row is not None
    return row[0]


def worker_runs(url: str, kind: str, enqueue: str) -> None:
    """pg_cron's enqueue, then the worker's run of that job."""
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(f"select {enqueue}").fetchone() != (None,)
        conn.execute("set role oxp_service")
        assert run_once(conn, [kind])
        conn.execute("reset role")
        state = conn.execute(
            "select status::text, last_error from crypto.jobs where kind = %s"
            " order by id desc limit 1",
            (kind,),
        ).fetchone()
        assert state == ("done", None), state


def files_of(folder: Path) -> dict[str, tuple[int, bool]]:
    """Each file's inode, and whether it is a folder: a folder emptied and
    made again has a new one."""
    return {str(p): (p.stat().st_ino, p.is_dir()) for p in folder.rglob("*")}


def kept(before: dict[str, tuple[int, bool]], after: dict[str, tuple[int, bool]]) -> bool:
    """Every folder is the same one, and so is every file still there (a
    checkpoint removes the files of tables dropped since the last one)."""
    return any(d for _, d in before.values()) and all(
        after.get(name) == (inode, folder)
        for name, (inode, folder) in before.items()
        if folder or name in after
    )


def test_a_month_moves_to_cold_storage_once_a_drill_holds_it(
    backed_up: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = backed_up["url"]
    cold = backed_up["data"].parent / "cold"
    cold.mkdir()
    if os.geteuid() == 0:
        owner = get_worker_settings().pg_os_user
        shutil.chown(cold, owner, owner)
    with psycopg.connect(url, autocommit=True) as conn:
        for email in PLAYERS:
            if (
                conn.execute("select from crypto.users where email = %s", (email,)).fetchone()
                is None
            ):
                new_user(conn, email)
        # March 2026: 300 adjustments, audited as an operator's.
        conn.execute("select crypto.clock_set('2026-03-05 12:00Z')")
        conn.execute("set role oxp_operator")
        conn.execute(
            "select crypto.adjust_points((%s::text[])[1 + g %% 3], g, 'cold', 'cold:' || g)"
            " from generate_series(1, 300) as g",
            (PLAYERS,),
        )
        conn.execute("reset role")
        conn.execute("select crypto.clock_reset()")
        conn.execute("select crypto.setting_set('retention.ledger_hot_months', '1')")
        # Without oxp_cold nothing is due, and the job is not even enqueued.
        assert conn.execute("select count(*) from crypto.cold_months_due()").fetchone() == (0,)
        assert conn.execute("select crypto.enqueue_cold_storage()").fetchone() == (None,)
    march = month_books(url)
    assert march[0] == 300 and march[1] == 600

    # Only a superuser makes a tablespace: an operator's login may not.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create role tests_cold_op login in role oxp_operator")
    monkeypatch.setenv("DATABASE_URL", make_conninfo(url, user="tests_cold_op"))
    clear_settings()
    forbidden = oxp("db", "cold-storage", "init", str(cold))
    assert forbidden["exit"] == 1 and forbidden["error"]["code"] == "FORBIDDEN", forbidden
    monkeypatch.setenv("DATABASE_URL", url)
    clear_settings()

    # The backup the drill would restore is older than oxp_cold.
    assert oxp("db", "backup", "--type", "full")["exit"] == 0
    # A local replica, even stopped, would replay CREATE TABLESPACE at the
    # primary's path: refused until it is gone.
    standby = backed_up["data"].parent / "replica"
    monkeypatch.setenv("REPLICA_DIR", str(standby))
    clear_settings()
    replica.init(get_worker_settings(), standby, free_port())
    replica.stop(get_worker_settings(), standby)
    refused = oxp("db", "cold-storage", "init", str(cold))
    assert refused["exit"] == 1 and refused["error"]["code"] == "REPLICA_EXISTS", refused
    # Made in a folder of its own (--dir) it is seen all the same, by its slot.
    shutil.rmtree(standby)
    assert oxp("db", "cold-storage", "init", str(cold))["error"]["code"] == "REPLICA_EXISTS"
    assert "oxp_cold" not in {
        name for (name,) in psycopg.connect(url).execute("select spcname from pg_tablespace")
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_drop_replication_slot(%s)", (replica.marker_slot(standby),))
    made = oxp("db", "cold-storage", "init", str(cold))
    assert made["exit"] == 0, made
    again = oxp("db", "cold-storage", "init", str(cold))  # the same place: nothing to do
    assert again["exit"] == 0, again
    elsewhere = oxp("db", "cold-storage", "init", str(cold.parent))
    assert elsewhere["exit"] == 1 and elsewhere["error"]["code"] == "CONFLICT", elsewhere
    live = files_of(cold)
    assert live, "oxp_cold made its folder"
    with pytest.raises(backups.BackupError, match="older than the tablespace"):
        backups.verify(get_worker_settings())
    assert kept(live, files_of(cold))

    # Freeze and digest, while a reader holds both ledgers open (the
    # freeze does not wait for it); then the month waits for a drill.
    with psycopg.connect(url) as reader:
        reader.execute("select count(*) from crypto.ledger_entries")
        reader.execute("select count(*) from crypto.ledger_transfers")
        worker_runs(url, "partition.cold", "crypto.enqueue_cold_storage()")
    with psycopg.connect(url, autocommit=True) as conn:
        months = conn.execute(
            "select partition, rows, backed_up_at from crypto.cold_months"
            " where partition like '%p2026_03' order by 1"
        ).fetchall()
        assert months == [
            ("ledger_entries_p2026_03", 600, None),
            ("ledger_transfers_p2026_03", 300, None),
        ]
        assert {s for (s,) in conn.execute("select step from crypto.cold_months_due()")} == {"wait"}
        # No row may join a frozen month, even with the clock moved back.
        conn.execute("select crypto.clock_set('2026-03-06 12:00Z')")
        conn.execute("set role oxp_operator")
        with pytest.raises(errors.CheckViolation):
            conn.execute("select crypto.adjust_points(%s, 5, 'late', 'cold:late')", (PLAYERS[0],))
        conn.execute("reset role")
        conn.execute("select crypto.clock_reset()")
    assert tablespace_of(url, "ledger_entries_p2026_03") is None

    # A full backup and the drill: it finds the frozen months whole.
    assert oxp("db", "backup", "--type", "full")["exit"] == 0
    worker_runs(url, "backup.verify", "crypto.enqueue_backup('verify')")
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "select count(*) from crypto.cold_months where backed_up_at is null"
        ).fetchone() == (0,)

    # The entries' month by hand up to its copy, which is then changed
    # behind the guards (as only a superuser could): the check before the
    # swap finds it, discards it and makes it again from the original.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into crypto.jobs (kind, status, attempts, run_after, locked_at, claimed_pid,"
            " created_at) values ('partition.cold', 'running', 1, now(), now(), pg_backend_pid(),"
            " now()) returning id"
        )
        steps = [cold_storage.advance_one(conn, "ledger_entries_p2026_03") for _ in range(1)]
        assert steps == ["copied"], steps
        conn.execute("set session_replication_role = replica")
        conn.execute(
            "delete from crypto.ledger_entries_p2026_03_cold"
            " where id = (select min(id) from crypto.ledger_entries_p2026_03_cold)"
        )
        conn.execute("set session_replication_role = origin")
        steps = [cold_storage.advance_one(conn, "ledger_entries_p2026_03") for _ in range(3)]
        assert steps == ["keyed", "discarded", "copied"], steps
        # A transfer in flight holds ledger_accounts for 1.5 s: the keys'
        # step gives way (it waits half a second at most) and is taken again.
        with psycopg.connect(url) as holder:
            holder.execute("lock table crypto.ledger_accounts in row exclusive mode")
            release = threading.Timer(1.5, holder.rollback)
            release.start()
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="ox_sidecar.cold"):
                started = time.monotonic()
                assert cold_storage.advance_one(conn, "ledger_entries_p2026_03") == "keyed"
            release.join()
        assert time.monotonic() - started >= 1.4
        assert (
            len([r for r in caplog.records if r.getMessage() == "cold storage step gave way"]) >= 2
        )
        conn.execute(
            "update crypto.jobs set status = 'done', finished_at = now()"
            " where kind = 'partition.cold' and claimed_pid = pg_backend_pid()"
        )

    # The move, while players' transfers go on in the current month.
    stop = threading.Event()
    done: list[str] = []
    failed: list[BaseException] = []

    def player() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("set role oxp_operator")
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    conn.execute(
                        "select crypto.adjust_points(%s, 1, 'during', %s)",
                        (PLAYERS[n % 3], f"cold:during:{n}"),
                    )
                    done.append(f"cold:during:{n}")
                except BaseException as exc:
                    failed.append(exc)
                    return

    writer = threading.Thread(target=player)
    writer.start()
    try:
        # Again today: past the daily job's dedupe key.
        worker_runs(url, "partition.cold", "crypto.enqueue_job('partition.cold', '{}')")
    finally:
        stop.set()
        writer.join()
    assert failed == [] and len(done) > 10, (failed, len(done))
    assert tablespace_of(url, "ledger_entries_p2026_03") == "oxp_cold"
    assert tablespace_of(url, "ledger_transfers_p2026_03") == "oxp_cold"
    assert month_books(url) == march
    with psycopg.connect(url) as conn:
        for month in ("ledger_entries_p2026_03", "ledger_transfers_p2026_03"):
            guards = conn.execute(
                "select c.relrowsecurity, c.relowner::regrole::text,"
                " array(select t.tgname::text from pg_trigger as t"
                "  where t.tgrelid = c.oid and not t.tgisinternal order by 1),"
                " array(select coalesce(s.spcname, '-') from pg_index as x"
                "  join pg_class as i on i.oid = x.indexrelid"
                "  left join pg_tablespace as s on s.oid = i.reltablespace where x.indrelid = c.oid)"
                " from pg_class as c where c.relname = %s",
                (month,),
            ).fetchone()
            parent = month.rsplit("_p", 1)[0]
            assert guards == (
                True,
                "oxp_owner",
                sorted(["cold_frozen", f"{parent}_append_only", "no_truncate"]),
                ["oxp_cold"] * len(guards[3]),  # type: ignore[index]
            ), guards
        assert conn.execute(
            "select count(*) from crypto.ledger_transfers where idempotency_key like 'adjust:cold:during:%'"
        ).fetchone() == (len(done),)
        assert conn.execute(
            "select count(*) from crypto.cold_months where moved_at is null"
        ).fetchone() == (0,)
        assert conn.execute(
            "select count(*) from crypto.audit_logs where action = 'partition.cold'"
        ).fetchone() == (conn.execute("select count(*) from crypto.cold_months").fetchone()[0],)  # type: ignore[index]
        # A retry of a March key finds its transfer in cold storage.
        assert conn.execute(
            "select (crypto.ledger_transfer_by_key('adjust:cold:7')).amount"
        ).fetchone() == (7,)
    books_clean(url)
    status = oxp("db", "cold-storage", "status")
    assert status["due"] == [] and {m["partition"] for m in status["months"]} >= {
        "ledger_entries_p2026_03",
        "ledger_transfers_p2026_03",
    }, status
    assert all(m["moved_at"] and m["backup"] for m in status["months"]), status

    # A drill of a backup holding oxp_cold restores it into its own folder.
    live = files_of(cold)
    assert oxp("db", "backup", "--type", "full")["exit"] == 0
    drill = backups.verify(get_worker_settings())
    assert drill["ok"], drill
    assert kept(live, files_of(cold))

    # A replica on this machine gets a copy of oxp_cold of its own, and
    # reads the cold months from it.
    settings = get_worker_settings()
    port = free_port()
    made = replica.init(settings, standby, port)
    try:
        with psycopg.connect(made["url"]) as conn:
            assert conn.execute(
                "select pg_tablespace_location(oid) from pg_tablespace where spcname = 'oxp_cold'"
            ).fetchone() == (str(standby.parent / "replica.tablespaces" / "oxp_cold"),)
            deadline = time.monotonic() + 30
            while month_books(made["url"]) != march:
                assert time.monotonic() < deadline, "the replica never showed March"
                time.sleep(0.2)
        assert kept(live, files_of(cold))
    finally:
        replica.stop(settings, standby)

    # A dump loaded elsewhere: the cold months are in the default tablespace
    # there, and wait for a drill of that cluster's own backups.
    dump = backed_up["data"].parent / "cold.dump"
    assert oxp("db", "dump", str(dump))["exit"] == 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create database loaded")
    loaded = make_conninfo(url, dbname="loaded")
    monkeypatch.setenv("DATABASE_URL", loaded)
    clear_settings()
    assert oxp("db", "load", str(dump))["exit"] == 0
    assert tablespace_of(loaded, "ledger_entries_p2026_03") is None
    assert month_books(loaded) == march
    with psycopg.connect(loaded) as conn:
        assert conn.execute(
            "select count(*) from crypto.cold_months"
            " where backed_up_at is not null or moved_at is not null or backup is not null"
        ).fetchone() == (0,)
        assert {
            (partition, step)
            for partition, step in conn.execute(
                "select partition, step from crypto.cold_months_due() where partition like '%p2026_03'"
            )
        } == {("ledger_entries_p2026_03", "wait"), ("ledger_transfers_p2026_03", "wait")}
