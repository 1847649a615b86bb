"""Many clients at once, each on its own connection, against a real PostgreSQL:
the rules hold under races, and points are paid exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from support import SYMBOLS, act_as, new_user, open_session_for, race_each, service

pytestmark = pytest.mark.usefixtures("calendar")


def as_user(url: str, user_id: str, query: str, *args: Any) -> str:
    """One request the way the shim makes it: role and claims, then one call.
    Returns "ok" or the SQLSTATE-mapped message (our code)."""
    with psycopg.connect(url) as conn:
        try:
            with conn.transaction():
                act_as(conn, user_id)
                conn.execute(query, args)
            return "ok"
        except psycopg.Error as exc:
            return exc.diag.message_primary or str(exc.sqlstate)


def race(n: int, work: Callable[[int], str]) -> Counter[str]:
    """Start n calls together (a barrier), return how they ended."""
    return Counter(race_each(n, work))


def test_one_user_racing_never_passes_the_daily_limit(db: psycopg.Connection, db_url: str) -> None:
    open_session_for(db, "2026-11-27", "2026-11-27T12:00:00+09:00")
    uid = new_user(db, "racer@example.com")
    outcomes = race(
        30,
        lambda i: as_user(
            db_url, uid, "select api.submit_prediction(%s, 'UP')", SYMBOLS[i % len(SYMBOLS)]
        ),
    )
    assert outcomes["ok"] == 3, outcomes
    assert set(outcomes) <= {"ok", "DAILY_LIMIT_REACHED", "PREDICTION_EXISTS"}
    row = db.execute(
        "select count(*), (select predictions_made from crypto.user_daily_limits where user_id = %s)"
        " from crypto.predictions where user_id = %s",
        (uid, uid),
    ).fetchone()
    assert row == (3, 3)


def test_many_users_predict_at_once(db: psycopg.Connection, db_url: str) -> None:
    open_session_for(db, "2026-11-27", "2026-11-27T12:00:00+09:00")
    users = [new_user(db, f"u{i}@example.com") for i in range(32)]
    outcomes = race(
        32, lambda i: as_user(db_url, users[i], "select api.submit_prediction('NVDA', 'DOWN')")
    )
    assert outcomes == Counter({"ok": 32})
    assert db.execute("select count(*) from crypto.predictions").fetchone() == (32,)


def _settled_day(db: psycopg.Connection, players: int) -> list[str]:
    """A closed Tuesday with `players` winners on AAPL and every close loaded."""
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    users = [new_user(db, f"p{i}@example.com") for i in range(players)]
    url = db.info.dsn
    for uid in users:
        assert as_user(url, uid, "select api.submit_prediction('AAPL', 'UP')") == "ok"
    service(db, "select crypto.clock_set('2026-11-25T07:00:00+09:00')")
    service(db, "select crypto.close_session('2026-11-24')")
    for day, price in (("2026-11-23", "100"), ("2026-11-24", "105")):
        for symbol in SYMBOLS:
            service(db, "select crypto.load_eod_price(%s, %s, %s, 'test')", day, symbol, price)
    return users


def test_two_settlements_at_once_pay_exactly_once(db: psycopg.Connection, db_url: str) -> None:
    users = _settled_day(db, 25)

    def settle(_: int) -> str:
        with psycopg.connect(db_url) as conn:
            conn.execute("set role oxp_operator")
            result = conn.execute("select crypto.settle_session('2026-11-24')").fetchone()
            assert result is not None
            return "repeat" if result[0]["already_settled"] else "settled"

    assert race(4, settle) == Counter({"settled": 1, "repeat": 3})
    balances = db.execute(
        "select balance from crypto.ledger_accounts where user_id = any(%s::uuid[])", (users,)
    ).fetchall()
    assert sorted(b for (b,) in balances) == [100] * 25
    assert db.execute(
        "select count(*), sum(amount) from crypto.ledger_transfers where reason = 'settlement_award'"
    ).fetchone() == (25, 2500)
    assert db.execute("select sum(amount) from crypto.ledger_entries").fetchone() == (0,)


def test_concurrent_transfers_never_overspend_nor_double_apply(
    db: psycopg.Connection, db_url: str
) -> None:
    uid = new_user(db, "spender@example.com")
    account = db.execute("select crypto.user_account(%s)", (uid,)).fetchone()[0]  # type: ignore[index]
    issuance = db.execute("select crypto.system_account('issuance')").fetchone()[0]  # type: ignore[index]
    sink = db.execute("select crypto.system_account('redemptions')").fetchone()[0]  # type: ignore[index]
    db.execute(
        "select crypto.ledger_transfer('grant:1', %s, %s, 1000, 'adjustment')", (issuance, account)
    )

    def spend(i: int) -> tuple[str, str]:
        # 40 clients, 20 distinct keys (each sent twice), 70 points each:
        # at most 14 can be paid from 1000.
        key = f"spend:{i % 20}"
        with psycopg.connect(db_url) as conn:
            refusal = conn.execute(
                "select (crypto.ledger_transfer(%s, %s, %s, 70, 'redemption')).refusal",
                (key, account, sink),
            ).fetchone()[0]  # type: ignore[index]
            conn.commit()
            return key, refusal or "paid"

    outcomes = race_each(40, spend)
    by_key: dict[str, set[str]] = {}
    for key, outcome in outcomes:
        by_key.setdefault(key, set()).add(outcome)
    # Both clients of a key got the same answer, a refusal included.
    assert all(len(answers) == 1 for answers in by_key.values())
    answers = sorted(next(iter(a)) for a in by_key.values())
    assert answers == ["OX201"] * 6 + ["paid"] * 14
    paid = db.execute(
        "select count(*) from crypto.ledger_transfers"
        " where idempotency_key like 'spend:%%' and refusal is null"
    ).fetchone()[0]  # type: ignore[index]
    assert paid == 14
    balance, entries_sum, last_after = db.execute(
        "select a.balance, (select sum(e.amount) from crypto.ledger_entries as e where e.account_id = a.id),"
        " (select e.balance_after from crypto.ledger_entries as e where e.account_id = a.id"
        "  order by e.id desc limit 1)"
        " from crypto.ledger_accounts as a where a.id = %s",
        (account,),
    ).fetchone()  # type: ignore[misc]
    assert balance == 1000 - 14 * 70 == entries_sum == last_after
    assert db.execute("select sum(amount) from crypto.ledger_entries").fetchone() == (0,)


def _held_then_raced(
    db_url: str, first: tuple[str, tuple[Any, ...]], second: tuple[str, tuple[Any, ...]]
) -> str:
    """`first` runs and holds its transaction open; `second`, on another
    connection, runs meanwhile and must be blocked by the first (seen in
    pg_blocking_pids, whatever the machine's speed); then the first commits.
    What the second ended with: its result, or its SQLSTATE and detail."""
    with psycopg.connect(db_url) as holder, psycopg.connect(db_url, autocommit=True) as watcher:
        holder.execute(*first)
        result: list[str] = []
        waiter_pid: list[int] = []

        def late() -> None:
            with psycopg.connect(db_url) as conn:
                waiter_pid.append(conn.info.backend_pid)
                try:
                    row = conn.execute(*second).fetchone()
                    conn.commit()
                    result.append(str(row[0]) if row else "none")
                except psycopg.Error as exc:
                    result.append(f"{exc.sqlstate} {exc.diag.message_detail}")

        waiter = threading.Thread(target=late)
        waiter.start()
        # The watcher polls on its own connection: inside a transaction,
        # pg_stat_activity is read once and kept.
        for _ in range(400):
            row = watcher.execute(
                "select %s = any(pg_blocking_pids(%s))",
                (holder.info.backend_pid, waiter_pid[0] if waiter_pid else 0),
            ).fetchone()
            if row and row[0]:
                break
            threading.Event().wait(0.05)
        else:
            raise AssertionError("the second call was never blocked by the first")
        holder.commit()
        waiter.join(30)
    return result[0]


def test_two_transfers_under_one_key_at_once_pay_once(db: psycopg.Connection, db_url: str) -> None:
    # Between two system accounts no account row is locked: the key alone
    # decides. The second waits for the first's uncommitted key, then
    # answers with the first's transfer.
    call = (
        "select (crypto.ledger_transfer('race:same', crypto.system_account('issuance'),"
        " crypto.system_account('adjustments'), %s, 'adjustment')).id"
    )
    second = _held_then_raced(db_url, (call, (5,)), (call, (5,)))
    assert db.execute(
        "select count(*), min(t.id)::text from crypto.ledger_transfers as t"
        " where t.idempotency_key = 'race:same'"
    ).fetchone() == (1, second)
    assert db.execute(
        "select count(*) from crypto.ledger_entries as e join crypto.ledger_transfers as t"
        " on t.id = e.transfer_id and t.created_at = e.created_at"
        " where t.idempotency_key = 'race:same'"
    ).fetchone() == (2,)


def test_a_batch_meeting_a_key_claimed_meanwhile_for_another_transfer_is_refused(
    db: psycopg.Connection, db_url: str
) -> None:
    # A single transfer holds the key; a batch credit (an award) under the
    # same key for another player waits for it, then finds it taken for
    # something else: refused (OX007) as the single form refuses it, never
    # skipped as if paid.
    accounts = [
        db.execute(
            "select crypto.user_account(%s)", (new_user(db, f"k{i}@example.com"),)
        ).fetchone()[0]  # type: ignore[index]
        for i in range(2)
    ]
    first = (
        "select (crypto.ledger_transfer('race:batch', crypto.system_account('issuance'), %s, 7,"
        " 'settlement_award')).id"
    )
    second = (
        "select crypto.ledger_credit_many(crypto.system_account('issuance'), 'settlement_award',"
        " array['race:batch'], array[%s]::bigint[], array[7]::bigint[])"
    )
    outcome = _held_then_raced(db_url, (first, (accounts[0],)), (second, (accounts[1],)))
    # Refused by the check after the insert (the key was not yet taken when
    # the batch looked), not by the one before it.
    assert outcome == "OX007 A transfer key of this batch was used meanwhile for another transfer"
    assert db.execute(
        "select count(*), min(credit_account_id) from crypto.ledger_transfers"
        " where idempotency_key = 'race:batch'"
    ).fetchone() == (1, accounts[0])
    assert db.execute(
        "select balance from crypto.ledger_accounts where id = %s", (accounts[1],)
    ).fetchone() == (0,)


def test_retries_with_one_key_at_once_make_one_prediction(
    db: psycopg.Connection, db_url: str
) -> None:
    open_session_for(db, "2026-11-27", "2026-11-27T12:00:00+09:00")
    uid = new_user(db, "doubleclick@example.com")
    outcomes = race(
        12, lambda _: as_user(db_url, uid, "select api.submit_prediction('AAPL', 'UP', 'click-1')")
    )
    assert outcomes == Counter({"ok": 12})
    assert db.execute("select count(*) from crypto.predictions").fetchone() == (1,)
    assert db.execute("select predictions_made from crypto.user_daily_limits").fetchone() == (1,)


def test_workers_racing_never_take_one_job_twice(db: psycopg.Connection, db_url: str) -> None:
    service(db, "select crypto.clock_set('2026-11-25T07:00:00+09:00')")
    for i in range(10):
        service(db, "select crypto.enqueue_job('eod.fetch', %s::jsonb)", f'{{"n": {i}}}')

    def claim(_: int) -> str:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("set role oxp_service")
            row = conn.execute("select (crypto.claim_job(array['eod.fetch'])).id").fetchone()
            return str(row[0]) if row and row[0] is not None else "none"

    outcomes = race(16, claim)
    taken = [k for k in outcomes if k != "none"]
    assert len(taken) == 10 and all(outcomes[k] == 1 for k in taken), outcomes
    assert outcomes["none"] == 6
    assert db.execute(
        "select count(*) from crypto.jobs where status = 'running' and attempts = 1"
    ).fetchone() == (10,)


def test_a_named_job_waits_for_the_minute_tick_and_records_its_run(
    db: psycopg.Connection, db_url: str
) -> None:
    """06:00 KST: pg_cron starts `oxp-open-session` and the minute tick at once.
    The one that comes second waits for the first and records its own run."""
    holder = psycopg.connect(db_url)
    holder.execute("select pg_advisory_xact_lock(hashtext('crypto.schedule_tick'))")
    result: list[Any] = []
    named = threading.Thread(
        target=lambda: result.append(service_call(db_url, "open_session")), daemon=True
    )
    named.start()
    named.join(timeout=1.5)
    assert named.is_alive(), "the named job waits while the tick holds the lock"
    holder.rollback()
    holder.close()
    named.join(timeout=30)
    assert result and "run" in result[0], result
    assert db.execute(
        "select status::text from crypto.job_runs where job = 'open_session'"
    ).fetchall() == [("succeeded",)]


def service_call(url: str, job: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set role oxp_service")
        row = conn.execute("select crypto.schedule_tick(%s)", (job,)).fetchone()
        return None if row is None else row[0]
