"""The worker killed (SIGKILL) in the middle of a job (issue 12): during a
vendor call, and during a price fetch. Its job stays 'running' until the
lease (jobs.lease_seconds, shortened here) ends; then another worker takes
it, and its effect is applied once: one voucher and one debit, one set of
closes and one settlement."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from typer.testing import CliRunner

from fake_vendor import SECRET, FakeVendor, running_vendor
from ox_cli.main import app
from ox_sidecar.config import clear_settings
from support import act_as, new_user, output_of, service, spawn_oxp

pytestmark = pytest.mark.usefixtures("calendar")

LEASE = 3  # seconds: the lease ends this long after the kill


def start_worker() -> subprocess.Popen[bytes]:
    """`oxp worker`, waking every 0.2 s (it would wait 30 s for what comes
    due without a NOTIFY, such as a lease's end)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENV")}
    env["WORKER_POLL_SECONDS"] = "0.2"
    return spawn_oxp("worker", env=env)


def wait_for(what: str, check: Callable[[], bool], seconds: float = 90) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"waited {seconds} s for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def job(db: psycopg.Connection, kind: str) -> tuple[str, int]:
    row = db.execute(
        "select status::text, attempts from crypto.jobs where kind = %s", (kind,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def kill_mid_job_and_retake(
    db: psycopg.Connection, kind: str, first: subprocess.Popen[bytes]
) -> float:
    """With `first` in the middle of the job: SIGKILL; the job stays
    'running', its lease ending LEASE s later; a second worker then takes
    it and finishes it. Seconds from the kill to done (the second worker's
    start included)."""
    assert job(db, kind) == ("running", 1)
    kill(first)
    killed_at = time.monotonic()
    # The lease ends LEASE s from now: its age so far plus LEASE.
    held = db.execute(
        "select ceil(extract(epoch from clock_timestamp() - locked_at))::int"
        " from crypto.jobs where kind = %s",
        (kind,),
    ).fetchone()[0]  # type: ignore[index]
    service(db, "select crypto.setting_set('jobs.lease_seconds', %s)", str(held + LEASE))
    # A vendor call stretched its claim over the call's timeouts (however
    # short the lease): a dead worker's call is not waited out here, its
    # end is brought to the lease's.
    db.execute(
        "update crypto.jobs set lease_until = clock_timestamp() + make_interval(secs => %s)"
        " where kind = %s and lease_until is not null",
        (LEASE, kind),
    )
    second = start_worker()
    try:
        time.sleep(LEASE / 2)
        assert job(db, kind) == ("running", 1), "taken before its lease ended"
        wait_for(f"{kind} done", lambda: job(db, kind)[0] == "done" or second.poll() is not None)
        took = time.monotonic() - killed_at
    finally:
        stop(second)
    assert job(db, kind)[0] == "done", output_of(second)
    assert took >= LEASE
    return took


@pytest.fixture
def hanging_vendor(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendor]:
    """The fake vendor, answering a first call 2 minutes late (after issuing)."""
    with running_vendor(FakeVendor(hang_seconds=120)) as fake:
        monkeypatch.setenv("VENDOR_URL", fake.url)
        monkeypatch.setenv("VENDOR_SECRET", SECRET)
        monkeypatch.setenv("VENDOR_READ_TIMEOUT_SECONDS", "180")
        clear_settings()
        yield fake
    clear_settings()


def test_worker_killed_during_a_vendor_call_is_retaken_and_issues_once(
    hanging_vendor: FakeVendor, db: psycopg.Connection, db_url: str
) -> None:
    uid = new_user(db, "killed@example.com")
    service(db, "select crypto.adjust_points('killed@example.com', 500, 'start', 'start:killed')")
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 200, 5)")
    with psycopg.connect(db_url) as conn:
        act_as(conn, uid)
        answer = conn.execute("select api.redeem_reward('MUG', 'k1')").fetchone()[0]  # type: ignore[index]
        conn.commit()
    rid = str(answer["id"])
    hanging_vendor.script = {rid: ["hang"]}  # the vendor issues, then the worker dies waiting

    first = start_worker()
    try:
        wait_for("the vendor call", lambda: hanging_vendor.calls >= 1 or first.poll() is not None)
        assert first.poll() is None, output_of(first)
        took = kill_mid_job_and_retake(db, "reward.issue", first)
    finally:
        kill(first)
    print(f"vendor call: retaken and issued {took:.1f} s after the kill (lease {LEASE} s)")

    # The vendor was asked twice under one key and made one voucher: that one is recorded.
    assert hanging_vendor.calls == 2 and list(hanging_vendor.issued) == [rid]
    row = db.execute(
        "select status::text, vendor_ref from crypto.rewards_redemptions where id = %s", (rid,)
    ).fetchone()
    assert row == ("ISSUED", hanging_vendor.issued[rid])
    assert job(db, "reward.issue") == ("done", 2)
    # One debit, no refund: the start and the redemption are the only movements.
    moves = db.execute(
        "select t.reason, e.amount from crypto.ledger_entries as e"
        " join crypto.ledger_transfers as t on t.id = e.transfer_id"
        " join crypto.ledger_accounts as a on a.id = e.account_id"
        " where a.user_id = %s order by t.id",
        (uid,),
    ).fetchall()
    assert [amount for _, amount in moves] == [500, -200], moves
    assert db.execute(
        "select stock, reserved, issued from crypto.rewards_inventory where sku = 'MUG'"
    ).fetchone() == (5, 0, 1)


def redeem_mug(db: psycopg.Connection, db_url: str, email: str) -> tuple[str, str]:
    """A player with 500 points redeems a 200-point mug: (user id, redemption id)."""
    uid = new_user(db, email)
    service(db, "select crypto.adjust_points(%s, 500, 'start', %s)", email, f"start:{email}")
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 200, 5)")
    with psycopg.connect(db_url) as conn:
        act_as(conn, uid)
        answer = conn.execute("select api.redeem_reward('MUG', 'k1')").fetchone()[0]  # type: ignore[index]
        conn.commit()
    return uid, str(answer["id"])


def ledger_balance(db: psycopg.Connection, uid: str) -> int:
    """The user's balance recomputed from the ledger's entries, checked against the account's."""
    row = db.execute(
        "select a.balance, (select coalesce(sum(e.amount), 0) from crypto.ledger_entries as e"
        " where e.account_id = a.id) from crypto.ledger_accounts as a where a.user_id = %s",
        (uid,),
    ).fetchone()
    assert row is not None and row[0] == row[1], row
    return int(row[1])


def refunds(db: psycopg.Connection, rid: str) -> int:
    return int(
        db.execute(
            "select count(*) from crypto.ledger_transfers where reason = 'refund'"
            " and idempotency_key = %s",
            (f"refund:redemption:{rid}",),
        ).fetchone()[0]  # type: ignore[index]
    )


def cancel_refused(db: psycopg.Connection, rid: str) -> None:
    with pytest.raises(psycopg.Error) as refused:
        service(db, "select crypto.cancel_redemption(%s, 'impatient')", rid)
    assert refused.value.sqlstate == "OX150", refused.value


@pytest.mark.parametrize("vendor_says", ["issued", "voided"])
def test_killed_after_the_vendor_made_a_voucher_a_refused_retake_refunds_nothing(
    hanging_vendor: FakeVendor, db: psycopg.Connection, db_url: str, vendor_says: str
) -> None:
    """The worker dies after the vendor made the voucher, before it was
    recorded; the retake is refused ("duplicate"); a cancel is tried. No
    refund while the voucher may exist: the redemption waits for an admin,
    who ends it with the vendor's answer (the voucher, or voided: one refund)."""
    uid, rid = redeem_mug(db, db_url, "twice@example.com")
    hanging_vendor.script = {rid: ["hang", "duplicate"]}

    first = start_worker()
    try:
        wait_for("the vendor call", lambda: hanging_vendor.calls >= 1 or first.poll() is not None)
        assert first.poll() is None, output_of(first)
    finally:
        kill(first)
    assert list(hanging_vendor.issued) == [rid], "the vendor made the voucher"
    sent = db.execute(
        "select status::text, sent_at is not null from crypto.rewards_redemptions where id = %s",
        (rid,),
    ).fetchone()
    assert sent == ("REQUESTED", True), "the call was marked before it left"
    cancel_refused(db, rid)

    # The dead worker's lease and call time end (not waited out).
    service(db, "select crypto.setting_set('jobs.lease_seconds', '1')")
    db.execute("update crypto.jobs set lease_until = clock_timestamp() where kind = 'reward.issue'")
    second = start_worker()
    try:
        wait_for(
            "the retake", lambda: job(db, "reward.issue")[0] == "done" or second.poll() is not None
        )
    finally:
        stop(second)
    assert job(db, "reward.issue") == ("done", 2), output_of(second)
    assert hanging_vendor.calls == 2
    row = db.execute(
        "select status::text, vendor_ref from crypto.rewards_redemptions where id = %s", (rid,)
    ).fetchone()
    assert row == ("UNKNOWN", None), "a later call's refusal is no refund"
    assert ledger_balance(db, uid) == 300 and refunds(db, rid) == 0
    cancel_refused(db, rid)
    assert db.execute(
        "select severity::text from crypto.alerts where rule = 'redemption_unresolved'"
        " and subject = %s and resolved_at is null",
        (rid,),
    ).fetchone() == ("critical",)

    voucher = hanging_vendor.issued[rid]
    args = ["--issued", voucher] if vendor_says == "issued" else ["--failed", "--note", "voided"]
    for _ in range(2):  # a repeated resolve changes nothing more
        out = CliRunner().invoke(app, ["rewards", "resolve", rid, *args])
        assert out.exit_code == 0, out.output
    row = db.execute(
        "select status::text, vendor_ref from crypto.rewards_redemptions where id = %s", (rid,)
    ).fetchone()
    stock = db.execute(
        "select stock, reserved, issued from crypto.rewards_inventory where sku = 'MUG'"
    ).fetchone()
    if vendor_says == "issued":
        assert row == ("ISSUED", voucher), "the first call's voucher"
        assert ledger_balance(db, uid) == 300 and refunds(db, rid) == 0
        assert stock == (5, 0, 1)
    else:
        assert row == ("FAILED", None)
        assert ledger_balance(db, uid) == 500 and refunds(db, rid) == 1, "exactly one refund"
        assert stock == (5, 0, 0)
    assert db.execute("select count(*) from crypto.orphan_vouchers").fetchone() == (0,)
    assert service(db, "select count(*) from crypto.integrity_violations()") == 0


@pytest.fixture
def slow_vendor(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendor]:
    """The fake vendor answering a call 3 s late, within the worker's timeouts."""
    with running_vendor(FakeVendor(hang_seconds=3)) as fake:
        monkeypatch.setenv("VENDOR_URL", fake.url)
        monkeypatch.setenv("VENDOR_SECRET", SECRET)
        monkeypatch.setenv("VENDOR_READ_TIMEOUT_SECONDS", "10")
        clear_settings()
        yield fake
    clear_settings()


def test_a_lease_shorter_than_a_vendor_call_lets_no_second_worker_in(
    slow_vendor: FakeVendor, db: psycopg.Connection, db_url: str
) -> None:
    """jobs.lease_seconds at 1 s, a vendor answering in 3 s, two workers: the
    call's claim is stretched over its timeouts, so the vendor is asked once."""
    service(db, "select crypto.setting_set('jobs.lease_seconds', '1')")
    uid, rid = redeem_mug(db, db_url, "slow@example.com")
    slow_vendor.script = {rid: ["hang"]}
    workers = [start_worker(), start_worker()]
    try:
        wait_for(
            "the voucher",
            lambda: (
                job(db, "reward.issue")[0] == "done" or any(w.poll() is not None for w in workers)
            ),
        )
    finally:
        for w in workers:
            stop(w)
    assert job(db, "reward.issue") == ("done", 1), [output_of(w) for w in workers]
    assert slow_vendor.calls == 1, "a second worker retook a live call"
    row = db.execute(
        "select status::text, vendor_ref from crypto.rewards_redemptions where id = %s", (rid,)
    ).fetchone()
    assert row == ("ISSUED", slow_vendor.issued[rid])
    assert ledger_balance(db, uid) == 300


STOOQ = Path(__file__).resolve().parents[1] / "fixtures" / "stooq"


class HangingStooq(http.server.BaseHTTPRequestHandler):
    """Stooq's CSV download from the recorded files, except that the first
    request hangs (until released): the worker dies waiting for it."""

    asked: ClassVar[list[str]] = []
    release = threading.Event()

    def do_GET(self) -> None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        HangingStooq.asked.append(query["s"])
        if len(HangingStooq.asked) == 1:
            HangingStooq.release.wait(60)
            return
        day = f"{query['d1'][:4]}-{query['d1'][4:6]}-{query['d1'][6:]}"
        header, *rows = (STOOQ / f"{query['s']}.csv").read_text().splitlines()
        body = "\n".join([header, *(r for r in rows if r.startswith(day))]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hanging_stooq(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    HangingStooq.asked.clear()
    HangingStooq.release.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HangingStooq)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("EOD_PROVIDER", "stooq")
    monkeypatch.setenv("EOD_FALLBACK_PROVIDER", "none")
    monkeypatch.setenv("STOOQ_URL", f"http://127.0.0.1:{server.server_address[1]}/q/d/l/")
    clear_settings()
    try:
        yield
    finally:
        HangingStooq.release.set()
        server.shutdown()
        server.server_close()
        clear_settings()


def test_worker_killed_during_a_price_fetch_is_retaken_and_loads_once(
    hanging_stooq: None, db: psycopg.Connection
) -> None:
    service(db, "select crypto.set_universe('2026-11-24', '{AAPL,MSFT}', true)")
    service(db, "select crypto.clock_set('2026-11-24T09:00:00+09:00')")
    service(db, "select crypto.schedule_tick()")  # opens Tuesday
    for symbol in ("AAPL", "MSFT"):  # Monday's closes are in; Stooq brings Tuesday's
        service(db, "select crypto.load_eod_price('2026-11-23', %s, 100, 'test')", symbol)
    service(db, "select crypto.clock_set('2026-11-25T06:15:00+09:00')")
    service(db, "select crypto.schedule_tick()")  # closes it, asks for prices
    assert job(db, "eod.fetch") == ("queued", 0)

    first = start_worker()
    try:
        wait_for("the price request", lambda: bool(HangingStooq.asked) or first.poll() is not None)
        assert first.poll() is None, output_of(first)
        assert db.execute(
            "select count(*) from crypto.eod_prices where trading_day = '2026-11-24'"
        ).fetchone() == (0,)
        took = kill_mid_job_and_retake(db, "eod.fetch", first)
    finally:
        kill(first)
    print(f"price fetch: retaken and loaded {took:.1f} s after the kill (lease {LEASE} s)")

    assert job(db, "eod.fetch") == ("done", 2)
    assert db.execute(
        "select symbol, close::text, source from crypto.eod_prices"
        " where trading_day = '2026-11-24' order by symbol"
    ).fetchall() == [("AAPL", "224.530000", "stooq"), ("MSFT", "469.370000", "stooq")]
    service(db, "select crypto.schedule_tick()")  # the settlement, once
    service(db, "select crypto.schedule_tick()")
    assert db.execute(
        "select symbol, outcome::text from crypto.settlements order by symbol"
    ).fetchall() == [("AAPL", "UP"), ("MSFT", "UP")]
