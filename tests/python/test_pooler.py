"""PgBouncer in transaction mode between the API and PostgreSQL, on real
processes: one server connection (pool size 1) serves two users in turn and
neither ever sees the other's role or claims; psycopg prepares nothing
through it; the worker and the CLI keep their direct URL."""

from __future__ import annotations

import asyncio
import json
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ox_sidecar import db as api_db
from ox_sidecar.config import Settings
from ox_sidecar.db import new_pool
from ox_sidecar.gate import Gate
from support import bearer, free_port, running_api, signup

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pgbouncer.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("pgbouncer") is None and not Path("/usr/sbin/pgbouncer").exists(),
    reason="Debian's pgbouncer (scripts/test.sh installs it)",
)


@pytest.fixture
def bouncer(cluster: dict[str, Any]) -> Iterator[int]:
    """PgBouncer on a free port with ONE server connection per login and
    database (its folder readable by `postgres`, whom it runs as under root)."""
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="oxp-pgbouncer."))
    work.chmod(0o755)
    subprocess.run([SCRIPT, "start", work, str(port), str(cluster["port"]), "1"], check=True)
    try:
        yield port
    finally:
        subprocess.run([SCRIPT, "stop", work], check=False)
        shutil.rmtree(work, ignore_errors=True)


def via(bouncer: int, db_url: str, user: str) -> str:
    dbname = conninfo_to_dict(db_url)["dbname"]
    return make_conninfo(host="127.0.0.1", port=bouncer, user=user, dbname=dbname)


SEE = "select current_user::text, current_setting('request.jwt.claims', true), pg_backend_pid()"


def become(conn: psycopg.Connection, sub: str) -> tuple[Any, ...]:
    """One request as the shim makes it: role and claims for its transaction."""
    with conn.transaction():
        conn.execute(
            "select set_config('role', 'app_user', true), set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": sub, "role": "app_user"}),),
        )
        row = conn.execute(SEE).fetchone()
    assert row is not None
    return tuple(row)


def look(conn: psycopg.Connection) -> tuple[Any, ...]:
    with conn.transaction():
        row = conn.execute(SEE).fetchone()
    assert row is not None
    return tuple(row)


def test_role_and_claims_end_with_the_transaction_on_a_shared_server_connection(
    db_url: str, bouncer: int
) -> None:
    url = via(bouncer, db_url, "authenticator")
    with (
        psycopg.connect(url, prepare_threshold=None) as ann,
        psycopg.connect(url, prepare_threshold=None) as bob,
    ):
        seen = []
        for _ in range(3):
            seen.append(become(ann, "ann"))
            after_ann = look(bob)
            seen.append(become(bob, "bob"))
            after_bob = look(ann)
            # The next client on the same server connection starts clean.
            assert after_ann[:2] == ("authenticator", "")
            assert after_bob[:2] == ("authenticator", "")
            seen += [after_ann, after_bob]
        assert {r[0] for r in seen} == {"app_user", "authenticator"}
        assert [json.loads(r[1])["sub"] for r in seen if r[0] == "app_user"] == ["ann", "bob"] * 3
        # All of it on one PostgreSQL backend: the interleaving really was shared.
        assert len({r[2] for r in seen}) == 1


def test_prepared_statements_are_off_through_the_bouncer(db_url: str, bouncer: int) -> None:
    """Why the API sets prepare_threshold=None behind PgBouncer 1.18: two
    clients preparing on the one server connection collide."""
    url = via(bouncer, db_url, "authenticator")
    query = "select 1 where %s::int = 1"
    with (
        psycopg.connect(url, prepare_threshold=0) as a,
        psycopg.connect(url, prepare_threshold=0) as b,
    ):
        a.execute(query, (1,))
        a.commit()
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            b.execute(query, (1,))
    with (
        psycopg.connect(url, prepare_threshold=None) as a,
        psycopg.connect(url, prepare_threshold=None) as b,
    ):
        for _ in range(10):
            for conn in (a, b):
                assert conn.execute(query, (1,)).fetchone() == (1,)
                conn.commit()
    settings = Settings(database_pooler="pgbouncer")
    assert settings.api_prepare_threshold is None
    assert Settings().api_prepare_threshold == 5


