"""Races the review found, each forced open with a lock held by one
connection while another goes on, so the interleaving is certain."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from support import act_as, new_user, service

pytestmark = pytest.mark.usefixtures("calendar")


def wait_until_blocked(db: psycopg.Connection, conn: psycopg.Connection) -> bool:
    """True once `conn`'s backend waits on a lock (so the interleaving is set),
    False if it never does within 10 s."""
    pid = conn.info.backend_pid
    for _ in range(200):
        row = db.execute(
            "select wait_event_type from pg_stat_activity where pid = %s", (pid,)
        ).fetchone()
        if row and row[0] == "Lock":
            return True
        time.sleep(0.05)
    return False


def in_thread(work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except psycopg.Error as exc:
            out["error"] = exc.sqlstate

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_a_cancel_keeps_the_worker_off_the_vendor_call(db: psycopg.Connection, db_url: str) -> None:
    uid = new_user(db, "cancel@example.com")
    service(db, "select crypto.adjust_points('cancel@example.com', 100, 'start', 's')")
    service(db, "select crypto.upsert_reward('CAP', 'A cap', 100, 1)")
    with psycopg.connect(db_url) as user:
        act_as(user, uid)
        rid = user.execute("select api.redeem_reward('CAP', 'k')").fetchone()[0]["id"]  # type: ignore[index]
        user.commit()

    account = db.execute("select crypto.user_account(%s)", (uid,)).fetchone()[0]  # type: ignore[index]
    with (
        psycopg.connect(db_url) as blocker,
        psycopg.connect(db_url) as admin,
        psycopg.connect(db_url, autocommit=True) as worker,
    ):
        # Hold the user's account: the cancel gets past its job check, then
        # waits here for the refund, with the vendor call still queued.
        blocker.execute("select 1 from crypto.ledger_accounts where id = %s for update", (account,))

        def cancel() -> Any:
            admin.execute("set role oxp_operator")
            answer = admin.execute(
                "select crypto.cancel_redemption(%s, 'changed my mind')", (rid,)
            ).fetchone()[0]  # type: ignore[index]
            admin.commit()
            return answer

        thread, out = in_thread(cancel)
        waited = wait_until_blocked(db, admin)
        worker.execute("set role oxp_service")
        try:
            claimed = worker.execute(
                "select (crypto.claim_job(array['reward.issue'])).id"
            ).fetchone()
        finally:
            blocker.commit()  # whatever happened, let the cancel finish
            thread.join(10)
        assert waited, "the cancel waits on the account"
        assert claimed == (None,), "the worker must not take a vendor call that is being cancelled"
        assert out.get("result", {}).get("status") == "CANCELLED", out
        claimed = worker.execute("select (crypto.claim_job(array['reward.issue'])).id").fetchone()
        assert claimed == (None,), "a cancelled redemption's vendor call is done, not pending"
    assert db.execute(
        "select r.status::text, a.balance, i.reserved, i.issued from crypto.rewards_redemptions as r"
        " join crypto.ledger_accounts as a on a.user_id = r.user_id"
        " join crypto.rewards_inventory as i on i.sku = r.sku"
    ).fetchone() == ("CANCELLED", 100, 0, 0)
    assert db.execute("select count(*) from crypto.integrity_violations()").fetchone() == (0,)


def test_reuse_detection_revokes_a_token_minted_by_a_concurrent_rotation(
    db: psycopg.Connection, db_url: str
) -> None:
    uid = new_user(db, "family@example.com")
    with db.transaction():
        act_as(db, uid)
        db.execute("set local role auth_service")  # the sign-in helpers' role, as the shim
        db.execute("select api.issue_refresh(sha256('t1'))")
    with db.transaction():
        db.execute("set local role auth_service")
        db.execute("select api.refresh(sha256('t1'), sha256('t2'))")

    with psycopg.connect(db_url) as rotating, psycopg.connect(db_url) as thief:
        rotating.execute("set role auth_service")
        rotating.execute(
            "select api.refresh(sha256('t2'), sha256('t3'))"
        )  # open, holding the family

        def reuse() -> Any:
            thief.execute("set role auth_service")
            answer = thief.execute("select api.refresh(sha256('t1'), sha256('t9'))").fetchone()[0]  # type: ignore[index]
            thief.commit()
            return answer

        thread, out = in_thread(reuse)
        waited = wait_until_blocked(db, thief)
        rotating.commit()
        thread.join(10)
        assert waited, "the reuse waits for the rotation"
    assert out["result"]["problem"]["sqlstate"] == "OX001"
    assert db.execute(
        "select count(*) from crypto.refresh_tokens where revoked_at is null"
    ).fetchone() == (0,), "t3, minted while the family was being revoked, is revoked too"


def test_a_price_change_during_a_redemption_charges_nothing(
    db: psycopg.Connection, db_url: str
) -> None:
    uid = new_user(db, "buyer@example.com")
    service(db, "select crypto.adjust_points('buyer@example.com', 1000, 'start', 's')")
    service(db, "select crypto.upsert_reward('LAMP', 'A lamp', 100, 5)")
    account = db.execute("select crypto.user_account(%s)", (uid,)).fetchone()[0]  # type: ignore[index]
    with psycopg.connect(db_url) as blocker, psycopg.connect(db_url) as buyer:
        # Hold the buyer's account: the redemption reads the price, then waits here.
        blocker.execute("select 1 from crypto.ledger_accounts where id = %s for update", (account,))

        def redeem() -> Any:
            act_as(buyer, uid)
            answer = buyer.execute("select api.redeem_reward('LAMP', 'k1')").fetchone()[0]  # type: ignore[index]
            buyer.commit()
            return answer

        thread, out = in_thread(redeem)
        waited = wait_until_blocked(db, buyer)
        try:
            service(db, "select crypto.upsert_reward('LAMP', 'A lamp', 300, 5)")
        finally:
            blocker.commit()
            thread.join(10)
        assert waited, "the redemption waits on the account"
    assert out == {"error": "40001"}, out
    assert db.execute(
        "select a.balance, (select reserved from crypto.rewards_inventory where sku = 'LAMP'),"
        " (select count(*) from crypto.rewards_redemptions)"
        " from crypto.ledger_accounts as a where a.user_id = %s",
        (uid,),
    ).fetchone() == (1000, 0, 0)
