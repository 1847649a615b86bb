"""A real PostgreSQL for every test: one throwaway cluster per run (or the one
`make test` started), one migrated template, and a fresh database per test."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql.janitor import DatabaseJanitor

from ox_sidecar.calendar_sync import nyse_sessions
from ox_sidecar.config import get_settings, get_worker_settings
from ox_sidecar.migrate import migrate
from support import free_port, running_api

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "oxp_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def cluster() -> Iterator[dict[str, Any]]:
    """Connection parts of the cluster: TEST_DATABASE_URL's, or our own."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        parts = conninfo_to_dict(url)
        yield {"host": parts.get("host", "127.0.0.1"), "port": int(parts.get("port", 5432))}
        return
    work = Path(tempfile.mkdtemp(prefix="oxp-pytest."))
    work.chmod(0o755)
    port = free_port()
    script = ROOT / "scripts" / "localpg.sh"
    subprocess.run([script, "start", work / "pg", str(port), "oxp", "--throwaway"], check=True)
    try:
        yield {"host": "127.0.0.1", "port": port}
    finally:
        subprocess.run([script, "stop", work / "pg"], check=False)
        shutil.rmtree(work, ignore_errors=True)


def url_for(cluster: dict[str, Any], dbname: str, user: str = "postgres") -> str:
    return make_conninfo(host=cluster["host"], port=cluster["port"], user=user, dbname=dbname)


@pytest.fixture(scope="session")
def template(cluster: dict[str, Any]) -> Iterator[str]:
    janitor = DatabaseJanitor(
        user="postgres", host=cluster["host"], port=cluster["port"], dbname=TEMPLATE
    )
    janitor.drop()
    janitor.init()
    migrate(url_for(cluster, TEMPLATE), "development")
    try:
        yield TEMPLATE
    finally:
        janitor.drop()


@pytest.fixture
def db_url(cluster: dict[str, Any], template: str) -> Iterator[str]:
    name = f"oxp_t{os.getpid()}_{next(_counter)}"
    janitor = DatabaseJanitor(
        user="postgres",
        host=cluster["host"],
        port=cluster["port"],
        dbname=name,
        template_dbname=template,
    )
    janitor.init()
    try:
        yield url_for(cluster, name)
    finally:
        janitor.drop()


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """The owner's connection, autocommit: what a test inspects the truth with."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def jwt_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "jwt-private.pem"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, db_url: str, jwt_key_file: Path) -> Iterator[None]:
    """Settings for the app and the CLI under test: this test's database."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("API_POOL_SIZE", "4")
    monkeypatch.setenv("ADMIN_API_POOL_SIZE", "2")
    monkeypatch.setenv("JWT_PRIVATE_KEY_FILE", str(jwt_key_file))
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    get_worker_settings.cache_clear()
    yield
    get_settings.cache_clear()
    get_worker_settings.cache_clear()


@pytest.fixture
def client(env: None) -> Iterator[TestClient]:
    from ox_sidecar.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def live_client(env: None) -> Iterator[httpx.Client]:
    """The API as a real process (uvicorn), for the tests that must cross a real socket."""
    with running_api() as base, httpx.Client(base_url=base, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def calendar_2026() -> str:
    return json.dumps(nyse_sessions(2025, 2027))


@pytest.fixture
def calendar(db: psycopg.Connection, calendar_2026: str) -> None:
    db.execute("select crypto.sync_calendar(%s::jsonb)", (calendar_2026,))
