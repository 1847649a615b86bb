"""Backups proven by restoring them (issue 12): a cluster of its own with WAL
archived by pgBackRest, traffic, a full backup, a point-in-time restore to a
noted time T (exactly what was acknowledged before T survives), a restore to
the latest WAL (everything comes back), and the restore drill; the API rides
out each restore with 503 DATABASE_UNAVAILABLE and serves again unrestarted."""

from __future__ import annotations

import json
import os
import shutil
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
from typer.testing import CliRunner

from ox_cli.main import app
from ox_sidecar.config import clear_settings
from ox_sidecar.migrate import migrate
from support import OXP, free_port, running_api

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
        assert slowest < 8, f"a request took {slowest:.1f} s"

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
    monkeypatch.setenv("DATABASE_URL", url)
    clear_settings()


def test_scheduled_backup_and_a_failing_archive_alert(backed_up: dict[str, Any]) -> None:
    """The worker runs what pg_cron enqueues and records it; an
    archive_command that fails opens the archive alert, and archiving
    resumes, and the alert clears, once it works again."""
    from ox_sidecar.worker import run_once

    url = backed_up["url"]
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


def test_postgres_killed_under_api_traffic_loses_nothing(backed_up: dict[str, Any]) -> None:
    """Issue 12 item 4: PostgreSQL stopped with `-m immediate` in the middle
    of 8 clients redeeming through the real API, each retrying under the same
    Idempotency-Key until acknowledged; restarted. Every acknowledged
    redemption is there once, the balances follow, the books verify; the API
    answered 503 problem+json (never a 500, never hung) while the database
    was down and served again within 5 s, without a restart."""
    url, data = backed_up["url"], backed_up["data"]
    pg_ctl = ["/usr/lib/postgresql/15/bin/pg_ctl", "-D", str(data)]
    if os.geteuid() == 0:
        pg_ctl = ["runuser", "-u", "postgres", "--", *pg_ctl]
    clients, per_client = 8, 25
    with running_api() as base, httpx.Client(base_url=base, timeout=30) as api:
        tokens = []
        for i in range(clients):
            r = api.post(
                "/v1/auth/signup", json={"email": f"crash{i}@example.com", "password": "crash pw 1"}
            )
            assert r.status_code == 201, r.text
            tokens.append(r.json()["access_token"])
        with psycopg.connect(url) as conn:
            conn.execute("set role oxp_operator")
            conn.execute("select crypto.upsert_reward('COIN', 'A coin', 1, 100000)")
            for i in range(clients):
                conn.execute(
                    "select crypto.adjust_points(%s, 1000, 'crash test', %s)",
                    (f"crash{i}@example.com", f"crash-start{i}"),
                )

        answers: list[tuple[int, str, float]] = []
        acked: list[str] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as mine:
                for n in range(per_client):
                    key = f"crash{i}-{n}"
                    for _ in range(200):
                        asked = time.monotonic()
                        r = mine.post(
                            "/v1/rewards/COIN/redeem",
                            headers={
                                "Authorization": f"Bearer {tokens[i]}",
                                "Idempotency-Key": key,
                            },
                        )
                        code = r.json().get("code", "") if r.status_code >= 400 else ""
                        with lock:
                            answers.append((r.status_code, code, time.monotonic() - asked))
                        if r.status_code == 201:
                            with lock:
                                acked.append(key)
                            break
                        assert r.headers["content-type"].startswith("application/problem+json")
                        time.sleep(0.1)
                    time.sleep(0.02)

        worker = subprocess.Popen(
            [OXP, "worker"], env=os.environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=True, capture_output=True)
        down_at = time.monotonic()
        time.sleep(6)
        subprocess.run(
            [*pg_ctl, "-l", str(data / "server.log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
        up_at = time.monotonic()
        for t in threads:
            t.join()
        back = Watcher(api, tokens[0]).serves_again_within(5)
        # The worker rode it out too: alive, and beating again after the restart.
        try:
            deadline = time.monotonic() + 20
            while True:
                with psycopg.connect(url) as conn:
                    beat = conn.execute(
                        "select count(*) from crypto.worker_heartbeats"
                        " where seen_at > now() - interval '5 seconds'"
                    ).fetchone()
                if beat != (0,):
                    break
                assert worker.poll() is None, "the worker died with the database"
                assert time.monotonic() < deadline, "the worker never came back"
                time.sleep(0.5)
        finally:
            worker.terminate()
            worker.wait(timeout=10)

    statuses = {(status, code) for status, code, _ in answers}
    print(
        f"crash: {len(acked)} acknowledged of {clients * per_client}, answers {Counter((s, c) for s, c, _ in answers)},"
        f" down {up_at - down_at:.1f} s, served again {back:.2f} s after"
    )
    assert (503, "DATABASE_UNAVAILABLE") in statuses, statuses
    assert statuses <= {(201, ""), (503, "DATABASE_UNAVAILABLE")}, statuses
    assert max(took for *_, took in answers) < 8, "a request hung"
    assert len(acked) == clients * per_client
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select idempotency_key, count(*) from crypto.rewards_redemptions"
            " where idempotency_key like 'crash%' group by 1"
        ).fetchall()
        assert dict(rows) == dict.fromkeys(acked, 1)  # none lost, none twice
        balances = conn.execute(
            "select a.balance from crypto.ledger_accounts as a join crypto.users as u"
            " on u.id = a.user_id where u.email like 'crash%@example.com'"
        ).fetchall()
        assert balances == [(1000 - per_client,)] * clients
        negative = conn.execute(
            "select count(*) from crypto.ledger_accounts where kind = 'user' and balance < 0"
        ).fetchone()
        assert negative == (0,)
    books_clean(url)
