"""WORKER_KINDS: compose runs the backups in a worker of their own (beside
the database's files), the rest in the other; neither takes the other's
jobs, and a kind the worker does not know refuses to start it."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ox_sidecar.worker import run_forever, run_once
from support import service


def test_a_worker_takes_only_its_kinds(db: psycopg.Connection, db_url: str) -> None:
    job = service(db, "select crypto.enqueue_job('backup.full', '{}', 'backup.full:kinds')")
    with psycopg.connect(make_conninfo(db_url, user="oxp_service"), autocommit=True) as conn:
        # The other worker's kinds: the backup stays queued, untouched.
        assert (
            run_once(conn, ["eod.fetch", "reward.issue", "email.verify", "alert.deliver"]) is False
        )
    row = db.execute("select status::text, attempts from crypto.jobs where id = %s", (job,))
    assert row.fetchone() == ("queued", 0)


@pytest.mark.parametrize("kinds", [["backup.fulll"], []])
def test_an_unknown_or_empty_kind_list_refuses_to_start(db_url: str, kinds: list[str]) -> None:
    with pytest.raises(ValueError, match="WORKER_KINDS"):
        run_forever(db_url, kinds=kinds)
