"""The pre-0031 job signatures a worker of the previous release still calls
during a rolling deploy (sql/0035), on two real backends: the worker whose
lease ran out and whose job another worker retook changes nothing with its
late answer; the worker that holds the job completes it."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import make_conninfo

from support import service


def test_an_old_worker_cannot_finish_a_job_another_worker_retook(
    db: psycopg.Connection, db_url: str
) -> None:
    job = service(db, "select crypto.enqueue_job('reward.issue', '{}', 'reward.issue:shim')")
    url = make_conninfo(db_url, user="oxp_service")
    with (
        psycopg.connect(url, autocommit=True) as a,
        psycopg.connect(url, autocommit=True) as b,
    ):
        claim = "select (crypto.claim_job(array['reward.issue'])).attempts"
        assert a.execute(claim).fetchone() == (1,)
        # A's vendor call hangs past the lease; B retakes the job.
        db.execute(
            "update crypto.jobs set locked_at = clock_timestamp() - interval '11 minutes'"
            " where id = %s",
            (job,),
        )
        assert b.execute(claim).fetchone() == (2,)

        # A's late answers, with the old signatures: nothing changes.
        assert a.execute("select crypto.fail_job(%s, 'timed out')", (job,)).fetchone() == (None,)
        a.execute("select crypto.complete_job(%s)", (job,))
        row = db.execute(
            "select status::text, attempts, last_error from crypto.jobs where id = %s", (job,)
        )
        assert row.fetchone() == ("running", 2, None)

        # B, an old worker too, completes the attempt it holds.
        b.execute("select crypto.complete_job(%s)", (job,))
        row = db.execute("select status::text from crypto.jobs where id = %s", (job,))
        assert row.fetchone() == ("done",)
