"""The reward vendor over HTTP (issue 9, item 11), against a real local vendor
server (tests/python/standins/fake_vendor.py) and a real PostgreSQL: signed requests,
one voucher per redemption id, no answer is UNKNOWN (never a refund), the
worker asks again, an admin resolves, and production never runs the
simulated vendor (the real processes refuse to start)."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from fake_vendor import SECRET, FakeVendor, running_vendor
from ox_cli.main import app
from ox_sidecar.config import Settings, VendorNotConfigured, clear_settings
from ox_sidecar.migrate import migrate
from ox_sidecar.vendor import (
    HttpVendor,
    VendorRefused,
    VendorRetryLater,
    VendorUnavailable,
    VendorUnknown,
    sign,
    signature_valid,
    vendor_for,
)
from ox_sidecar.worker import run_once
from support import OXP, act_as, free_port, new_user, output_of, service, spawn_oxp

runner = CliRunner()
READ_TIMEOUT = 0.25


@pytest.fixture
def vendor(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendor]:
    """A running fake vendor, and the worker's settings pointing at it."""
    with running_vendor(FakeVendor(hang_seconds=0.6)) as fake:
        monkeypatch.setenv("VENDOR_URL", fake.url)
        monkeypatch.setenv("VENDOR_SECRET", SECRET)
        monkeypatch.setenv("VENDOR_CONNECT_TIMEOUT_SECONDS", "2")
        monkeypatch.setenv("VENDOR_READ_TIMEOUT_SECONDS", str(READ_TIMEOUT))
        clear_settings()
        yield fake


def redeem(db_url: str, uid: str, sku: str, key: str) -> int:
    with psycopg.connect(db_url) as conn:
        act_as(conn, uid)
        answer = conn.execute("select api.redeem_reward(%s, %s)", (sku, key)).fetchone()[0]  # type: ignore[index]
        conn.commit()
    assert "problem" not in answer, answer
    return int(answer["id"])


# How often the worker has called the vendor, over every redemption.
ISSUE_ATTEMPTS = "select coalesce(sum(attempts), 0) from crypto.jobs where kind = 'reward.issue'"


def a_player(db: psycopg.Connection, email: str, points: int) -> str:
    uid = new_user(db, email)
    assert "problem" not in service(
        db, "select crypto.adjust_points(%s, %s, 'start', %s)", email, points, f"start:{email}"
    )
    return uid


def worker(db_url: str) -> psycopg.Connection:
    conn = psycopg.connect(db_url, autocommit=True)
    conn.execute("set role oxp_service")
    return conn


def make_due(db: psycopg.Connection) -> None:
    """The backoff has passed (the queue's clock, without waiting for it)."""
    db.execute(
        "update crypto.jobs set run_after = crypto.now()"
        " where kind = 'reward.issue' and status = 'queued'"
    )


