"""The job worker: wakes on NOTIFY (or every poll interval), claims one job at
a time with SKIP LOCKED, runs its handler, and reports success or failure."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from . import alerts, archive, backups, cold, mail
from .config import get_worker_settings
from .db import connection_lost
from .eod import fetch_day, provider_named
from .tokens import new_refresh_token
from .vendor import VendorRefused, VendorUnavailable, VendorUnknown, vendor_for

log = logging.getLogger("ox_sidecar.worker")

Handler = Callable[[psycopg.Connection, dict[str, Any]], None]

# The job being run and the claim's attempt (its fencing token), for a
# handler whose SQL must check it still holds the job (reward_issue).
CLAIM: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("CLAIM")


def eod_fetch(conn: psycopg.Connection, payload: dict[str, Any]) -> None:
    """Closes for a finished day; raising makes the queue retry with backoff.
    Once the day is settled the job is done: it finishes without fetching."""
    day = dt.date.fromisoformat(payload["trading_day"])
    needed = conn.execute("select crypto.eod_fetch_needed(%s)", (day,)).fetchone()
    if needed is not None and needed[0] is False:
        log.info("eod.fetch: day already settled, nothing to fetch", extra={"day": str(day)})
        return
    settings = get_worker_settings()
    provider = provider_named(
        settings.eod_provider, settings.eod_csv_file, settings.eod_fallback, settings.stooq_url
    )
    report = fetch_day(conn, provider, day)
    if report.missing:
        raise RuntimeError(f"still missing: {', '.join(report.missing)}")


def reward_issue(conn: psycopg.Connection, payload: dict[str, Any]) -> None:
    """Ask the vendor for one redemption; its answer becomes ISSUED or FAILED in
    SQL, no answer UNKNOWN (then the job is retried: the vendor is asked again
    with the same idempotency key, and answers for the voucher it may have made).

    Before the call, the mark that it may reach the vendor is committed
    (crypto.redemption_sending): if this process dies after the vendor made the
    voucher, no cancel, and no refusal of a later call, refunds it. The mark
    also checks this attempt still holds the job, and stretches its claim over
    the call's timeouts. The claim is fenced on the backend too (jobs.claimed_pid):
    run_once claims on this same connection, which is direct (never PgBouncer)."""
    redemption_id = payload["redemption_id"]
    job_id, attempt = CLAIM.get()
    vendor = vendor_for(conn, get_worker_settings())
    row = conn.execute(
        "select crypto.redemption_sending(%s, %s, %s, %s::numeric)",
        (redemption_id, job_id, attempt, vendor.call_seconds),
    ).fetchone()
    redemption = row[0] if row else None
    if redemption is None:
        return  # cancelled or resolved meanwhile, or finished by an earlier attempt
    call = redemption["call"]
    try:
        ref = vendor.issue(redemption)
    except VendorRefused as exc:
        conn.execute(
            "select crypto.redemption_refused(%s, %s, %s, %s, %s)",
            (redemption_id, job_id, attempt, call, str(exc)),
        )
        return
    except VendorUnknown as exc:
        conn.execute("select crypto.redemption_unknown(%s, %s)", (redemption_id, str(exc)))
        raise
    except VendorUnavailable as exc:
        # No connection was made: the request never left, and the mark goes
        # (if it is the only one). Any other failure keeps it (raised as is:
        # VendorRetryLater, a 4xx, is retried with the mark standing).
        conn.execute(
            "select crypto.redemption_not_sent(%s, %s, %s, %s, %s)",
            (redemption_id, job_id, attempt, call, str(exc)),
        )
        raise
    try:
        conn.execute("select crypto.redemption_issued(%s, %s)", (redemption_id, ref))
    except Exception:
        # The voucher exists; whatever failed here, no cancel may refund it.
        with contextlib.suppress(psycopg.Error):
            conn.execute(
                "select crypto.redemption_unknown(%s, %s)",
                (redemption_id, "issued by the vendor, not recorded yet"),
            )
        raise


def check_vendor(conn: psycopg.Connection) -> None:
    """At startup: a real vendor in production, and the vendor the jobs will
    use can be made here (the simulated one refuses a production database),
    so a misconfigured worker stops now rather than at its first redemption."""
    settings = get_worker_settings()
    settings.require_real_vendor()
    vendor_for(conn, settings)


def email_verify(conn: psycopg.Connection, payload: dict[str, Any]) -> None:
    """Mail a verification link. The token exists only in the email: the
    database keeps its hash (a retry mails a new link; the old one expires)."""
    settings = get_worker_settings()
    token, digest = new_refresh_token()
    row = conn.execute(
        "select crypto.email_verification_issue(%s, %s)", (payload["user_id"], digest)
    ).fetchone()
    link = row[0] if row else None
    if link is None:
        return  # verified meanwhile, or nothing to verify
    url = f"{settings.public_base_url.rstrip('/')}/v1/auth/verify-email?token={token}"
    subject, body = mail.verification_email(url, link["expires_at"])
    mail.send(settings, link["email"], subject, body)


def alert_deliver(conn: psycopg.Connection, payload: dict[str, Any]) -> None:
    """One alert's opening, escalation or resolution to every webhook."""
    urls = get_worker_settings().alert_webhooks
    if not urls:
        log.warning("alert not delivered: no ALERT_WEBHOOK_URL", extra=payload)
        return
    alerts.deliver(conn, urls, payload["alert_id"], payload["transition"])


