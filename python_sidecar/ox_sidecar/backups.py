"""pgBackRest, driven for `oxp db` and the worker: backups, their list, a
point-in-time restore of the whole cluster, and the restore drill into a
throwaway cluster. No rule of the game lives here: this is the machine's
side of keeping the books (the cluster's files), which SQL cannot reach."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from .config import Settings, get_worker_settings


class BackupError(Exception):
    """A refusal or failure with a stable code (crypto.error_codes' names)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def _as_owner(settings: Settings, cmd: list[str]) -> list[str]:
    """pgBackRest and pg_ctl run as the cluster's OS user, never as root."""
    if os.geteuid() == 0 and settings.pg_os_user != "root":
        return ["runuser", "-u", settings.pg_os_user, "--", *cmd]
    return cmd


def _run(settings: Settings, cmd: list[str], code: str, timeout: float = 3600) -> str:
    try:
        # An argument list, no shell: the programs come from the settings.
        done = subprocess.run(  # noqa: S603
            _as_owner(settings, cmd), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(code, f"{cmd[0]}: {exc}") from exc
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split())[-800:]
        raise BackupError(code, f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''}: {said}")
    return done.stdout


def pgbackrest(settings: Settings, command: str, *options: str, code: str = "BACKUP_FAILED") -> str:
    if not settings.backup_config.is_file():
        raise BackupError(
            "BACKUP_NOT_CONFIGURED",
            f"no pgBackRest configuration at {settings.backup_config} (BACKUP_CONFIG);"
            " `make run` writes one (scripts/backups.sh setup)",
        )
    return _run(
        settings,
        [
            "pgbackrest",
            f"--config={settings.backup_config}",
            f"--stanza={settings.backup_stanza}",
            *options,
            command,
        ],
        code,
    )


def _utc(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def backups(settings: Settings) -> list[dict[str, Any]]:
    """The backups in the repository, oldest first: when, how big, the WAL
    range, and from when each can be restored (its end; WAL replays on)."""
    (stanza,) = json.loads(pgbackrest(settings, "info", "--output=json")) or [{}]
    rows = []
    for b in stanza.get("backup", []):
        rows.append(
            {
                "label": b["label"],
                "type": b["type"],
                "started": _utc(b["timestamp"]["start"]),
                "stopped": _utc(b["timestamp"]["stop"]),
                "size_bytes": b["info"]["size"],
                "repo_bytes": b["info"]["repository"]["delta"],
                "wal_start": b["archive"]["start"],
                "wal_stop": b["archive"]["stop"],
                "based_on": b.get("prior"),
                # The stop time is in whole seconds; the backup is consistent
                # at most a second after it.
                "restorable_from": _utc(b["timestamp"]["stop"] + 1),
            }
        )
    return rows


def backup(settings: Settings, kind: str) -> dict[str, Any]:
    """One backup (full, diff or incr), then expiry by the retention settings."""
    if kind not in ("full", "diff", "incr"):
        raise BackupError("VALIDATION_FAILED", f"backup type is full, diff or incr, not {kind}")
    started = time.monotonic()
    pgbackrest(
        settings,
        "backup",
        f"--type={kind}",
        f"--repo1-retention-full={settings.backup_retention_full}",
        f"--repo1-retention-diff={settings.backup_retention_diff}",
    )
    latest = backups(settings)[-1]
    return latest | {"seconds": round(time.monotonic() - started, 1)}


def _connect(url: str, timeout: int = 5) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=timeout)


def _db_reachable(url: str) -> bool:
    try:
        with _connect(url, 3):
            return True
    except psycopg.OperationalError:
        return False


def restorable_range(settings: Settings) -> tuple[dt.datetime, dt.datetime | None]:
    """From the oldest backup's end to the last archived WAL. While the
    database runs, `pgbackrest check` first switches and archives the WAL
    being written, so the range reaches now; when it is down, the end is
    unknown (None) and only the start is enforced."""
    listed = backups(settings)
    if not listed:
        raise BackupError("RESTORE_OUT_OF_RANGE", "there is no backup to restore from")
    oldest = listed[0]["restorable_from"]
    if not _db_reachable(settings.database_url):
        return oldest, None
    pgbackrest(settings, "check", code="ARCHIVE_FAILED")
    with _connect(settings.database_url) as conn:
        row = conn.execute("select now()").fetchone()
    assert row is not None
    return oldest, row[0]


def _pg_ctl(settings: Settings, data: Path, *args: str) -> str:
    cmd = [str(settings.pg_bin_dir / "pg_ctl"), "-D", str(data), *args]
    return _run(settings, cmd, "RESTORE_FAILED")


# Recovery refuses to run with less of these than the server the backup came
# from (pg_controldata records its values): a compose `db` started with
# `-c max_connections=300` on its command line leaves 100 in the copy's
# postgresql.conf, and the drill would fail every time.
_RECORDED = {
    "max_connections": "max_connections setting",
    "max_worker_processes": "max_worker_processes setting",
    "max_wal_senders": "max_wal_senders setting",
    "max_prepared_transactions": "max_prepared_xacts setting",
    "max_locks_per_transaction": "max_locks_per_xact setting",
}


def _as_recorded(settings: Settings, data: Path) -> str:
    """`-c` options giving a restored copy the recorded values of _RECORDED."""
    said = _run(
        settings, [str(settings.pg_bin_dir / "pg_controldata"), str(data)], "RESTORE_FAILED"
    )
    values = dict(line.split(":", 1) for line in said.splitlines() if ":" in line)
    return "".join(
        f" -c {name}={values[label].strip()}"
        for name, label in _RECORDED.items()
        if values.get(label, "").strip().isdigit()
    )


def _clear_socket_locks(data: Path) -> None:
    """The local cluster keeps its socket in the data folder, so a backup
    holds the lock file of the server it was taken from; restored, it would
    stop the restored server from starting."""
    for lock in data.glob(".s.PGSQL.*.lock"):
        lock.unlink()


def _running(settings: Settings, data: Path) -> bool:
    try:
        _pg_ctl(settings, data, "status")
    except BackupError:
        return False
    return True


def _wait_promoted(url: str, timeout: float = 600) -> None:
    """pg_ctl returns once reads are served; writes wait for the promotion."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _connect(url, 3) as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
                if row == (False,):
                    return
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise BackupError("RESTORE_FAILED", f"not promoted within {timeout:.0f} s")
        time.sleep(0.2)


def restore(settings: Settings, target: dt.datetime | None) -> dict[str, Any]:
    """Stop the cluster, restore (files that differ only: --delta), replay
    WAL to `target` (None: to the end of the archive) and promote, start.

    Replay follows the timeline of the backup restored ('current'): a
    restore to a time starts a new timeline, and `--latest` afterwards
    returns to the end of the line before it (every archived commit), until
    a new backup is taken on the new line."""
    oldest, newest = restorable_range(settings)
    if target is not None:
        target = target.astimezone(dt.UTC)
        if target < oldest or (newest is not None and target > newest):
            end = newest.isoformat() if newest else "the last archived WAL"
            raise BackupError(
                "RESTORE_OUT_OF_RANGE",
                f"{target.isoformat()} is outside the restorable range"
                f" {oldest.isoformat()} .. {end}",
            )
    started = time.monotonic()
    data = settings.pg_data_dir
    if _running(settings, data):
        _pg_ctl(settings, data, "-m", "fast", "-w", "-t", "120", "stop")
    # To the end of the archive, PostgreSQL promotes by itself.
    options = ["--delta", "--target-timeline=current", "--type=default"]
    if target is not None:
        options[-1:] = ["--type=time", f"--target={target.isoformat(sep=' ')}"]
        options.append("--target-action=promote")
    log = data / "server.log"
    if log.exists():
        # A delta restore removes what the backup does not hold: keep the
        # log of the server being replaced beside the data folder.
        shutil.move(log, data.parent / f"server-before-restore-{int(time.time())}.log")
    pgbackrest(settings, "restore", *options, code="RESTORE_FAILED")
    _clear_socket_locks(data)
    _pg_ctl(settings, data, "-l", str(log), "-w", "-t", "600", "start")
    _wait_promoted(settings.database_url)
    return {
        "target": target.isoformat() if target else "latest",
        "restorable_from": oldest.isoformat(),
        "seconds": round(time.monotonic() - started, 1),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backup_tablespaces(settings: Settings, label: str) -> set[str]:
    """The tablespaces one backup holds (pgBackRest's info of that set)."""
    (stanza,) = json.loads(pgbackrest(settings, "info", f"--set={label}", "--output=json")) or [{}]
    (held,) = [b for b in stanza.get("backup", []) if b["label"] == label] or [{}]
    return {t["name"] for t in held.get("tablespace") or []}


def live_tablespaces(settings: Settings) -> set[str]:
    """The cluster's own tablespaces (oxp_cold, or an operator's)."""
    with _connect(settings.database_url) as conn:
        rows = conn.execute(
            "select spcname from pg_catalog.pg_tablespace"
            " where spcname not in ('pg_default', 'pg_global')"
        ).fetchall()
    return {name for (name,) in rows}


def verify(settings: Settings) -> dict[str, Any]:
    """The restore drill: the latest backup and all archived WAL into a
    throwaway cluster on a free port (archiving off: it never writes to the
    repository), then the books' own checks there, and the digests of the
    ledger months frozen for cold storage (what the backup holds of them).

    Tablespaces are restored into the drill's folder, never to where the
    live cluster keeps them. A backup older than a live tablespace is
    refused: replaying its CREATE TABLESPACE from the WAL would use the
    live folder (PostgreSQL empties it first)."""
    started = time.monotonic()
    listed = backups(settings)
    if not listed:
        raise BackupError("BACKUP_FAILED", "there is no backup to verify")
    missing = live_tablespaces(settings) - backup_tablespaces(settings, listed[-1]["label"])
    if missing:
        raise BackupError(
            "BACKUP_FAILED",
            f"the latest backup ({listed[-1]['label']}) is older than the tablespace(s)"
            f" {', '.join(sorted(missing))}: replaying their creation would use the live"
            " cluster's folder; take a full backup (`oxp db backup --type full`), then drill",
        )
    work = Path(tempfile.mkdtemp(prefix="oxp-verify."))
    work.chmod(0o755)
    data, spaces = work / "pg", work / "tablespaces"
    for folder in (data, spaces):
        folder.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(folder, settings.pg_os_user, settings.pg_os_user)
    port = _free_port()
    dbname = conninfo_to_dict(settings.database_url).get("dbname", "oxp")
    try:
        pgbackrest(
            settings,
            "restore",
            f"--pg1-path={data}",
            "--archive-mode=off",
            f"--tablespace-map-all={spaces}",
            "--type=default",
            code="RESTORE_FAILED",
        )
        _clear_socket_locks(data)
        server = f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data}"
        server += f" -c cron.host={data}" + _as_recorded(settings, data)
        log = str(data / "server.log")
        _pg_ctl(settings, data, "-o", server, "-l", log, "-w", "-t", "600", "start")
        url = make_conninfo(host="127.0.0.1", port=port, user="postgres", dbname=dbname)
        _wait_promoted(url)
        with _connect(url) as conn:
            violations = conn.execute(
                "select coalesce(json_agg(v), '[]') from crypto.integrity_violations() as v"
            ).fetchone()[0]  # type: ignore[index]
            audit = conn.execute("select crypto.audit_verify()").fetchone()[0]  # type: ignore[index]
            entries = conn.execute("select count(*) from crypto.ledger_entries").fetchone()[0]  # type: ignore[index]
            cold = conn.execute(
                "select case when to_regprocedure('crypto.cold_backup_digests()') is not null"
                " then crypto.cold_backup_digests() else '[]' end"
            ).fetchone()[0]  # type: ignore[index]
    finally:
        with contextlib.suppress(BackupError):
            _pg_ctl(settings, data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(work, ignore_errors=True)
    return {
        "ok": violations == [] and bool(audit.get("ok")),
        "backup": listed[-1]["label"],
        "ledger_entries": entries,
        "cold_months": cold,
        "violations": violations,
        "audit": audit,
        "seconds": round(time.monotonic() - started, 1),
    }


def run_job(conn: psycopg.Connection, payload: dict[str, Any]) -> None:
    """The worker's handler for backup.full/diff/incr/verify (enqueued by
    pg_cron): run it, report it to crypto.record_backup (job_runs, the
    alert), and raise on failure so the queue retries it."""
    kind = payload["type"]
    started = dt.datetime.now(dt.UTC)
    settings = get_worker_settings()
    try:
        done = verify(settings) if kind == "verify" else backup(settings, kind)
    except BackupError as exc:
        conn.execute(
            "select crypto.record_backup(%s, %s, false, %s, %s)",
            (kind, started, Jsonb({"code": exc.code}), exc.detail),
        )
        raise
    ok = bool(done.get("ok", True))
    conn.execute(
        "select crypto.record_backup(%s, %s, %s, %s, %s)",
        (
            kind,
            started,
            ok,
            Jsonb(json.loads(json.dumps(done, default=str))),
            None if ok else "the restored backup does not verify",
        ),
    )
    if not ok:
        raise BackupError("BACKUP_FAILED", f"the restore drill failed: {done}")
    if done.get("cold_months"):
        # The frozen ledger months the restored backup holds, whole: those
        # may now leave the main disk (plpgsql/cold_storage.sql).
        conn.execute(
            "select crypto.cold_backed_up(%s, %s)", (Jsonb(done["cold_months"]), done["backup"])
        )
