"""Cold storage of the ledger's old months: the worker's partition.cold job
takes crypto.cold_step one step a transaction, until each due month is
moved or waits for a restore drill (sql/0045, plpgsql/cold_storage.sql).
No rule lives here: SQL says which months are due and what comes next; a
step that could not have its locks at once (55P03) is taken again."""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg import errors

log = logging.getLogger("ox_sidecar.cold")

# A step gives way when a lock it needs is held; tried again this many
# times (0.05 s doubling to 3.2 s between: about a minute in all) before
# the job fails and the queue retries it later.
LOCK_RETRIES = 24


def advance_one(conn: psycopg.Connection, partition: str) -> str:
    """One month's next step, in a transaction of its own (`conn` is
    autocommit), taken again while its locks are held elsewhere."""
    tries = 0
    while True:
        try:
            with conn.transaction():
                step: dict[str, Any] = conn.execute(
                    "select crypto.cold_step(%s)", (partition,)
                ).fetchone()[0]  # type: ignore[index]
        except errors.LockNotAvailable:
            tries += 1
            log.info("cold storage step gave way", extra={"partition": partition, "tries": tries})
            if tries > LOCK_RETRIES:
                raise
            time.sleep(0.05 * 2 ** min(tries, 6))
            continue
        log.info("cold storage step", extra=step)
        return str(step["step"])


def advance(conn: psycopg.Connection, partition: str) -> str:
    """One month's steps until it is moved or waits for a restore drill."""
    while (step := advance_one(conn, partition)) not in ("waiting", "moved"):
        pass
    return step


def move_due(conn: psycopg.Connection) -> list[str]:
    """Every month with a step to take, oldest first."""
    due = conn.execute(
        "select partition from crypto.cold_months_due() where step <> 'wait'"
    ).fetchall()
    done = []
    for (partition,) in due:
        try:
            done.append(advance(conn, partition))
        except psycopg.Error as exc:
            # Moved meanwhile by another partition.cold job (steps take
            # turns, crypto.cold_step): nothing left to do for it here.
            if exc.sqlstate != "OX181":
                raise
    return done


def run_job(conn: psycopg.Connection, payload: dict[str, Any]) -> None:
    """The worker's handler for partition.cold (enqueued daily by pg_cron)."""
    move_due(conn)