def redemption(db: psycopg.Connection, rid: int) -> tuple[str, str | None]:
    row = db.execute(
        "select status::text, vendor_ref from crypto.rewards_redemptions where id = %s", (rid,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def balance(db: psycopg.Connection, uid: str) -> int:
    return int(
        db.execute(
            "select balance from crypto.ledger_accounts where user_id = %s", (uid,)
        ).fetchone()[0]  # type: ignore[index]
    )


def test_the_http_adapter_signs_and_gets_one_voucher_per_redemption(vendor: FakeVendor) -> None:
    http = HttpVendor(vendor.url, SECRET, 2, READ_TIMEOUT)
    first = http.issue({"id": 7, "sku": "MUG"})
    assert first.startswith("VND-")
    assert http.issue({"id": 7, "sku": "MUG"}) == first, "the same key, the same voucher"
    assert vendor.issued == {"7": first}
    assert vendor.bodies[0] == {"redemption_id": 7, "sku": "MUG", "idempotency_key": "7"}

    with pytest.raises(VendorRetryLater, match="401"):
        HttpVendor(vendor.url, "another-secret-" + "x" * 20, 2, READ_TIMEOUT).issue(
            {"id": 8, "sku": "MUG"}
        )
    assert vendor.bad_signatures == 1 and "8" not in vendor.issued

    vendor.script = {
        "9": ["refuse"],
        "10": ["hang"],
        "11": ["drop"],
        "12": ["500"],
        "14": ["202"],
        "15": ["302"],
        "16": ["429"],
    }
    with pytest.raises(VendorRefused, match="no MUG left"):
        http.issue({"id": 9, "sku": "MUG"})
    for rid in (10, 11, 12, 14, 15):
        with pytest.raises(VendorUnknown):
            http.issue({"id": rid, "sku": "MUG"})
    assert set(vendor.issued) == {"7", "10", "11", "14"}, (
        "a timeout, a lost connection or an answer we cannot read may follow an issue"
    )
    with pytest.raises(VendorRetryLater, match="429"):
        http.issue({"id": 16, "sku": "MUG"})

    closed = f"http://127.0.0.1:{free_port()}/api"
    with pytest.raises(VendorUnavailable, match="unreachable"):
        HttpVendor(closed, SECRET, 2, READ_TIMEOUT).issue({"id": 13, "sku": "MUG"})


def test_a_signature_covers_the_body_the_endpoint_and_the_time() -> None:
    body = b'{"redemption_id":1}'
    now = int(time.time())
    headers = {
        "x-oxp-timestamp": str(now),
        "idempotency-key": "1",
        "x-oxp-signature": sign(SECRET, str(now), "POST", "/api/vouchers", "1", body),
    }
    assert signature_valid(SECRET, headers, "POST", "/api/vouchers", body)
    assert not signature_valid(SECRET, headers, "POST", "/api/vouchers", body + b" ")
    assert not signature_valid(SECRET, headers, "POST", "/api/other", body)
    assert not signature_valid(
        SECRET, {**headers, "idempotency-key": "2"}, "POST", "/api/vouchers", body
    )
    assert not signature_valid(SECRET, headers, "POST", "/api/vouchers", body, now=now + 301)


def test_the_worker_issues_through_the_vendor(
    vendor: FakeVendor, db: psycopg.Connection, db_url: str
) -> None:
    uid = a_player(db, "buyer@example.com", 300)
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 100, 2)")
    rid = redeem(db_url, uid, "MUG", "k1")
    with worker(db_url) as w:
        assert run_once(w)
    assert redemption(db, rid) == ("ISSUED", vendor.issued[str(rid)])
    with psycopg.connect(db_url) as conn:
        act_as(conn, uid)
        mine = conn.execute("select api.my_redemptions()").fetchone()[0]["items"]  # type: ignore[index]
    assert mine[0]["vendor_ref"] == vendor.issued[str(rid)], "the player sees the voucher"
    assert balance(db, uid) == 200


def test_no_answer_is_unknown_then_the_worker_asks_again(
    vendor: FakeVendor, db: psycopg.Connection, db_url: str
) -> None:
    uid = a_player(db, "waiting@example.com", 300)
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 100, 2)")
    rid = redeem(db_url, uid, "MUG", "k1")
    vendor.script = {str(rid): ["hang", "drop"]}
    with worker(db_url) as w:
        assert run_once(w)
        assert redemption(db, rid) == ("UNKNOWN", None), "a timeout is not a failure"
        assert balance(db, uid) == 200, "nothing is refunded"

        out = runner.invoke(app, ["rewards", "cancel", str(rid)])
        assert out.exit_code == 1 and "REDEMPTION_UNKNOWN" in out.output, out.output
        assert balance(db, uid) == 200

        # Only the delivery of the alert the UNKNOWN opened is due now.
        tries = service(db, ISSUE_ATTEMPTS)
        while run_once(w):
            pass
        assert service(db, ISSUE_ATTEMPTS) == tries, "the retry waits for its backoff"
        make_due(db)
        assert run_once(w)  # the connection is dropped this time: still UNKNOWN
        assert redemption(db, rid) == ("UNKNOWN", None)
        make_due(db)
        assert run_once(w)
    assert redemption(db, rid) == ("ISSUED", vendor.issued[str(rid)])
    assert list(vendor.issued) == [str(rid)], "asked three times, one voucher"
    assert balance(db, uid) == 200
    assert service(db, "select count(*) from crypto.integrity_violations()") == 0


