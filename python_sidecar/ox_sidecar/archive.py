"""The log archive: a price-fetch log month past its retention is written to
a file in ARCHIVE_DIR before the database drops it (sql/0043,
plpgsql/partition_archive.sql). No rule lives here: SQL says which months are
due, holds a month's writers off while its rows are read, and records the
file and drops the month in that same transaction, which this module lets
commit only once the file is written, synced and read back whole."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import shutil
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import psycopg

from .config import get_worker_settings

log = logging.getLogger("ox_sidecar.archive")


class ArchiveError(Exception):
    """The file did not read back as written: nothing is recorded or dropped."""


@dataclass(frozen=True)
class Archived:
    partition: str
    rows: int
    sha256: str
    path: Path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_back(path: Path) -> tuple[int, str]:
    """Rows and SHA-256 of the file's uncompressed content, from the disk."""
    digest = sha256()
    rows = 0
    with gzip.open(path, "rb") as f:
        for line in f:
            digest.update(line)
            rows += 1
    return rows, digest.hexdigest()


def _place(partial: Path, path: Path) -> None:
    """The written file under its final name, never over an existing one: a
    hard link (fails if the name exists), or on a store without hard links
    an exclusive create and a copy (removed again if the copy fails)."""
    try:
        os.link(partial, path)
    except FileExistsError:
        raise
    except OSError:
        # "xb" fails if the name exists: only a file made here is removed.
        with partial.open("rb") as src, path.open("xb") as dst:
            try:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
            except BaseException:
                path.unlink(missing_ok=True)
                raise


def archive_partition(
    conn: psycopg.Connection, root: Path, parent: str, partition: str
) -> Archived:
    """One due month: its rows as JSON lines (id order, gzip) in a new file
    named by the month and the time, never over an earlier archive (a month
    made again by a late row is archived again, beside the first file).

    The file is removed again on any failure before the commit (nothing was
    recorded); once the commit was tried it is kept whatever happened (a
    commit whose answer was lost may have dropped the month)."""
    folder = root / parent.removeprefix("crypto.")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{partition}.{stamp}.jsonl.gz"
    partial = path.with_name(path.name + ".partial")
    digest = sha256()
    rows = 0
    placed = committing = False
    try:
        with conn.transaction():
            # A server-side cursor: a month is read in batches, not held whole.
            with (
                gzip.open(partial, "wb") as out,
                conn.cursor(name="partition_archive") as cur,
            ):
                cur.execute(
                    "select r::text from crypto.partition_archive_rows(%s) as r", (partition,)
                )
                for (line,) in cur:
                    data = line.encode() + b"\n"
                    out.write(data)
                    digest.update(data)
                    rows += 1
            _fsync(partial)
            _place(partial, path)
            placed = True
            partial.unlink()
            # The new name, and the folders made for it (now or by an earlier
            # attempt that failed before this), survive a crash.
            for d in (folder, root, root.parent):
                _fsync(d)
            if _read_back(path) != (rows, digest.hexdigest()):
                raise ArchiveError(f"{path} does not read back as written")
            conn.execute(
                "select crypto.partition_archived(%s, %s, %s, %s)",
                (partition, rows, digest.hexdigest(), str(path)),
            )
            committing = True
    except BaseException:
        if placed and not committing:
            path.unlink(missing_ok=True)
        raise
    finally:
        partial.unlink(missing_ok=True)
    log.info(
        "partition archived",
        extra={
            "partition": partition,
            "rows": rows,
            "sha256": digest.hexdigest(),
            "path": str(path),
        },
    )
    return Archived(partition, rows, digest.hexdigest(), path)


def archive_due(conn: psycopg.Connection, root: Path) -> list[Archived]:
    """Every month due now, oldest first."""
    due = conn.execute("select parent, partition from crypto.partitions_to_archive()").fetchall()
    return [archive_partition(conn, root, parent, partition) for parent, partition in due]


def run_job(conn: psycopg.Connection, payload: dict[str, Any]) -> None:
    """The worker's handler for partition.archive (enqueued daily by pg_cron).
    In production the archive is cold storage the operator names: the default
    folder (in the application's tree) is refused, and the job fails."""
    settings = get_worker_settings()
    if settings.env == "production" and "archive_dir" not in settings.model_fields_set:
        raise ArchiveError("ARCHIVE_DIR must name the archive's cold storage in production")
    archive_due(conn, settings.archive_dir)
