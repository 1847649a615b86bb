"""Backups proven by restoring them (issue 12): a cluster of its own with WAL
archived by pgBackRest, traffic, a full backup, a point-in-time restore to a
noted time T (exactly what was acknowledged before T survives), a restore to
the latest WAL (everything comes back), and the restore drill; the API rides
out each restore with 503 DATABASE_UNAVAILABLE and serves again unrestarted."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from ox_cli.main import app
from ox_sidecar.calendar_sync import nyse_sessions
from ox_sidecar.config import clear_settings, get_settings
from ox_sidecar.migrate import migrate
from ox_sidecar.tokens import TokenService
from support import OXP, admin_token, free_port, new_user, running_api

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def backed_up(jwt_key_file: Path) -> Iterator[dict[str, Any]]:
    """A cluster of this module's own (a restore replaces the whole cluster)
    with continuous archiving into its own repository. Commits are durable
    as `make run`'s (synchronous_commit on); fsync is off, as no test
    crashes the machine, only PostgreSQL."""
    work = Path(tempfile.mkdtemp(prefix="oxp-backup."))
    work.chmod(0o755)
    port = free_port()
    data, repo = work / "pg", work / "repo"
    subprocess.run([ROOT / "scripts" / "localpg.sh", "start", data, str(port), "oxp"], check=True)
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("fsync = off\n")  # read at the restart that turns archiving on
    monkeypatch = pytest.MonkeyPatch()
    try:
        subprocess.run(
            [ROOT / "scripts" / "backups.sh", "setup", data, str(port), repo], check=True
        )
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        migrate(url, "development")
        for key, value in {
            "DATABASE_URL": url,
            "BACKUP_CONFIG": str(repo / "pgbackrest.conf"),
            "PG_DATA_DIR": str(data),
            "JWT_PRIVATE_KEY_FILE": str(jwt_key_file),
            "API_POOL_SIZE": "4",
            "LOG_LEVEL": "WARNING",
            # The watcher asks 20 times a second, more than a player may.
            "RATE_LIMITS_ENABLED": "false",
        }.items():
            monkeypatch.setenv(key, value)
        clear_settings()
        yield {"url": url, "data": data, "repo": repo}
    finally:
        monkeypatch.undo()
        clear_settings()
        subprocess.run([ROOT / "scripts" / "localpg.sh", "stop", data], check=False)
        shutil.rmtree(work, ignore_errors=True)


def oxp(*args: str) -> Any:
    """`oxp ARGS --json`, in this process (a new one would only add start-up
    time); its JSON answer, errors included, and the exit code."""
    started = time.monotonic()
    result = runner.invoke(app, [*args, "--json"])
    print(f"oxp {' '.join(args)}: {time.monotonic() - started:.1f} s")
    out = result.stdout.strip().splitlines()
    assert out, result.output
    answer = json.loads(out[-1])
    return {"data": answer} if isinstance(answer, list) else answer | {"exit": result.exit_code}


def adjust(url: str, key: str, amount: int = 10) -> None:
    """One acknowledged operation: it returned, so it is committed."""
    with psycopg.connect(url) as conn:
        conn.execute("set role oxp_operator")
        conn.execute(
            "select crypto.adjust_points('drill@example.com', %s, 'drill', %s)", (amount, key)
        )


def present(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select substr(idempotency_key, 8) from crypto.ledger_transfers"
            " where idempotency_key like 'adjust:op%'"
        ).fetchall()
    return {r[0] for r in rows}


def books_clean(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        violations = conn.execute(
            "select coalesce(json_agg(v), '[]') from crypto.integrity_violations() as v"
        ).fetchone()
        assert violations == ([],)
        conn.execute("select crypto.audit_seal()")
        audit = conn.execute("select crypto.audit_verify()").fetchone()
        assert audit is not None and audit[0]["ok"] is True, audit


class Watcher:
    """Asks the API for the balance every 50 ms while a restore runs: each
    answer must be 200 or a 503 problem+json naming DATABASE_UNAVAILABLE."""

    def __init__(self, api: httpx.Client, token: str) -> None:
        self.api, self.token = api, token
        self.answers: list[tuple[float, int, str, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            asked = time.monotonic()
            try:
                r = self.api.get(
                    "/v1/points/balance", headers={"Authorization": f"Bearer {self.token}"}
                )
                code = r.json().get("code", "") if r.status_code != 200 else ""
                assert r.status_code == 200 or r.headers["content-type"].startswith(
                    "application/problem+json"
                )
                self.answers.append((asked, r.status_code, code, time.monotonic() - asked))
            except httpx.TransportError as exc:  # the API itself must never go away
                self.answers.append((asked, 0, type(exc).__name__, time.monotonic() - asked))
            time.sleep(0.05)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def rode_it_out(self) -> None:
        """Each answer a 200 or a 503 DATABASE_UNAVAILABLE (a request waits up
        to the pool's 5 s for a connection, so a short outage is only a delay),
        and none waited much longer than that."""
        codes = {(status, code) for _, status, code, _ in self.answers}
        assert codes <= {(200, ""), (503, "DATABASE_UNAVAILABLE")}, codes
        slowest = max(took for *_, took in self.answers)
        # A pool wait (5 s) then a statement (5 s) is the longest legitimate answer.
        assert slowest < 12, f"a request took {slowest:.1f} s"

    def serves_again_within(self, seconds: float) -> float:
        """Seconds from the command's end to the first 200 after it."""
        ended = time.monotonic()
        while time.monotonic() - ended < seconds:
            r = self.api.get(
                "/v1/points/balance", headers={"Authorization": f"Bearer {self.token}"}
            )
            if r.status_code == 200:
                return time.monotonic() - ended
            time.sleep(0.05)
        raise AssertionError(f"the API did not serve again within {seconds} s")


def test_restore_drill_point_in_time_then_latest(backed_up: dict[str, Any]) -> None:
    url = backed_up["url"]
    with running_api() as base, httpx.Client(base_url=base, timeout=30) as api:
        r = api.post(
            "/v1/auth/signup", json={"email": "drill@example.com", "password": "correct horse"}
        )
        assert r.status_code == 201, r.text
        token = r.json()["access_token"]

        before_backup = [f"op{i}" for i in range(10)]
        for key in before_backup:
            adjust(url, key)
        backup = oxp("db", "backup", "--type", "full")
        assert backup["exit"] == 0 and backup["type"] == "full", backup
        (listed,) = oxp("db", "backups")["data"]
        assert listed["label"] == backup["label"] and listed["wal_start"] <= listed["wal_stop"]
        # A backup restores from its end (whole seconds, rounded up) on.
        time.sleep(1.1)
        after_backup = [f"op{i}" for i in range(10, 20)]
        for key in after_backup:
            adjust(url, key)
        with psycopg.connect(url) as conn:
            t = conn.execute("select clock_timestamp()").fetchone()[0]  # type: ignore[index]
        time.sleep(0.3)
        after_t = [f"op{i}" for i in range(20, 30)]
        for key in after_t:
            adjust(url, key)
        assert present(url) == set(before_backup + after_backup + after_t)

        # A time before the oldest backup is refused, naming the range; nothing stops.
        early = oxp("db", "restore", "--to", "2020-01-01T00:00:00+00:00", "--yes")
        assert early["exit"] == 1 and early["error"]["code"] == "RESTORE_OUT_OF_RANGE"
        assert "restorable range" in early["error"]["detail"]
        late = oxp("db", "restore", "--to", "2099-01-01T00:00:00+00:00", "--yes")
        assert late["error"]["code"] == "RESTORE_OUT_OF_RANGE", late
        unconfirmed = oxp("db", "restore", "--latest")
        assert unconfirmed["error"]["code"] == "CONFIRMATION_REQUIRED", unconfirmed
        assert (
            api.get("/v1/points/balance", headers={"Authorization": f"Bearer {token}"}).json()[
                "balance"
            ]
            == 300
        )

        with Watcher(api, token) as watch:
            restored = oxp("db", "restore", "--to", t.isoformat(), "--yes")
            assert restored["exit"] == 0, restored
            recovered = watch.serves_again_within(5)
        watch.rode_it_out()
        print(f"restore to T: {restored['seconds']} s, API back {recovered:.2f} s after")

        # Exactly the operations acknowledged before T.
        assert present(url) == set(before_backup + after_backup)
        books_clean(url)
        balance = api.get("/v1/points/balance", headers={"Authorization": f"Bearer {token}"})
        assert balance.json()["balance"] == 200

        with Watcher(api, token) as watch:
            latest = oxp("db", "restore", "--latest", "--yes")
            assert latest["exit"] == 0, latest
            watch.serves_again_within(5)
        watch.rode_it_out()
        assert present(url) == set(before_backup + after_backup + after_t)
        books_clean(url)

    drill = oxp("db", "verify-backup")
    assert drill["exit"] == 0 and drill["ok"] is True, drill
    assert drill["violations"] == [] and drill["audit"]["ok"] is True


def test_restore_is_refused_in_production_without_the_long_flag(
    backed_up: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("JWT_PRIVATE_KEY", "pem")
    monkeypatch.setenv("JWT_ADMIN_PRIVATE_KEY", "pem")
    monkeypatch.setenv("TOTP_ENCRYPTION_KEY", "x" * 32)
    clear_settings()
    try:
        refused = oxp("db", "restore", "--latest", "--yes")
    finally:
        monkeypatch.undo()
        clear_settings()
    assert refused["exit"] == 1 and refused["error"]["code"] == "REPLACES_PRODUCTION"
    with psycopg.connect(backed_up["url"]) as conn:  # still up: nothing was stopped
        assert conn.execute("select 1").fetchone() == (1,)


def test_dump_and_load(
    backed_up: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = backed_up["url"]
    dump = tmp_path / "oxp.dump"
    assert runner.invoke(app, ["db", "dump", str(dump)]).exit_code == 0
    assert dump.stat().st_size > 0
    # Into the same, non-empty database: refused without --replace --yes.
    refused = runner.invoke(app, ["db", "load", str(dump)])
    assert refused.exit_code == 1 and "DATABASE_NOT_EMPTY" in refused.output
    refused = runner.invoke(app, ["db", "load", str(dump), "--replace"])
    assert refused.exit_code == 1 and "DATABASE_NOT_EMPTY" in refused.output
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop database if exists copy")
        conn.execute("create database copy")
    copy = url.rsplit("/", 1)[0] + "/copy"
    monkeypatch.setenv("DATABASE_URL", copy)
    clear_settings()
    loaded = runner.invoke(app, ["db", "load", str(dump)])
    assert loaded.exit_code == 0, loaded.output
    with psycopg.connect(copy) as conn, psycopg.connect(url) as source:
        query = "select count(*) from migrations.applied"
        assert conn.execute(query).fetchone() == source.execute(query).fetchone()
        query = "select count(*), coalesce(sum(amount), 0) from crypto.ledger_entries"
        assert conn.execute(query).fetchone() == source.execute(query).fetchone()

    # A dump that breaks an invariant the restore cannot see (no trigger
    # fires in it): a transfer key without its transfer, written past the
    # triggers. Refused whole: the database it went into holds nothing.
    with psycopg.connect(copy, autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute(
            "insert into crypto.ledger_transfer_keys (idempotency_key, created_at)"
            " values ('tampered:1', now())"
        )
    tampered = tmp_path / "tampered.dump"
    assert runner.invoke(app, ["db", "dump", str(tampered)]).exit_code == 0
    cut = tmp_path / "cut.dump"
    cut.write_bytes(dump.read_bytes()[:-64])  # its TOC whole, its last data not
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop database if exists empty")
        conn.execute("create database empty")
    monkeypatch.setenv("DATABASE_URL", url.rsplit("/", 1)[0] + "/empty")
    clear_settings()
    refused = oxp("db", "load", str(tampered))
    assert refused["exit"] == 1 and refused["error"]["code"] == "RESTORE_FAILED", refused
    assert "transfer_key transfer:" in refused["error"]["detail"]
    # A dump cut short (a copy that did not finish): pg_restore stops in the
    # middle of the data, and what it had sent is never committed.
    refused = oxp("db", "load", str(cut))
    assert refused["exit"] == 1 and refused["error"]["code"] == "RESTORE_FAILED", refused
    with psycopg.connect(url.rsplit("/", 1)[0] + "/empty") as conn:
        assert conn.execute(
            "select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')"
        ).fetchone() == (0,)

    # Over a database that holds one (--replace --yes): a good dump replaces
    # it, a bad one leaves it as it was.
    monkeypatch.setenv("DATABASE_URL", copy)
    clear_settings()
    tampered_key = (
        "select count(*) from crypto.ledger_transfer_keys where idempotency_key = 'tampered:1'"
    )
    with psycopg.connect(copy, autocommit=True) as conn:
        # Not the dump's (an operator's, as README's pgbouncer lookup): it stays.
        conn.execute("create schema operators_own")
        conn.execute("create table operators_own.note (t text)")
    loaded = oxp("db", "load", str(dump), "--replace", "--yes")
    assert loaded["exit"] == 0, loaded
    refused = oxp("db", "load", str(tampered), "--replace", "--yes")
    assert refused["exit"] == 1 and refused["error"]["code"] == "RESTORE_FAILED", refused
    with psycopg.connect(copy) as conn, psycopg.connect(url) as source:
        assert conn.execute(tampered_key).fetchone() == (0,)
        assert conn.execute("select to_regclass('operators_own.note')").fetchone() != (None,)
        query = "select count(*), coalesce(sum(amount), 0) from crypto.ledger_entries"
        assert conn.execute(query).fetchone() == source.execute(query).fetchone()
    monkeypatch.setenv("DATABASE_URL", url)
    clear_settings()


def test_a_load_killed_midway_commits_nothing(env: None, db_url: str, tmp_path: Path) -> None:
    """`oxp db load` stopped while psql is writing the dump's rows (an
    operator's ^C, a container stopped): psql's input ends without COMMIT,
    and the server rolls back every row it had written."""
    killed = f"{conninfo_to_dict(db_url)['dbname']}_killed"
    with psycopg.connect(db_url, autocommit=True) as conn:
        # Rows enough that the load is still copying them when stopped.
        # One text column: a COPY cut anywhere still parses, so only the
        # missing COMMIT can keep these rows out.
        conn.execute(
            "create table crypto.bulk as select md5(g::text) || '-' || g as v"
            " from generate_series(1, 2000000) as g"
        )
    dump = tmp_path / "big.dump"
    assert runner.invoke(app, ["db", "dump", str(dump)]).exit_code == 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"create database {killed}")
    target = make_conninfo(db_url, dbname=killed)
    load = subprocess.Popen(
        [OXP, "db", "load", str(dump)],
        env={**os.environ, "DATABASE_URL": target},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while conn.execute(
                "select count(*) from pg_stat_activity"
                " where datname = %s and query ilike 'copy crypto.bulk%%'",
                (killed,),
            ).fetchone() == (0,):
                assert load.poll() is None, "the load ended before its rows were copied"
                assert time.monotonic() < deadline, "the copy never started"
                time.sleep(0.05)
        load.send_signal(signal.SIGTERM)  # the oxp process only, as `docker stop` would
        load.wait(timeout=30)
        with psycopg.connect(db_url, autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while conn.execute(
                "select count(*) from pg_stat_activity"
                " where datname = %s and backend_type = 'client backend'",
                (killed,),
            ).fetchone() != (0,):
                assert time.monotonic() < deadline, "psql stayed connected"
                time.sleep(0.1)
        with psycopg.connect(target) as conn:
            assert conn.execute(
                "select count(*) from pg_tables"
                " where schemaname not in ('pg_catalog', 'information_schema')"
            ).fetchone() == (0,)
    finally:
        load.kill()
        load.wait()
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("drop table if exists crypto.bulk")
            conn.execute(f"drop database if exists {killed} with (force)")


def test_a_dump_with_large_objects_is_refused(env: None, db_url: str, tmp_path: Path) -> None:
    """pg_restore commits large objects' data in transactions of its own,
    so a load could not be all or nothing: refused before it begins."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        oid = conn.execute("select lo_from_bytea(0, 'not oxp''s')").fetchone()[0]  # type: ignore[index]
    try:
        dump = tmp_path / "blob.dump"
        assert runner.invoke(app, ["db", "dump", str(dump)]).exit_code == 0
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("select lo_unlink(%s)", (oid,))
    target = f"{conninfo_to_dict(db_url)['dbname']}_blob"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"drop database if exists {target}")
        conn.execute(f"create database {target}")
    try:
        refused = subprocess.run(
            [OXP, "db", "load", str(dump)],
            env={**os.environ, "DATABASE_URL": make_conninfo(db_url, dbname=target)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode == 1 and "VALIDATION_FAILED" in refused.stdout + refused.stderr
        with psycopg.connect(make_conninfo(db_url, dbname=target)) as conn:
            assert conn.execute(
                "select (select count(*) from pg_tables where schemaname = 'crypto'),"
                " (select count(*) from pg_largeobject_metadata)"
            ).fetchone() == (0, 0)
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"drop database if exists {target} with (force)")


def test_scheduled_backup_and_a_failing_archive_alert(backed_up: dict[str, Any]) -> None:
    """The worker runs what pg_cron enqueues and records it; an
    archive_command that fails opens the archive alert, and archiving
    resumes, and the alert clears, once it works again."""
    from ox_sidecar.worker import run_once

    url = backed_up["url"]
    with psycopg.connect(url) as conn:  # the drill's player, should this test run alone
        if (
            conn.execute("select from crypto.users where email = 'drill@example.com'").fetchone()
            is None
        ):
            new_user(conn, "drill@example.com")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set role oxp_service")
        conn.execute("select crypto.enqueue_backup('incr')")
        assert run_once(conn)
        conn.execute("reset role")
        assert conn.execute(
            "select status::text from crypto.job_runs where job = 'backup.incr'"
        ).fetchall() == [("succeeded",)]
        assert conn.execute(
            "select status::text from crypto.jobs where kind = 'backup.incr'"
        ).fetchall() == [("done",)]

        def archiver() -> dict[str, Any]:
            conn.execute("select pg_stat_clear_snapshot()")
            return conn.execute("select crypto.check_wal_archive()").fetchone()[0]  # type: ignore[index]

        conn.execute("alter system set archive_command = 'false'")
        conn.execute("select pg_reload_conf()")
        time.sleep(0.5)
        conn.execute("select pg_switch_wal()")
        adjust(url, "op-while-failing")  # committed while WAL cannot leave the disk
        deadline = time.monotonic() + 30
        while not (state := archiver())["failing"]:
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
        assert conn.execute(
            "select severity::text from crypto.alerts"
            " where rule = 'wal_archive_failing' and resolved_at is null"
        ).fetchall() == [("critical",)]

        conn.execute("alter system reset archive_command")
        conn.execute("select pg_reload_conf()")
        deadline = time.monotonic() + 90  # the archiver retries after a minute at worst
        while (state := archiver())["failing"]:
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
        assert conn.execute(
            "select resolution from crypto.alerts where rule = 'wal_archive_failing'"
        ).fetchall() == [("cleared",)]
        assert "op-while-failing" in present(url)  # nothing was lost

        # A full disk, as pgBackRest meets it: the repository refuses every
        # write (its backup folder made read-only; a real ENOSPC fails the
        # same writes). The scheduled backup fails, is recorded, alerts.
        backup_dir = backed_up["repo"] / "backup" / "oxp"
        mode = backup_dir.stat().st_mode
        backup_dir.chmod(0o500)
        try:
            conn.execute("set role oxp_service")
            conn.execute("select crypto.enqueue_backup('diff')")
            while run_once(conn):  # the alerts' deliveries are queued too
                pass
            conn.execute("reset role")
            assert conn.execute(
                "select status::text from crypto.job_runs where job = 'backup.diff'"
            ).fetchall() == [("failed",)]
            assert conn.execute(
                "select status::text, attempts from crypto.jobs where kind = 'backup.diff'"
            ).fetchall() == [("queued", 1)]  # to be retried
            assert conn.execute(
                "select subject, severity::text from crypto.alerts"
                " where rule = 'backup_failed' and resolved_at is null"
            ).fetchall() == [("diff", "critical")]
        finally:
            backup_dir.chmod(mode)
        # Space again: the queue's retry (its backoff skipped) backs up and clears the alert.
        adjust(url, "op-after-disk-full")
        conn.execute("update crypto.jobs set run_after = crypto.now() where kind = 'backup.diff'")
        conn.execute("set role oxp_service")
        while run_once(conn):
            pass
        conn.execute("reset role")
        assert conn.execute(
            "select status::text from crypto.job_runs where job = 'backup.diff' order by id"
        ).fetchall() == [("failed",), ("succeeded",)]
        assert conn.execute(
            "select resolution from crypto.alerts where rule = 'backup_failed'"
        ).fetchall() == [("cleared",)]
        assert {"op-while-failing", "op-after-disk-full"} <= present(url)


CRASH_DAY, CRASH_USERS = "2026-11-24", 32
PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"


def _pg_ctl(data: Path, *args: str) -> None:
    cmd = [PG_CTL, "-D", str(data), *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True)


def _start_postgres(data: Path) -> None:
    """Start it again. After a SIGKILL of the postmaster its backends linger
    a moment (until each notices), holding the shared memory: retry."""
    deadline = time.monotonic() + 20
    while True:
        try:
            _pg_ctl(data, "-l", str(data / "server.log"), "-w", "-t", "30", "start")
            return
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


# What each operation answers once acknowledged.
CRASH_OK = {"predict": 201, "redeem": 201, "click": 201, "adjust": 200}


class Traffic:
    """32 players through the real API: predictions, redemptions, ad clicks,
    and an admin's adjustments of their points, each operation retried under
    its own Idempotency-Key until acknowledged, and some sent once more
    after it was (a client that lost the answer): the replay must answer
    the same. Every answer is kept (status, code, seconds)."""

    def __init__(self, base: str, tokens: list[str], emails: list[str], boss: str) -> None:
        self.base, self.tokens, self.emails, self.boss = base, tokens, emails, boss
        self.answers: list[tuple[int, str, float]] = []
        self.acked: dict[str, list[tuple[int, str]]] = {kind: [] for kind in CRASH_OK}
        self.sent: Counter[str] = Counter()
        self.replays_differing: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    @staticmethod
    def op(i: int, n: int) -> tuple[str, str, Any]:
        """Player i's n-th operation: its kind, key and argument (ten
        predictions at most: one per symbol)."""
        kind = ("predict", "redeem", "click", "adjust", "redeem", "click", "predict")[n % 7]
        arg: Any = None
        if kind == "predict":
            arg = SYMBOLS_FOR_CRASH[(i + n // 7 * 2 + (n % 7 == 6)) % len(SYMBOLS_FOR_CRASH)]
            if n >= 35:
                kind, arg = "redeem", None
        elif kind == "adjust":
            arg = 25 if n % 2 else -5
        return kind, f"crash{i}-{n}", arg

    def send(self, api: httpx.Client, i: int, kind: str, key: str, arg: Any) -> httpx.Response:
        user = {"Authorization": f"Bearer {self.tokens[i]}", "Idempotency-Key": key}
        if kind == "predict":
            return api.post(f"/v1/predictions/{arg}", json={"choice": "UP"}, headers=user)
        if kind == "redeem":
            return api.post("/v1/rewards/COIN/redeem", headers=user)
        if kind == "click":
            return api.post("/v1/ads/crash-ad/click", headers=user)
        return api.post(
            "/admin/users/adjust-points",
            json={"email": self.emails[i], "amount": arg, "reason": "crash test"},
            headers={"Authorization": f"Bearer {self.boss}", "Idempotency-Key": key},
        )

    def client(self, i: int) -> None:
        """Operations one after the other until told to stop; the one under
        way when told is still retried until acknowledged."""
        rng = random.Random(i)
        with httpx.Client(base_url=self.base, timeout=30) as api:
            n = 0
            while not self.stop.is_set():
                kind, key, arg = self.op(i, n)
                n += 1
                with self.lock:
                    self.sent[kind] += 1
                for _ in range(300):
                    asked = time.monotonic()
                    try:
                        r = self.send(api, i, kind, key, arg)
                    except httpx.TransportError as exc:  # the API itself must not go away
                        self.note(0, type(exc).__name__, asked)
                        time.sleep(0.1)
                        continue
                    self.note(r.status_code, self.code(r), asked)
                    if r.status_code == CRASH_OK[kind]:
                        with self.lock:
                            self.acked[kind].append((i, key))
                        if rng.random() < 0.2:  # the answer "lost": sent again
                            asked = time.monotonic()
                            again = self.send(api, i, kind, key, arg)
                            self.note(again.status_code, self.code(again), asked)
                            if again.status_code == r.status_code and again.json() != r.json():
                                self.replays_differing.append(key)
                        break
                    time.sleep(0.1)
                time.sleep(0.02)

    @staticmethod
    def code(r: httpx.Response) -> str:
        return str(r.json().get("code", "")) if r.status_code >= 400 else ""

    def note(self, status: int, code: str, asked: float) -> None:
        with self.lock:
            self.answers.append((status, code, time.monotonic() - asked))


SYMBOLS_FOR_CRASH = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]


def _crash_setup(url: str, api: httpx.Client) -> tuple[list[str], list[str], str]:
    """Tuesday 2026-11-24 open, 32 players with 1,000 points each, a reward,
    an ad, and an admin with a token."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "select crypto.sync_calendar(%s::jsonb)", (json.dumps(nyse_sessions(2026, 2026)),)
        )
        conn.execute("select crypto.clock_set('2026-11-24T09:00:00+09:00')")
        conn.execute("select crypto.open_session(%s)", (CRASH_DAY,))
        conn.execute("update crypto.settings set value = '10' where key = 'predictions.base_limit'")
        conn.execute("update crypto.settings set value = '1000' where key = 'ads.max_impressions'")
        # A player's prediction rate is kept on their daily-limits row
        # (sql/0039), so it survives the crashes (the unlogged rate_limits
        # counts did not): ten predictions in a minute would wait out
        # Retry-After past a client's 30 s of retries. This is about
        # durability, not the rate.
        conn.execute(
            "update crypto.settings set value = '1000'"
            " where key in ('ratelimit.predictions_per_minute', 'ratelimit.predictions_per_hour')"
        )
        conn.execute("select crypto.upsert_reward('COIN', 'A coin', 1, 100000)")
        conn.execute(
            "insert into crypto.ads (id, title, reward_kind, reward_points)"
            " values ('crash-ad', 'An ad', 'SLOT', 0)"
        )
    emails = [f"crash{i}@example.com" for i in range(CRASH_USERS)]
    # Players as signup makes them, with their access tokens signed by the
    # API's key (the password hashing of 32 signups would be most of the run).
    tokens = TokenService(get_settings())
    with psycopg.connect(url) as conn:
        players = [
            conn.execute(
                "select api.signup(%s, %s)",
                (email, "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"),
            ).fetchone()[0]  # type: ignore[index]
            for email in emails
        ]
    access = [str(tokens.issue(player)["access_token"]) for player in players]
    with psycopg.connect(url) as conn:
        conn.execute("set role oxp_operator")
        for email in emails:
            conn.execute(
                "select crypto.adjust_points(%s, 1000, 'crash test', %s)", (email, f"start:{email}")
            )
    return access, emails, admin_token(api, "crashboss@example.com")


def test_postgres_killed_under_api_traffic_loses_nothing(backed_up: dict[str, Any]) -> None:
    """Issue 12 item 4: 32 players predicting, redeeming, clicking ads and
    being adjusted by an admin through the real API, each operation retried
    under its Idempotency-Key until acknowledged. PostgreSQL is stopped with
    `pg_ctl stop -m immediate`, started, then its postmaster is SIGKILLed,
    started again. Every acknowledged operation is there once, the balances
    equal those recomputed from the business facts (after the day settles),
    no deadlock, no 5xx but 503 problem+json while down, never a hung
    request, the API serving again within 5 s each time, unrestarted."""
    url, data = backed_up["url"], backed_up["data"]
    log = data / "server.log"
    log_from = log.stat().st_size
    started = time.monotonic()
    with running_api() as base, httpx.Client(base_url=base, timeout=30) as api:
        tokens, emails, boss = _crash_setup(url, api)
        traffic = Traffic(base, tokens, emails, boss)
        worker = subprocess.Popen(
            [OXP, "worker"], env=os.environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        threads = [threading.Thread(target=traffic.client, args=(i,)) for i in range(CRASH_USERS)]
        for t in threads:
            t.start()
        outages: list[dict[str, Any]] = []
        for how in ("immediate", "sigkill"):
            time.sleep(1.5)
            if how == "immediate":
                _pg_ctl(data, "-m", "immediate", "stop")
            else:
                postmaster = int((data / "postmaster.pid").read_text().split()[0])
                os.kill(postmaster, signal.SIGKILL)
            down_at = time.monotonic()
            time.sleep(2)
            _start_postgres(data)
            up_at = time.monotonic()
            back = Watcher(api, tokens[0]).serves_again_within(5)
            outages.append({"how": how, "down": up_at - down_at, "recovered": back})
        time.sleep(1)
        traffic.stop.set()
        for t in threads:
            t.join()
        # The worker rode it out too: alive, and beating again after the restarts.
        try:
            deadline = time.monotonic() + 20
            while True:
                with psycopg.connect(url) as conn:
                    beat = conn.execute(
                        "select count(*) from crypto.worker_heartbeats"
                        " where seen_at > crypto.now() - interval '5 seconds'"
                    ).fetchone()
                if beat != (0,):
                    break
                assert worker.poll() is None, "the worker died with the database"
                assert time.monotonic() < deadline, "the worker never came back"
                time.sleep(0.5)
        finally:
            worker.terminate()
            worker.wait(timeout=10)

    answers = Counter((status, code) for status, code, _ in traffic.answers)
    other_5xx = sum(n for (status, _), n in answers.items() if status >= 500 and status != 503)
    unavailable = answers[(503, "DATABASE_UNAVAILABLE")]
    planned = {kind: traffic.sent[kind] for kind in CRASH_OK}
    acked = {kind: len(keys) for kind, keys in traffic.acked.items()}
    deadlocks = log.read_bytes()[log_from:].count(b"deadlock detected")

    # Tuesday settles (closes up for half the symbols): the predictions pay.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select crypto.clock_set('2026-11-25T07:00:00+09:00')")
        conn.execute("select crypto.close_session(%s)", (CRASH_DAY,))
        for n, symbol in enumerate(SYMBOLS_FOR_CRASH):
            conn.execute("select crypto.load_eod_price('2026-11-23', %s, 100, 'test')", (symbol,))
            close = 101 if n % 2 else 99
            conn.execute(
                "select crypto.load_eod_price(%s, %s, %s, 'test')", (CRASH_DAY, symbol, close)
            )
        conn.execute("select crypto.settle_session(%s)", (CRASH_DAY,))
        counts = conn.execute(
            """
            select
              (select count(*) from crypto.predictions as p join crypto.users as u on u.id = p.user_id
               where u.email like 'crash%%@example.com' and p.trading_day = %(d)s),
              (select count(*) from crypto.rewards_redemptions as r join crypto.users as u on u.id = r.user_id
               where u.email like 'crash%%@example.com'),
              (select count(*) from crypto.ad_impressions as i join crypto.users as u on u.id = i.user_id
               where u.email like 'crash%%@example.com'),
              (select count(*) from crypto.ledger_transfers where idempotency_key like '%%admin:%%:crash%%')
            """,
            {"d": CRASH_DAY},
        ).fetchone()
        assert counts is not None
        present_by_kind = dict(zip(("predict", "redeem", "click", "adjust"), counts, strict=True))
        keyed = conn.execute(
            """
            select idempotency_key, count(*) from (
                select idempotency_key from crypto.rewards_redemptions
                union all select idempotency_key from crypto.ad_impressions
                union all select regexp_replace(idempotency_key, '^.*:', '')
                    from crypto.ledger_transfers where idempotency_key like '%%admin:%%:crash%%'
            ) as k where idempotency_key like 'crash%%' group by 1
            """
        ).fetchall()
        predicted = set(
            conn.execute(
                "select u.email, p.symbol from crypto.predictions as p"
                " join crypto.users as u on u.id = p.user_id where p.trading_day = %s",
                (CRASH_DAY,),
            ).fetchall()
        )
        negative = conn.execute(
            "select count(*) from crypto.ledger_accounts where kind = 'user' and balance < 0"
        ).fetchone()[0]  # type: ignore[index]
        # The balances from the business facts alone, never reading entries.
        mismatched = conn.execute(
            """
            select u.email, a.balance, f.expected from crypto.users as u
            join crypto.ledger_accounts as a on a.user_id = u.id
            cross join lateral (select
                coalesce((select sum((l.details ->> 'amount')::bigint) from crypto.audit_logs as l
                          where l.action = 'points.adjust' and l.details ->> 'user_id' = u.id::text), 0)
              + 100 * (select count(*) from crypto.predictions as p
                       join crypto.settlements as s using (trading_day, symbol)
                       where p.user_id = u.id and p.choice::text = s.outcome::text)
              - coalesce((select sum(r.cost_points) from crypto.rewards_redemptions as r
                          where r.user_id = u.id and r.status in ('REQUESTED', 'ISSUED')), 0)
              as expected) as f
            where u.email like 'crash%%@example.com' and a.balance <> f.expected
            """
        ).fetchall()
    lost = sum(acked.values()) - sum(min(acked[k], present_by_kind[k]) for k in acked)
    duplicated = sum(n - 1 for _, n in keyed if n > 1)
    print(
        f"crash faults: {sum(acked.values())} acknowledged of {sum(planned.values())} {acked},"
        f" present {present_by_kind}, lost {lost}, duplicated {duplicated},"
        f" negative balances {negative}, deadlocks {deadlocks}, 5xx other than 503 {other_5xx},"
        f" 503 while down {unavailable}, answers {dict(answers)},"
        f" outages {[{k: round(v, 2) if isinstance(v, float) else v for k, v in o.items()} for o in outages]},"
        f" slowest answer {max(t for *_, t in traffic.answers):.2f} s,"
        f" test {time.monotonic() - started:.0f} s"
    )
    assert acked == planned, (acked, planned)  # every operation was acknowledged in the end
    assert present_by_kind == acked and lost == 0
    assert duplicated == 0 and traffic.replays_differing == []
    assert len(predicted & {(e, s) for e in emails for s in SYMBOLS_FOR_CRASH}) == acked["predict"]
    assert negative == 0 and mismatched == []
    assert deadlocks == 0 and other_5xx == 0
    assert unavailable > 0, answers
    assert set(answers) <= {(s, "") for s in CRASH_OK.values()} | {(503, "DATABASE_UNAVAILABLE")}
    assert max(t for *_, t in traffic.answers) < 12, "a request hung"
    assert all(o["recovered"] <= 5 for o in outages), outages
    books_clean(url)


def test_api_started_while_the_database_is_down_becomes_ready_on_its_own(
    backed_up: dict[str, Any],
) -> None:
    """Issue 12 item 4: `oxp serve` started with PostgreSQL stopped is alive
    (/health 200) and not ready (/ready 503 problem+json, a player's route
    503 too, never a 500); once PostgreSQL is started it becomes ready by
    itself, without a restart."""
    data = backed_up["data"]
    _pg_ctl(data, "-m", "fast", "stop")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [OXP, "serve", "--port", str(port), "--workers", "1"],
        env=os.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=base, timeout=10) as api:
            deadline = time.monotonic() + 60  # start-up is slow on a busy machine
            while True:
                try:
                    health = api.get("/health")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, "the API did not start without its database"
                    assert time.monotonic() < deadline, "the API never answered"
                    time.sleep(0.2)
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            ready = api.get("/ready")
            assert ready.status_code == 503, ready.text
            assert ready.headers["content-type"].startswith("application/problem+json")
            assert ready.json()["code"] == "DATABASE_UNAVAILABLE"
            rewards = api.get("/v1/rewards")
            assert rewards.status_code == 503, rewards.text
            assert rewards.headers["content-type"].startswith("application/problem+json")

            _start_postgres(data)
            up_at = time.monotonic()
            while (ready := api.get("/ready")).status_code != 200:
                assert ready.status_code == 503, ready.text
                assert time.monotonic() - up_at < 5, (
                    f"not ready 5 s after the database: {ready.text}"
                )
                time.sleep(0.1)
            became_ready = time.monotonic() - up_at
            assert api.get("/v1/rewards").status_code == 200
            assert proc.poll() is None  # the same process, never restarted
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        _start_postgres_if_stopped(data)
    print(f"API started without its database: ready {became_ready:.2f} s after PostgreSQL came up")


def _start_postgres_if_stopped(data: Path) -> None:
    """Leaves the module's cluster running for whatever test comes next."""
    status = [PG_CTL, "-D", str(data), "status"]
    if os.geteuid() == 0:
        status = ["runuser", "-u", "postgres", "--", *status]
    if subprocess.run(status, capture_output=True).returncode != 0:
        _start_postgres(data)