def marked(db: psycopg.Connection, rid: int) -> bool:
    """Whether a vendor call that may have reached the vendor stands on it."""
    row = db.execute(
        "select sent_at is not null from crypto.rewards_redemptions where id = %s", (rid,)
    ).fetchone()
    assert row is not None
    return bool(row[0])


def cancel(rid: int) -> str:
    out = runner.invoke(app, ["rewards", "cancel", str(rid)])
    return out.output if out.exit_code else "CANCELLED"


def test_only_a_failed_connection_takes_a_call_back(
    vendor: FakeVendor, db: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer the worker cannot read (202: taken, the voucher made) is
    UNKNOWN; a 4xx that is no refusal (429) is retried with the call's mark
    standing: neither may be cancelled into a refund. Only a request that
    never left (no connection) takes its mark back."""
    uid = a_player(db, "accepted@example.com", 300)
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 100, 3)")
    accepted = redeem(db_url, uid, "MUG", "k1")
    vendor.script = {str(accepted): ["202"]}
    with worker(db_url) as w:
        while run_once(w):
            pass
    assert redemption(db, accepted) == ("UNKNOWN", None), "a 202 is no answer we can read"
    assert str(accepted) in vendor.issued, "the vendor made the voucher"
    assert "REDEMPTION_UNKNOWN" in cancel(accepted)
    assert balance(db, uid) == 200, "no refund while the voucher may exist"

    throttled = redeem(db_url, uid, "MUG", "k2")
    vendor.script = {str(throttled): ["429"]}
    with worker(db_url) as w:
        while run_once(w):  # then the retry waits for its backoff
            pass
    assert redemption(db, throttled) == ("REQUESTED", None) and marked(db, throttled), (
        "a 429 reached the vendor: the mark stays"
    )
    assert "REDEMPTION_UNKNOWN" in cancel(throttled)
    assert balance(db, uid) == 100

    # Both end with the vendor's answer: the voucher it made, and one it makes now.
    with worker(db_url) as w:
        make_due(db)
        while run_once(w):
            pass
    assert redemption(db, accepted) == ("ISSUED", vendor.issued[str(accepted)])
    assert redemption(db, throttled) == ("ISSUED", vendor.issued[str(throttled)])

    # A vendor that cannot be reached: the request never left, the mark goes, a cancel refunds.
    monkeypatch.setenv("VENDOR_URL", f"http://127.0.0.1:{free_port()}/api")
    clear_settings()
    unreachable = redeem(db_url, uid, "MUG", "k3")
    with worker(db_url) as w:
        while run_once(w):
            pass
    assert redemption(db, unreachable) == ("REQUESTED", None) and not marked(db, unreachable)
    audited = db.execute(
        "select details ->> 'mark_cleared' from crypto.audit_logs"
        " where action = 'reward.not_sent' and subject = %s",
        (str(unreachable),),
    ).fetchall()
    assert audited == [("true",)], "taking a mark back is audited"
    assert cancel(unreachable) == "CANCELLED"
    assert balance(db, uid) == 100
    assert service(db, "select count(*) from crypto.integrity_violations()") == 0


def test_an_admin_resolves_an_unknown_redemption(
    vendor: FakeVendor, db: psycopg.Connection, db_url: str
) -> None:
    uid = a_player(db, "resolve@example.com", 300)
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 100, 3)")
    gone, made = redeem(db_url, uid, "MUG", "k1"), redeem(db_url, uid, "MUG", "k2")
    vendor.script = {str(gone): ["500"], str(made): ["500"]}
    with worker(db_url) as w:
        assert run_once(w) and run_once(w)
    assert redemption(db, gone)[0] == redemption(db, made)[0] == "UNKNOWN"
    assert balance(db, uid) == 100

    both = runner.invoke(app, ["rewards", "resolve", str(gone), "--failed", "--issued", "X"])
    assert both.exit_code == 1 and "exactly one" in both.output
    for _ in range(2):  # a repeated resolve refunds once
        out = runner.invoke(
            app, ["rewards", "resolve", str(gone), "--failed", "--note", "vendor: no"]
        )
        assert out.exit_code == 0 and f"redemption {gone}: FAILED" in out.output, out.output
    assert balance(db, uid) == 200
    out = runner.invoke(app, ["rewards", "resolve", str(made), "--issued", "VND-FROM-SUPPORT-1234"])
    assert out.exit_code == 0 and "ISSUED" in out.output, out.output
    assert redemption(db, made) == ("ISSUED", "VND-FROM-SUPPORT-1234")
    listed = runner.invoke(app, ["rewards", "redemptions", "--status", "issued", "--json"])
    assert "VND-FROM-SUPPORT" not in listed.output and "****1234" in listed.output

    with worker(db_url) as w:
        make_due(db)
        tries = service(db, ISSUE_ATTEMPTS)
        while run_once(w):  # alert deliveries only
            pass
        assert service(db, ISSUE_ATTEMPTS) == tries, "a resolved redemption's vendor call is done"
    assert balance(db, uid) == 200
    assert service(db, "select count(*) from crypto.integrity_violations()") == 0


def start(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """A real `oxp` process with this environment (no vendor unless given)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VENDOR_", "ENV"))}
    try:
        return subprocess.run(
            [str(OXP), *args], env={**clean, **env}, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{args} kept running: it should have refused to start") from exc


PRODUCTION = {
    "ENV": "production",
    "JWT_PRIVATE_KEY": "not-a-real-key",
    "JWT_ADMIN_PRIVATE_KEY": "not-a-real-key-either",
    "TOTP_ENCRYPTION_KEY": "t" * 32,
}


def test_an_answer_that_cannot_be_decoded_is_unknown_never_not_sent() -> None:
    """The request left: a body httpx cannot decode (a broken gzip) may carry
    a voucher, so it is VendorUnknown, never VendorUnavailable (which takes the
    call's mark back)."""

    def broken_gzip(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=b"not gzip")

    http = HttpVendor(
        "http://vendor.test/api",
        SECRET,
        2,
        READ_TIMEOUT,
        transport=httpx.MockTransport(broken_gzip),
    )
    with pytest.raises(VendorUnknown, match="DecodingError"):
        http.issue({"id": 21, "sku": "MUG"})


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("VENDOR_CONNECT_TIMEOUT_SECONDS", "31", "VENDOR_CONNECT_TIMEOUT_SECONDS is at most 30"),
        ("VENDOR_READ_TIMEOUT_SECONDS", "601", "VENDOR_READ_TIMEOUT_SECONDS is at most 600"),
        ("VENDOR_READ_TIMEOUT_SECONDS", "1800", "VENDOR_READ_TIMEOUT_SECONDS is at most 600"),
        ("VENDOR_READ_TIMEOUT_SECONDS", "0", "positive"),
    ],
)
def test_vendor_timeouts_are_capped_at_settings_load(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    """A read timeout past ~1795 s would make every redemption_sending refuse the
    call's claim: the settings refuse it at load, with the setting's name."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/oxp")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=says):
        Settings(_env_file=None)
    monkeypatch.setenv("VENDOR_CONNECT_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("VENDOR_READ_TIMEOUT_SECONDS", "600")
    settings = Settings(_env_file=None)  # the caps themselves are allowed
    call = HttpVendor("https://v.test", SECRET, 30, 600).call_seconds
    assert settings.vendor_read_timeout_seconds == 600 and call + 10 <= 3600


@pytest.mark.parametrize("command", [["worker"], ["serve", "--workers", "1"]])
def test_production_refuses_to_start_without_a_real_vendor(
    env: None, db_url: str, command: list[str]
) -> None:
    if command[0] == "serve":
        command = [*command, "--port", str(free_port())]
    simulated = start(command, DATABASE_URL=db_url, **PRODUCTION)
    assert simulated.returncode != 0
    assert "VENDOR_URL is required in production" in simulated.stderr, simulated.stderr


@pytest.mark.parametrize(
    ("vendor", "says"),
    [
        ({}, "VENDOR_URL is required in production"),
        ({"VENDOR_URL": "http://vendor.example"}, "VENDOR_URL must be https://"),
        ({"VENDOR_URL": "https://vendor.example"}, "VENDOR_SECRET"),
        ({"VENDOR_URL": "https://vendor.example", "VENDOR_SECRET": "short"}, "VENDOR_SECRET"),
    ],
)
def test_production_settings_need_a_real_vendor(
    monkeypatch: pytest.MonkeyPatch, vendor: dict[str, str], says: str
) -> None:
    """What the processes above read at startup, for each way to get it wrong."""
    for name, value in {**PRODUCTION, "DATABASE_URL": "postgresql://db/oxp", **vendor}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises((ValueError, VendorNotConfigured), match=says):
        Settings(_env_file=None).require_real_vendor()
    monkeypatch.setenv("VENDOR_URL", "https://vendor.example")
    monkeypatch.setenv("VENDOR_SECRET", SECRET)
    Settings(_env_file=None).require_real_vendor()  # a real vendor: starts


def test_the_cli_runs_in_production_without_a_vendor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the API and the worker need the vendor; an operator's command does not."""
    for name, value in {**PRODUCTION, "DATABASE_URL": "postgresql://db/oxp"}.items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).vendor_url is None


