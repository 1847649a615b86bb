"""Versioned migrations (sql/, applied once, checksummed) then repeatable ones
(plpgsql/, pg_cron/, re-applied every run), all under one advisory lock.

Each versioned file commits on its own, and the repeatable pass after them
in one transaction. Versioned files that the running code cannot outlive
until the repeatable pass commits (they drop a function the pass makes
again, or change a table under the bodies the pass replaces) start with
ATOMIC: a run of them and the repeatable pass are one transaction (a
failure anywhere leaves the database as it was); the files after the run
commit one by one again, and the pass runs once more after them."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from . import environment as environments
from .config import ROOT

LOCK_KEY = 0x0F0A_7E57  # one number for "a migration is running"
# "a migration is running in this cluster", taken in its postgres database
CLUSTER_LOCK_KEY = LOCK_KEY + 1
VERSIONED = "sql"
REPEATABLE = ("plpgsql", "pg_cron")
ATOMIC = "-- migrate: atomic with the repeatable pass"


class MigrationError(Exception):
    pass


@dataclass
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    repeatable: list[str] = field(default_factory=list)


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path, folder: str) -> list[Path]:
    return sorted((root / folder).glob("*.sql"))


def _repeatable_pass(
    conn: psycopg.Connection, root: Path, environment: str, report: MigrationReport
) -> None:
    # Bodies refer to functions defined in later files.
    conn.execute("set local check_function_bodies = off")
    report.repeatable = []
    for folder in REPEATABLE:
        for path in _files(root, folder):
            conn.execute(path.read_text())
            report.repeatable.append(f"{folder}/{path.name}")
    # /ready compares what is applied with what ships.
    conn.execute("grant usage on schema migrations to authenticator")
    conn.execute("grant select on migrations.applied to authenticator")
    conn.execute(
        "update crypto.settings set value = to_jsonb(%s::text) where key = 'environment'",
        (environment,),
    )


def _apply(conn: psycopg.Connection, path: Path, checksum: str) -> None:
    conn.execute(path.read_text())
    conn.execute(
        "insert into migrations.applied (version, checksum) values (%s, %s)",
        (path.name, checksum),
    )


def _apply_each(
    conn: psycopg.Connection, files: list[tuple[Path, str]], report: MigrationReport
) -> None:
    """Each file in a transaction of its own."""
    for path, checksum in files:
        with conn.transaction():
            _apply(conn, path, checksum)
        report.applied.append(path.name)


def migration_files(revision: str, into: Path, root: Path = ROOT) -> None:
    """The migrations of a git revision of this repository, unpacked into
    `into` (a root for migrate): to build a database as an earlier release
    had it and test, or time, the upgrade (tests/python/test_upgrade_ledger.py,
    bench/ledger --convert-from)."""
    archive = into / "release.tar"
    git = shutil.which("git") or "git"
    subprocess.run(  # noqa: S603 (an argument list, no shell)
        [git, "-C", str(root), "archive", "-o", str(archive), revision, VERSIONED, *REPEATABLE],
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()


def pending(conn: psycopg.Connection, root: Path = ROOT) -> list[str]:
    """Versioned files not yet applied (empty means the schema is current)."""
    exists = conn.execute("select to_regclass('migrations.applied') is not null").fetchone()
    done: set[str] = set()
    if exists and exists[0]:
        done = {r[0] for r in conn.execute("select version from migrations.applied")}
    return [p.name for p in _files(root, VERSIONED) if p.name not in done]


@contextmanager
def one_per_cluster(dsn: str) -> Iterator[None]:
    """Roles are the cluster's, and every migration alters and grants them
    (sql/0001, plpgsql/00_*): two databases of one cluster migrated at once
    failed one time in four with "tuple concurrently updated". An advisory
    lock is a database's, so the cluster's is taken in its maintenance
    database, postgres, under a key of its own (a migration of postgres
    itself takes both). A login that cannot reach it migrates under its
    database's lock alone, as before."""
    try:
        conn = psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True)
    except psycopg.OperationalError:
        conn = None
    if conn is None:
        yield
        return
    with conn:  # closing it ends the lock, however the migration ends
        conn.execute("select pg_advisory_lock(%s)", (CLUSTER_LOCK_KEY,))
        yield


def migrate(
    dsn: str, environment: str, root: Path = ROOT, environment_given: bool = True
) -> MigrationReport:
    """`environment` is written to the database at the end; a production
    database is never turned back into development (a migrate run without
    ENV would otherwise do it silently), so that is refused before anything."""
    with one_per_cluster(dsn):
        return _migrate(dsn, environment, root, environment_given)


def _migrate(dsn: str, environment: str, root: Path, environment_given: bool) -> MigrationReport:
    report = MigrationReport()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute("set client_min_messages = warning")
            if environments.of_database(conn) == "production" and environment != "production":
                environments.check("production", environment, environment_given)
            conn.execute("create schema if not exists migrations")
            conn.execute(
                "create table if not exists migrations.applied ("
                " version text primary key, checksum text not null,"
                " applied_at timestamptz not null default now())"
            )
            recorded: dict[str, str] = dict(
                conn.execute("select version, checksum from migrations.applied")
            )
            files = _files(root, VERSIONED)
            unknown = set(recorded) - {p.name for p in files}
            if unknown:
                raise MigrationError(f"applied but missing from {VERSIONED}/: {sorted(unknown)}")
            todo: list[tuple[Path, str]] = []
            for path in files:
                checksum = _checksum(path)
                if path.name in recorded:
                    if recorded[path.name] != checksum:
                        raise MigrationError(
                            f"{VERSIONED}/{path.name} was edited after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                todo.append((path, checksum))
            marked = [p.read_text().startswith(ATOMIC) for p, _ in todo]
            start = marked.index(True) if True in marked else len(todo)
            end = start
            while end < len(todo) and marked[end]:
                end += 1
            _apply_each(conn, todo[:start], report)
            if start < end:
                with conn.transaction():
                    for path, checksum in todo[start:end]:
                        _apply(conn, path, checksum)
                        # Its `set local`s end with it, as with its own commit.
                        conn.execute("reset all")
                        conn.execute("set client_min_messages = warning")
                    _repeatable_pass(conn, root, environment, report)
                report.applied += [path.name for path, _ in todo[start:end]]
            _apply_each(conn, todo[end:], report)
            if end == start or end < len(todo):
                with conn.transaction():
                    _repeatable_pass(conn, root, environment, report)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
    return report


def reset(dsn: str, environment: str, root: Path = ROOT) -> MigrationReport:
    if environment == "production":
        raise MigrationError("db reset is refused in production")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute("set client_min_messages = warning")
            row = conn.execute(
                "select crypto.setting('environment') #>> '{}'"
                " where to_regprocedure('crypto.setting(text)') is not null"
            ).fetchone()
            if row and row[0] == "production":
                raise MigrationError("db reset is refused: the database says it is production")
            has_cron = conn.execute("select to_regclass('cron.job') is not null").fetchone()
            if has_cron and has_cron[0]:
                conn.execute(
                    "select cron.unschedule(jobid) from cron.job where jobname like 'oxp-%'"
                )
            # partman holds pg_partman and its configuration of our partitions.
            conn.execute("drop schema if exists api, audit, crypto, partman, migrations cascade")
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
    return migrate(dsn, environment, root)