HANDLERS: dict[str, Handler] = {
    "eod.fetch": eod_fetch,
    "reward.issue": reward_issue,
    "email.verify": email_verify,
    "alert.deliver": alert_deliver,
    # pgBackRest, on pg_cron's schedule (plpgsql/backups.sql).
    "backup.full": backups.run_job,
    "backup.diff": backups.run_job,
    "backup.incr": backups.run_job,
    "backup.verify": backups.run_job,
    # The log archive, on pg_cron's schedule (plpgsql/partition_archive.sql).
    "partition.archive": archive.run_job,
    # The ledger's old months to the tablespace oxp_cold (plpgsql/cold_storage.sql).
    "partition.cold": cold.run_job,
}


def run_once(conn: psycopg.Connection, kinds: list[str] | None = None) -> bool:
    """One job, if one is due; True when a job was taken. `conn` is autocommit:
    handlers run their own transactions (a handler may wait on the network)."""
    job = conn.execute(
        "select (j).id, (j).kind, (j).payload, (j).attempts"
        " from (select crypto.claim_job(%s) as j) as c",
        (kinds or list(HANDLERS),),
    ).fetchone()
    if job is None or job[0] is None:
        return False
    job_id, kind, payload, attempt = job
    token = CLAIM.set((job_id, attempt))
    try:
        HANDLERS[kind](conn, payload)
    except Exception as exc:
        log.warning("job failed: %s", exc, extra={"job": job_id, "kind": kind, "error": str(exc)})
        conn.execute(
            "select crypto.fail_job(%s, %s, %s)",
            (job_id, attempt, f"{type(exc).__name__}: {exc}"),
        )
    else:
        # A no-op when this attempt lost its lease and another worker retook the job.
        conn.execute("select crypto.complete_job(%s, %s)", (job_id, attempt))
    finally:
        CLAIM.reset(token)
    return True


def beat_replicas(url: str, every: float, stop: threading.Event) -> None:
    """Commit the replicas' heartbeat on the primary every `every` seconds on
    a connection of its own (a job may hold the worker's for minutes): a
    replica's lag is the age of the last commit it replayed (db.REPLICA_LAG).
    A database that goes away is waited out like the queue's."""
    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                while not stop.is_set():
                    conn.execute("select crypto.replica_heartbeat()")
                    stop.wait(every)
        except psycopg.Error as exc:  # unreachable, or refused: said, and tried again
            log.warning("replica heartbeat failed", extra={"error": str(exc)})
            stop.wait(2)


def run_forever(
    url: str,
    poll_seconds: float = 30.0,
    heartbeat_seconds: float = 0.0,
    kinds: list[str] | None = None,
) -> None:
    """Serve the queue; a database that goes away (a restart, a restore) is
    waited out, reconnecting every 2 s. A job cut off stays 'running' until
    its lease ends, then is taken again. With `heartbeat_seconds`, a thread
    beats for the replicas meanwhile (beat_replicas). `kinds`: the job kinds
    taken (WORKER_KINDS; all when None); an unknown one refuses to start."""
    unknown = sorted(set(kinds or ()) - set(HANDLERS))
    if unknown or kinds == []:
        raise ValueError(f"WORKER_KINDS: unknown or none: {unknown}; known: {sorted(HANDLERS)}")
    if heartbeat_seconds > 0:
        stop = threading.Event()
        threading.Thread(
            target=beat_replicas,
            args=(url, heartbeat_seconds, stop),
            name="replica-heartbeat",
            daemon=True,
        ).start()
    while True:
        try:
            _serve(url, poll_seconds, kinds or list(HANDLERS))
        except psycopg.Error as exc:
            # Gone, not wrong: no answer, a restart, or the session ended for
            # idling in a transaction (plpgsql/00_login_idle_limits.sql). An
            # error psycopg raises itself (no SQLSTATE, the link still up: a
            # bad parameter) is a bug to stop on, not an outage to wait out.
            if not connection_lost(exc) or (
                exc.sqlstate is None and not isinstance(exc, psycopg.OperationalError)
            ):
                raise
            log.warning("database unreachable; reconnecting in 2 s", extra={"error": str(exc)})
            time.sleep(2)


def _serve(url: str, poll_seconds: float, kinds: list[str]) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        if "reward.issue" in kinds:  # a backup-only worker has no vendor
            check_vendor(conn)
        conn.execute("listen oxp_jobs")
        log.info("worker started", extra={"kinds": sorted(kinds)})
        name = f"{socket.gethostname()}:{os.getpid()}"
        beat = Jsonb({"kinds": sorted(kinds)})
        while True:
            conn.execute("select crypto.worker_heartbeat(%s, %s)", (name, beat))
            last_beat = time.monotonic()
            while run_once(conn, kinds):
                # A long backlog is work, not silence (the worker_silent alert).
                if time.monotonic() - last_beat > 30:
                    conn.execute("select crypto.worker_heartbeat(%s, %s)", (name, beat))
                    last_beat = time.monotonic()
            # Sleep until a NOTIFY arrives or the poll interval passes
            # (a retry's backoff ends without a notification).
            for _ in conn.notifies(timeout=poll_seconds, stop_after=1):
                pass