def test_the_worker_refuses_the_simulated_vendor_on_a_production_database(
    env: None, db_url: str
) -> None:
    migrate(db_url, "production")
    refused = start(["worker"], DATABASE_URL=db_url, ENV="development")
    assert refused.returncode != 0
    assert "ENVIRONMENT_MISMATCH" in refused.stderr, refused.stderr
    # Behind the process's own check, the simulated vendor refuses it too.
    with psycopg.connect(db_url) as conn, pytest.raises(VendorNotConfigured, match="only runs in"):
        vendor_for(conn, Settings(env="development"))


def test_the_worker_process_issues_through_the_http_vendor(
    vendor: FakeVendor, db: psycopg.Connection, db_url: str
) -> None:
    uid = a_player(db, "process@example.com", 100)
    service(db, "select crypto.upsert_reward('CUP', 'A cup', 100, 1)")
    rid = redeem(db_url, uid, "CUP", "k1")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENV")}
    proc = spawn_oxp("worker", env=clean)
    try:
        for _ in range(600):  # a process start takes 20 s on a loaded 2-core machine
            if redemption(db, rid)[0] != "REQUESTED":
                break
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert redemption(db, rid) == ("ISSUED", vendor.issued.get(str(rid))), output_of(proc)


def test_many_workers_cancels_and_resolves_never_pay_twice(
    vendor: FakeVendor, db: psycopg.Connection, db_url: str
) -> None:
    """Workers, cancels and an admin resolving, all at once, against a vendor
    that answers late, drops connections, fails and refuses: in the end every
    voucher the vendor made is ISSUED, nothing it made is refunded, and every
    refund happened once."""
    users = {f"p{i}@example.com": a_player(db, f"p{i}@example.com", 500) for i in range(3)}
    service(db, "select crypto.upsert_reward('GIFT', 'A gift', 10, 100)")
    ids = [redeem(db_url, uid, "GIFT", f"k{n}") for uid in users.values() for n in range(10)]
    behaviours = [[], ["hang"], ["drop"], ["refuse"], ["500", "500"], ["hang", "refuse"]]
    vendor.script = {str(rid): list(behaviours[i % len(behaviours)]) for i, rid in enumerate(ids)}

    stop = threading.Event()
    ready = threading.Barrier(7)  # 4 workers, 2 cancellers, 1 resolver: all connected, go
    errors: list[str] = []
    refused: dict[str, int] = {}

    def guarded(work: Any) -> Any:
        def run() -> None:
            try:
                work()
            except Exception as exc:  # a thread's failure fails the test
                errors.append(f"{type(exc).__name__}: {exc}")

        return run

    def work_jobs() -> None:
        with worker(db_url) as w:
            ready.wait()
            while not stop.is_set():
                if not run_once(w):
                    time.sleep(0.02)

    def cancel(seed: int) -> None:
        """Cancel any redemption not final yet, as an impatient admin would."""
        rng = random.Random(seed)
        with worker(db_url) as conn:
            conn.execute("set role oxp_operator")  # cancelling is an operator's act
            ready.wait()
            while not stop.is_set():
                open_ = conn.execute(
                    "select id from crypto.rewards_redemptions"
                    " where status in ('REQUESTED', 'UNKNOWN')"
                ).fetchall()
                if open_:
                    try:
                        conn.execute(
                            "select crypto.cancel_redemption(%s, 'race')", (rng.choice(open_)[0],)
                        )
                    except psycopg.Error as exc:
                        assert exc.sqlstate in ("OX150", "OX205"), exc
                        refused[exc.sqlstate] = refused.get(exc.sqlstate, 0) + 1
                time.sleep(0.05)

    def resolve() -> None:
        """The admin's way: hold the redemption and its vendor call, ask the
        vendor (here: its truth), answer with that."""
        with psycopg.connect(db_url) as conn:
            ready.wait()
            while not stop.is_set():
                unknown = [
                    r
                    for (r,) in conn.execute(
                        "select id from crypto.rewards_redemptions where status = 'UNKNOWN'"
                    )
                ]
                conn.commit()
                for rid in unknown:
                    with conn.transaction():
                        conn.execute(
                            "select 1 from crypto.rewards_redemptions where id = %s for update",
                            (rid,),
                        )
                        job = conn.execute(
                            "select status::text from crypto.jobs where dedupe_key = %s for update",
                            (f"reward.issue:{rid}",),
                        ).fetchone()
                        if job is None or job[0] == "running":
                            continue
                        ref = vendor.issued.get(str(rid))
                        conn.execute("set local role oxp_operator")
                        conn.execute(
                            "select crypto.resolve_redemption(%s, %s, %s, 'checked with the vendor')",
                            (rid, "ISSUED" if ref else "FAILED", ref),
                        )
                time.sleep(0.05)

    threads = [threading.Thread(target=guarded(work_jobs)) for _ in range(4)]
    threads += [threading.Thread(target=guarded(lambda s=s: cancel(s))) for s in (1, 2)]
    threads.append(threading.Thread(target=guarded(resolve)))
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.3)
            make_due(db)
            left = db.execute(
                "select count(*) from crypto.rewards_redemptions where status in ('REQUESTED', 'UNKNOWN')"
            ).fetchone()
            if left == (0,):
                break
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not errors, errors

    # Whatever is left: the vendor answers now.
    vendor.script = {}
    with worker(db_url) as w:
        for _ in range(len(ids)):
            make_due(db)
            if not run_once(w):
                break
    rows = db.execute(
        "select id, status::text, vendor_ref, user_id::text from crypto.rewards_redemptions"
    ).fetchall()
    status = {rid: s for rid, s, _, _ in rows}
    assert set(status.values()) <= {"ISSUED", "FAILED", "CANCELLED"}, status
    made = {int(k): v for k, v in vendor.issued.items()}
    issued = {rid: ref for rid, s, ref, _ in rows if s == "ISSUED"}
    assert issued == made, "every voucher made is ISSUED with its reference, and only those"
    refunded = {rid for rid, s in status.items() if s in ("FAILED", "CANCELLED")}
    assert not refunded & set(made), "nothing the vendor made was refunded"
    refunds = db.execute(
        "select count(*), count(distinct idempotency_key) from crypto.ledger_transfers"
        " where reason = 'refund'"
    ).fetchone()
    assert refunds == (len(refunded), len(refunded)), "one refund per refunded redemption"
    for uid in users.values():
        mine = sum(1 for _, s, _, u in rows if u == uid and s == "ISSUED")
        assert balance(db, uid) == 500 - 10 * mine
    assert db.execute(
        "select reserved, issued from crypto.rewards_inventory where sku = 'GIFT'"
    ).fetchone() == (0, len(made))
    assert vendor.bad_signatures == 0
    assert service(db, "select count(*) from crypto.integrity_violations()") == 0
    unanswered = service(
        db, "select count(*) from crypto.audit_logs where action = 'reward.unknown'"
    )
    assert unanswered > 0, "the race had unanswered vendor calls to get wrong"
