"""A streaming replica of the test cluster (`oxp db replica init`, two real
clusters): a write on the primary is seen there, nobody writes there (the
auditor least of all), and the API's lagging reads come from it while it is
close behind, from the primary when it is too far behind or stopped."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from ox_cli.main import app as cli
from ox_sidecar import replica as replicas
from ox_sidecar.config import get_settings
from support import admin_token, bearer, free_port, new_user, signup

Replica = dict[str, Any]


@pytest.fixture(scope="module")
def replica(cluster: dict[str, Any]) -> Iterator[Replica]:
    """`oxp db replica init` of the whole test cluster into a folder of its own."""
    work = Path(tempfile.mkdtemp(prefix="oxp-replica."))
    work.chmod(0o755)
    port = free_port()
    primary = make_conninfo(
        host=cluster["host"], port=cluster["port"], user="postgres", dbname="postgres"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", primary)
        get_settings.cache_clear()
        result = CliRunner().invoke(
            cli,
            ["db", "replica", "init", "--dir", str(work / "data"), "--port", str(port), "--json"],
        )
        assert result.exit_code == 0, result.output
        settings = get_settings()
    get_settings.cache_clear()
    try:
        yield {"port": port, "data": work / "data", "settings": settings, "primary": primary}
    finally:
        with contextlib.suppress(replicas.BackupError):
            replicas.stop(settings, work / "data")
        shutil.rmtree(work, ignore_errors=True)


def on_replica(replica: Replica, db_url: str, user: str = "postgres") -> str:
    dbname = conninfo_to_dict(db_url)["dbname"]
    return make_conninfo(host="127.0.0.1", port=replica["port"], user=user, dbname=dbname)


def eventually(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not replicated in time"
        time.sleep(0.1)


def caught_up(db: psycopg.Connection, replica: Replica, db_url: str) -> None:
    # The insert position, not pg_current_wal_lsn() (what is written out):
    # a commit made with synchronous_commit off (a sign-in's bookkeeping,
    # the rate-limit counts) may still sit in the WAL buffers, before the
    # written position, and the replica would be "caught up" without it.
    row = db.execute("select pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    # The cluster's own database: this test's may not have reached the replica yet.
    postgres = on_replica(replica, make_conninfo(db_url, dbname="postgres"))
    with psycopg.connect(postgres, autocommit=True) as standby:
        eventually(
            lambda: (
                standby.execute(
                    "select pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                ).fetchone()
                == (True,)
            )
        )


def test_a_write_on_the_primary_is_seen_on_the_replica_and_nobody_writes_there(
    env: None, db: psycopg.Connection, db_url: str, replica: Replica
) -> None:
    uid = new_user(db, "ann@example.com")
    caught_up(db, replica, db_url)
    with psycopg.connect(on_replica(replica, db_url), autocommit=True) as standby:

        def seen() -> bool:
            row = standby.execute("select email from crypto.users where id = %s", (uid,)).fetchone()
            return row == ("ann@example.com",)

        eventually(seen)
        # Not even the superuser writes on a standby.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            standby.execute("update crypto.users set nickname = 'Mallory' where id = %s", (uid,))
    with psycopg.connect(on_replica(replica, db_url, "auditor"), autocommit=True) as auditor:
        # The auditor's login reads there (README: it connects to the replica) ...
        row = auditor.execute("select count(*) from crypto.users").fetchone()
        assert row == (1,)
        # ... and cannot write there, whatever it tries.
        for statement in (
            "update crypto.users set nickname = 'Mallory'",
            "delete from crypto.audit_logs",
            "insert into crypto.leaderboard select 'all', current_date, id, 1, 1, 0, 0, now()"
            " from crypto.users",
        ):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                auditor.execute(statement)
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="during recovery"):
            auditor.execute("begin read write")
    assert db.execute("select nickname from crypto.users").fetchall() == [(None,)]

    status = CliRunner().invoke(
        cli,
        ["db", "replica", "status", "--port", str(replica["port"]), "--json"],
    )
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    assert report["state"] == "streaming"
    assert report["lag_bytes"] is not None and report["lag_bytes"] >= 0
    assert report["lag_seconds"] is not None
    # Refusals with their codes: a second init into the same folder, a replica that is not there.
    again = CliRunner().invoke(
        cli,
        ["db", "replica", "init", "--dir", str(replica["data"]), "--json"],
    )
    assert again.exit_code == 1 and json.loads(again.output)["error"]["code"] == "REPLICA_EXISTS"
    nothing = CliRunner().invoke(
        cli,
        ["db", "replica", "status", "--port", str(free_port()), "--json"],
    )
    assert (
        nothing.exit_code == 1 and json.loads(nothing.output)["error"]["code"] == "REPLICA_FAILED"
    )


def _board(client: TestClient) -> list[str]:
    r = client.get("/v1/leaderboard?period=all")
    assert r.status_code == 200, r.text
    return [item["nickname"] for item in r.json()["items"]]


def test_lagging_reads_use_the_replica_until_too_far_behind_or_stopped(
    env: None,
    monkeypatch: pytest.MonkeyPatch,
    db: psycopg.Connection,
    db_url: str,
    replica: Replica,
) -> None:
    from ox_sidecar.app import create_app

    uid = new_user(db, "ann@example.com")
    db.execute("update crypto.users set nickname = 'Ann' where id = %s", (uid,))
    caught_up(db, replica, db_url)
    standby = psycopg.connect(on_replica(replica, db_url), autocommit=True)
    eventually(lambda: standby.execute("select nickname from crypto.users").fetchone() == ("Ann",))
    # The replica stops replaying (it still receives): a board row written
    # now exists on the primary only.
    standby.execute("select pg_wal_replay_pause()")
    try:
        db.execute(
            "insert into crypto.leaderboard"
            " select 'all', crypto.leaderboard_start('all', (crypto.now() at time zone"
            " 'America/New_York')::date), %s, 30, 3, 0, 0, now()",
            (uid,),
        )
        monkeypatch.setenv("DATABASE_REPLICA_URL", on_replica(replica, db_url))
        monkeypatch.setenv("REPLICA_CHECK_SECONDS", "0")
        monkeypatch.setenv("REPLICA_MAX_LAG_SECONDS", "3600")
        get_settings.cache_clear()
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            # Within an hour behind: the board is the replica's (not yet the row).
            assert _board(client) == []
            # A NUL is the caller's mistake on the replica's path too (422).
            r = client.get("/v1/leaderboard", params={"period": "all", "cursor": "a\x00b"})
            assert r.status_code == 422 and r.json()["code"] == "VALIDATION_FAILED", r.text
        monkeypatch.setenv("REPLICA_MAX_LAG_SECONDS", "0")
        get_settings.cache_clear()
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            # Too far behind: the primary's board.
            assert _board(client) == ["Ann"]
    finally:
        standby.execute("select pg_wal_replay_resume()")
    eventually(
        lambda: standby.execute("select count(*) from crypto.leaderboard").fetchone() == (1,)
    )
    standby.close()

    monkeypatch.setenv("REPLICA_MAX_LAG_SECONDS", "3600")
    monkeypatch.setenv("REPLICA_CHECK_SECONDS", "3600")  # the guard believes it is up
    get_settings.cache_clear()
    report = "/v1/metrics/daily?from=2026-01-01&to=2026-01-31"
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        assert _board(client) == ["Ann"]  # caught up: the replica's, the same
        # The admin reports read there too, and still only for an admin.
        assert client.get(report).status_code == 401
        player = signup(client, "bob@example.com")
        assert client.get(report, headers=bearer(player)).status_code in (401, 403)
        admin = bearer(admin_token(client, "root@example.com"))  # type: ignore[arg-type]
        caught_up(db, replica, db_url)
        assert client.get(report, headers=admin).status_code == 200
        replicas.stop(replica["settings"], replica["data"])
        try:
            # Stopped under the API: the reads fall back, no error.
            assert _board(client) == ["Ann"]
            assert client.get(report, headers=admin).status_code == 200
            r = client.get("/v1/settlements/2026-03-02")
            assert r.status_code in (200, 404), r.text
            assert r.json().get("code") != "DATABASE_UNAVAILABLE"
        finally:
            replicas.start(replica["settings"], replica["data"])


def test_a_silent_primary_is_lag_the_worker_heartbeat_is_freshness(
    env: None,
    monkeypatch: pytest.MonkeyPatch,
    db: psycopg.Connection,
    db_url: str,
    replica: Replica,
) -> None:
    """Received = replayed proves nothing when nothing is sent (an idle
    primary, a dead link whose receiver has not timed out yet): the lag is
    the age of the last replayed commit, which the worker's heartbeat keeps
    young while the replica keeps up."""
    import asyncio

    from ox_sidecar.db import REPLICA_LAG, new_replica
    from ox_sidecar.worker import beat_replicas

    monkeypatch.setenv("DATABASE_REPLICA_URL", on_replica(replica, db_url))
    monkeypatch.setenv("REPLICA_CHECK_SECONDS", "0")
    monkeypatch.setenv("REPLICA_MAX_LAG_SECONDS", "1")
    get_settings.cache_clear()

    def guard() -> tuple[bool, float | None]:
        """What each API process decides: the replica, or the primary."""

        async def look() -> tuple[bool, float | None]:
            guard = new_replica(get_settings())
            assert guard is not None
            await guard.open()
            try:
                return await guard.usable(), guard.lag
            finally:
                await guard.close()

        return asyncio.run(look())

    caught_up(db, replica, db_url)  # this test's database is there
    # The API's login on the replica, as the guard asks.
    standby = psycopg.connect(on_replica(replica, db_url, "authenticator"), autocommit=True)

    def lag() -> float | None:
        row = standby.execute(REPLICA_LAG).fetchone()
        assert row is not None and row[0] is True
        return row[1]

    # The worker beats (as its login, every 0.2 s here): close behind, used.
    stop = threading.Event()
    beating = threading.Thread(
        target=beat_replicas, args=(make_conninfo(db_url, user="oxp_service"), 0.2, stop)
    )
    beating.start()
    try:
        eventually(lambda: (value := lag()) is not None and value < 0.5)
        assert guard()[0] is True
        assert db.execute("select count(*) from crypto.replica_heartbeat").fetchone() == (1,)
    finally:
        stop.set()
        beating.join()

    # The worker stops and the primary is idle: the receiver streams and has
    # replayed all it received (the old reading: 0 s behind), yet the lag grows
    # and the reads go to the primary.
    owner = psycopg.connect(on_replica(replica, db_url), autocommit=True)  # sees the receiver

    def silent_and_refused() -> bool:
        receiver = owner.execute(
            "select status, pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"
            " from pg_stat_wal_receiver"
        ).fetchone()
        usable, seen = guard()
        # (pg_cron's jobs commit at each minute: looked at again after them.)
        return receiver == ("streaming", True) and not usable and seen is not None and seen > 1

    eventually(silent_and_refused, seconds=15)
    owner.close()

    # It beats again: fresh again.
    stop = threading.Event()
    beating = threading.Thread(
        target=beat_replicas, args=(make_conninfo(db_url, user="oxp_service"), 0.2, stop)
    )
    beating.start()
    try:
        eventually(lambda: (value := lag()) is not None and value < 0.5)
        assert guard()[0] is True
    finally:
        stop.set()
        beating.join()
        standby.close()

    # Only the worker's login (and the owner) beats: the API's roles cannot.
    for role in ("anon", "app_user", "app_admin", "auditor"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute(f"set local role {role}")
            db.execute("select crypto.replica_heartbeat()")
