"""The log archive: a price-fetch log month past its retention is written to
a file in ARCHIVE_DIR before the database drops it (sql/0043,
plpgsql/partition_archive.sql). No rule lives here: SQL says which months are
due, holds a month's writers off while its rows are read, and records the
file and drops the month in that same transaction, which this module lets
commit only once the file is written, synced and read back whole."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import os
from dataclasses import dataclass
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
    digest = hashlib.sha256()
    rows = 0
    with gzip.open(path, "rb") as f:
        for line in f:
            digest.update(line)
            rows += 1
    return rows, digest.hexdigest()


def archive_partition(
    conn: psycopg.Connection, root: Path, parent: str, partition: str
) -> Archived:
    """One due month: its rows as JSON lines (id order, gzip) in a new file
    named by the month and the time, never over an earlier archive (a month
    made again by a late row is archived again, beside the first file)."""
    folder = root / parent.removeprefix("crypto.")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{partition}.{stamp}.jsonl.gz"
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    rows = 0
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
            # A hard link fails if the name exists: an archive is never replaced.
            os.link(partial, path)
            partial.unlink()
            _fsync(folder)
            if _read_back(path) != (rows, digest.hexdigest()):
                path.unlink()
                raise ArchiveError(f"{path} does not read back as written")
            conn.execute(
                "select crypto.partition_archived(%s, %s, %s, %s)",
                (partition, rows, digest.hexdigest(), str(path)),
            )
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
    """The worker's handler for partition.archive (enqueued daily by pg_cron)."""
    archive_due(conn, get_worker_settings().archive_dir)
