"""A streaming read replica on this machine (`oxp db replica init|status`):
pg_basebackup -R from the primary into a folder of ours, started on its own
port. Production runs its replica elsewhere; the API only needs
DATABASE_REPLICA_URL (README "Read replica")."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .backups import BackupError, _run
from .config import Settings
from .db import REPLICA_LAG


class ReplicaError(BackupError):
    pass


def replica_url(settings: Settings, port: int | None = None) -> str:
    """DATABASE_REPLICA_URL, or the local replica's: the primary's URL on its port."""
    if settings.database_replica_url and port is None:
        return settings.database_replica_url
    parts = conninfo_to_dict(settings.database_url)
    user, db = parts.get("user", "postgres"), parts.get("dbname", "oxp")
    return f"postgresql://{user}@127.0.0.1:{port or settings.replica_port}/{db}"


def marker_slot(data: Path) -> str:
    """The name that marks a local replica's folder on its primary."""
    return "oxp_replica_" + hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:16]


def init(settings: Settings, data: Path, port: int) -> dict[str, Any]:
    """A copy of the primary that follows it (primary_conninfo and
    standby.signal from -R), hot standby on `port`, started."""
    data = data.resolve()
    if (data / "PG_VERSION").exists():
        raise ReplicaError("REPLICA_EXISTS", f"{data} holds a cluster already")
    primary = conninfo_to_dict(settings.database_url)
    data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and settings.pg_os_user != "root":
        shutil.chown(data, settings.pg_os_user, settings.pg_os_user)
    data.chmod(0o700)
    # The primary's tablespaces (oxp_cold) into folders of the replica's own:
    # on this machine their paths would be the primary's folders.
    mapping = []
    with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
        spaces = conn.execute(
            "select spcname, pg_tablespace_location(oid) from pg_catalog.pg_tablespace"
            " where spcname not in ('pg_default', 'pg_global')"
        ).fetchall()
        # Where a standby of this cluster lives, for `oxp db cold-storage
        # init`: a stopped one is seen nowhere else. An unreserved slot,
        # never used: it keeps no WAL.
        conn.execute(
            "select pg_create_physical_replication_slot(%s, false)"
            " where not exists (select from pg_replication_slots where slot_name = %s)",
            (marker_slot(data), marker_slot(data)),
        )
    for name, location in spaces:
        folder = data.parent / f"{data.name}.tablespaces" / name
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and settings.pg_os_user != "root":
            for made in (folder.parent, folder):
                shutil.chown(made, settings.pg_os_user, settings.pg_os_user)
        mapping.append(f"--tablespace-mapping={location}={folder}")
    try:
        _run(
            settings,
            [
                str(settings.pg_bin_dir / "pg_basebackup"),
                *mapping,
                "-h",
                str(primary.get("host", "127.0.0.1")),
                "-p",
                str(primary.get("port", 5432)),
                "-U",
                str(primary.get("user", "postgres")),
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
            "REPLICA_FAILED",
        )
        # Its own port and socket; the primary's log and socket locks stay
        # behind. hot_standby_feedback: long reads here are not cancelled by
        # the primary's vacuum (at the cost of some bloat there).
        for stale in [*data.glob(".s.PGSQL.*"), data / "server.log"]:
            stale.unlink(missing_ok=True)
        extra = (
            f"\nport = {port}\nunix_socket_directories = '{data}'\n"
            "hot_standby = on\nhot_standby_feedback = on\n"
        )
        with (data / "postgresql.auto.conf").open("a") as conf:
            conf.write(extra)
        start(settings, data)
    except BackupError as exc:
        raise ReplicaError("REPLICA_FAILED", exc.detail) from exc
    return {"data": str(data), "port": port, "url": replica_url(settings, port)}


def start(settings: Settings, data: Path) -> None:
    pg_ctl = str(settings.pg_bin_dir / "pg_ctl")
    log = str(data / "server.log")
    _run(
        settings, [pg_ctl, "-D", str(data), "-l", log, "-w", "-t", "120", "start"], "REPLICA_FAILED"
    )


def stop(settings: Settings, data: Path) -> None:
    pg_ctl = str(settings.pg_bin_dir / "pg_ctl")
    _run(settings, [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], "REPLICA_FAILED")


def status(settings: Settings, url: str) -> dict[str, Any]:
    """The replica's state and how far behind it is: in bytes (the primary's
    WAL position minus what the replica replayed) and in seconds (as the
    API's lag guard sees it; null when it receives nothing)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(REPLICA_LAG).fetchone()
            lsn = conn.execute(
                "select pg_last_wal_replay_lsn()::text, (select status from pg_stat_wal_receiver)"
            ).fetchone()
    except psycopg.OperationalError as exc:
        return {"state": "down", "url": _safe(url), "detail": " ".join(str(exc).split())}
    assert row is not None and lsn is not None
    in_recovery, lag_seconds = row
    replayed, receiver = lsn
    lag_bytes = None
    if in_recovery and replayed is not None:
        try:
            with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=5) as p:
                found = p.execute(
                    "select pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint", (replayed,)
                ).fetchone()
            lag_bytes = max(int(found[0]), 0) if found else None
        except psycopg.OperationalError:
            lag_bytes = None  # the primary is down: nothing to compare with
    state = "not a replica" if not in_recovery else (receiver or "disconnected")
    return {
        "state": state,
        "url": _safe(url),
        "lag_bytes": lag_bytes,
        "lag_seconds": lag_seconds,
        "max_lag_seconds": settings.replica_max_lag_seconds,
    }


def _safe(url: str) -> str:
    parts = conninfo_to_dict(url)
    parts.pop("password", None)
    return make_conninfo("", **parts)