def _until_sync(pg: Any) -> None:
    """Read a pipeline's results up to its Sync's (ReadyForQuery), within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "no answer to the Sync"
        while pg.is_busy():
            assert time.monotonic() < deadline, "no answer to the Sync"
            select.select([pg.socket], [], [], 1)
            pg.consume_input()
        result = pg.get_result()
        if result is not None and result.status == pq.ExecStatus.PIPELINE_SYNC:
            return


def test_a_flush_after_the_sync_pins_the_one_server_connection(db_url: str, bouncer: int) -> None:
    """Why the API never pipelines through PgBouncer (db.new_pool): psycopg
    follows a pipeline's last Sync with a Flush when the Sync's answer is not
    in yet. If PgBouncer 1.18 has already handed the server back, the Flush
    takes it again and waits for an answer PostgreSQL never sends: every
    other client queues until this one goes (CI hung so, 2026-11-27)."""
    url = via(bouncer, db_url, "authenticator")
    late = psycopg.connect(url, prepare_threshold=None, autocommit=True, connect_timeout=10)
    # Connected (and answered once) before the pin: what waits below is its
    # query, never its connection on a slow machine.
    other = psycopg.connect(url, prepare_threshold=None, autocommit=True, connect_timeout=10)
    try:
        assert other.execute("select 1").fetchone() == (1,)
        pg = late.pgconn
        pg.enter_pipeline_mode()
        pg.send_query_params(b"select 1", None)
        pg.pipeline_sync()
        pg.flush()
        _until_sync(pg)  # answered: the server is back in PgBouncer's pool
        pg.send_flush_request()  # ... and this takes it for good
        pg.flush()
        with ThreadPoolExecutor(max_workers=1) as threads:
            asked = threads.submit(lambda: other.execute("select 2").fetchone())
            with pytest.raises(FutureTimeout):
                asked.result(timeout=3)
            late.close()  # PgBouncer drops the pinned server and opens another
            assert asked.result(timeout=30) == (2,)
    finally:
        late.close()
        other.close()


def test_the_api_sends_no_pipeline_through_the_bouncer(
    db_url: str, bouncer: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's calls behind PgBouncer (a plain one and one counted by the
    rate limiter) reach the database with psycopg's pipeline mode never
    entered; straight to PostgreSQL, its pools still pipeline."""
    url = via(bouncer, db_url, "authenticator")
    behind = new_pool(
        url, 1, prepare_threshold=Settings(database_pooler="pgbouncer").api_prepare_threshold
    )
    assert behind.pipelined is False
    assert new_pool(db_url, 1).pipelined is True

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a pipeline through PgBouncer")

    monkeypatch.setattr(psycopg.AsyncConnection, "pipeline", refuse)
    query = sql.SQL("select current_user::text, 1 as r")

    async def calls() -> tuple[Any, Any]:
        await behind.open(wait=True)
        try:
            plain = await api_db._run(behind, 5000, "anon", "", query, ())
            gate = Gate(ip="192.0.2.7", user=None, kinds=[])
            counted = await api_db._run_gated(behind, 5000, "anon", "", query, (), gate)
        finally:
            await behind.close()
        return plain, counted

    plain, counted = asyncio.run(calls())
    assert plain == ("anon", 1)
    assert counted == ("anon", 1)


def test_two_players_interleaved_through_the_api_see_only_themselves(
    env: None, db_url: str, db: psycopg.Connection, bouncer: int
) -> None:
    api_env = {
        "API_DATABASE_URL": via(bouncer, db_url, "authenticator"),
        "ADMIN_API_DATABASE_URL": via(bouncer, db_url, "admin_authenticator"),
        "DATABASE_POOLER": "pgbouncer",
        "API_POOL_SIZE": "8",
    }
    with running_api(env=api_env) as base, httpx.Client(base_url=base, timeout=30) as client:
        tokens = {e: bearer(signup(client, e)) for e in ("ann@example.com", "bob@example.com")}  # type: ignore[arg-type]

        def ask(i: int) -> tuple[str, str]:
            email = "ann@example.com" if i % 2 else "bob@example.com"
            r = client.get("/v1/users/me", headers=tokens[email])
            assert r.status_code == 200, r.text
            return email, r.json()["email"]

        with ThreadPoolExecutor(max_workers=8) as threads:
            answers = list(threads.map(ask, range(30)))  # within the rate limits
        assert all(asked == got for asked, got in answers)
        assert {asked for asked, _ in answers} == {"ann@example.com", "bob@example.com"}
        dbname = conninfo_to_dict(db_url)["dbname"]
        servers = db.execute(
            "select count(*) from pg_stat_activity where usename = 'authenticator'"
            " and datname = %s",
            (dbname,),
        ).fetchone()
        assert servers == (1,)  # eight API connections, one PostgreSQL backend


def test_the_worker_and_the_cli_bypass_the_bouncer(db_url: str, bouncer: int) -> None:
    """LISTEN/NOTIFY and advisory locks need a session: the worker and the
    CLI use DATABASE_URL / WORKER_DATABASE_URL, never the API's URL, and the
    bouncer would not let their logins in."""
    settings = Settings(
        database_url=db_url,
        api_database_url=via(bouncer, db_url, "authenticator"),
        admin_api_database_url=via(bouncer, db_url, "admin_authenticator"),
        database_pooler="pgbouncer",
    )
    direct = str(conninfo_to_dict(db_url)["port"])
    assert conninfo_to_dict(settings.worker_url)["port"] == direct
    assert conninfo_to_dict(settings.database_url)["port"] == direct
    assert conninfo_to_dict(settings.api_url)["port"] == str(bouncer)
    for login in ("oxp_service", "oxp_operator", "postgres"):
        with pytest.raises(psycopg.OperationalError, match="authentication failed"):
            psycopg.connect(via(bouncer, db_url, login), connect_timeout=5)
    # The worker's LISTEN on its direct URL hears a NOTIFY from elsewhere.
    with psycopg.connect(settings.worker_url, autocommit=True) as worker:
        worker.execute("listen oxp_pooler_probe")
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("notify oxp_pooler_probe, 'hello'")
        heard = [n.payload for n in worker.notifies(timeout=5, stop_after=1)]
    assert heard == ["hello"]
