"""`oxp worker` as a real process (issue 10, item 6): it beats its heartbeat
on start, and a NOTIFY from crypto.enqueue_job wakes it long before its
30-second poll, so a queued job is done within seconds."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from support import output_of, service, spawn_oxp

POLL_SECONDS = 30  # run_forever's default: a job done sooner was woken by NOTIFY


def until(check: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


@pytest.fixture
def worker(env: None, db: psycopg.Connection) -> Iterator[subprocess.Popen[bytes]]:
    environ = {k: v for k, v in os.environ.items() if k != "ALERT_WEBHOOK_URL"}
    # A long poll: only the NOTIFY can wake it within the test's wait.
    proc = spawn_oxp("worker", env={**environ, "LOG_LEVEL": "INFO", "WORKER_POLL_SECONDS": "60"})
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_worker_beats_and_wakes_on_notify(
    worker: subprocess.Popen[bytes], db: psycopg.Connection
) -> None:
    def beat() -> Any:
        assert worker.poll() is None, output_of(worker)
        return db.execute(
            "select worker, seen_at, details from crypto.worker_heartbeats"
        ).fetchall()

    [(name, first_seen, details)] = until(beat, 90)  # start-up on a busy machine
    assert name.endswith(f":{worker.pid}")
    assert "alert.deliver" in details["kinds"] and "eod.fetch" in details["kinds"]

    # The worker sleeps in conn.notifies(timeout=30): only the NOTIFY of the
    # enqueue can bring it back within seconds.
    time.sleep(0.5)
    started = time.monotonic()
    job = service(
        db,
        "select crypto.enqueue_job('alert.deliver', %s::jsonb)",
        '{"alert_id": 1, "transition": "opened"}',
    )

    def done() -> Any:
        row = db.execute("select status::text, attempts from crypto.jobs where id = %s", (job,))
        return row.fetchone() == ("done", 1)

    until(done, 10)
    assert time.monotonic() - started < POLL_SECONDS / 3
    # Each wake beats again: the heartbeat moved on.
    [(again,)] = db.execute("select seen_at from crypto.worker_heartbeats").fetchall()
    assert again > first_seen
