"""Jepsen's bank test, adapted to points: redemptions, ad rewards, admin
adjustments, a settlement and the vendor worker all at once, some clients
retrying with the same key, backends killed mid-transaction. Afterwards the
books must balance by the ledger's own rules and by an account of the
business facts kept apart from the ledger."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from ox_sidecar.worker import run_once
from support import SYMBOLS, act_as, new_user, race_each, service

pytestmark = pytest.mark.usefixtures("calendar")

APP = "oxp-bank-test"
START = 1000


@dataclass
class Op:
    kind: str
    user: str
    key: str
    arg: Any
    acked: bool = False
    answer: Any = None


def _attempt(url: str, op: Op, app: str = APP) -> Any:
    """One try of one operation in its own transaction; the short sleep before
    COMMIT leaves the killer a window inside the transaction."""
    with psycopg.connect(url, application_name=app) as conn:
        if op.kind == "redeem":
            act_as(conn, op.user)
            row = conn.execute("select api.redeem_reward(%s, %s)", (op.arg, op.key)).fetchone()
        elif op.kind == "ad":
            row = _ad(conn, op)
        elif op.kind == "adjust":
            conn.execute("set local role oxp_operator")
            row = conn.execute(
                "select crypto.adjust_points((select email from crypto.users where id = %s),"
                " %s, 'bank test', %s)",
                (op.user, op.arg, op.key),
            ).fetchone()
        elif op.kind == "settle":
            conn.execute("set local role oxp_operator")
            row = conn.execute("select crypto.settle_session(%s)", (op.arg,)).fetchone()
        else:  # "issue": the worker's vendor step
            conn.execute("set role oxp_service")
            conn.commit()
            conn.autocommit = True
            return run_once(conn)
        conn.execute("select pg_sleep(0.002)")
        conn.commit()
    assert row is not None
    return row[0]


def _ad(conn: psycopg.Connection, op: Op) -> Any:
    """The user's click (an impression), then the network's verified callback
    for it, as the API passes it on (ad_network), with the key as transaction
    id. A payment refused (the cap) is the answer; the impression stays."""
    now = conn.execute("select crypto.now()").fetchone()[0]  # type: ignore[index]
    act_as(conn, op.user)
    shown = conn.execute("select api.click_ad(%s, %s)", (op.arg, op.key)).fetchone()
    assert shown is not None
    if "problem" in shown[0]:
        return shown
    conn.execute("select set_config('role', 'ad_network', true)")
    try:
        with conn.transaction():
            return conn.execute(
                "select api.ad_ssv_reward(%s, %s, %s, %s, '{}')",
                (op.key, shown[0]["impression_id"], op.user, now),
            ).fetchone()
    except psycopg.DatabaseError as exc:
        if not (exc.sqlstate or "").startswith("OX"):
            raise  # a killed backend, a deadlock: the caller's to retry
        return ({"problem": {"sqlstate": exc.sqlstate}},)


# How attempts failed, across threads. psycopg's DeadlockDetected and
# SerializationFailure are OperationalErrors too: they are told apart first,
# or a deadlock would pass for a killed backend and be retried unseen.
FAILURES: Counter[str] = Counter()
_failures_lock = threading.Lock()


def _count(kind: str) -> None:
    with _failures_lock:
        FAILURES[kind] += 1


def _run(url: str, op: Op, rng: random.Random) -> Op:
    """Retry with the same key until acknowledged; sometimes retry even after
    success, as a client that lost the response would."""
    killed = 0
    for _ in range(60):
        # The last operations of the run are the killer's only targets: one
        # killed 20 times over is left alone (a nemesis that singles out a
        # client forever only proves the client can be starved).
        app = APP if killed < 20 else f"{APP}-spared"
        try:
            op.answer = _attempt(url, op, app)
        except psycopg.errors.DeadlockDetected:
            _count("deadlock")  # asserted to be zero: the lock order is fixed
            continue
        except psycopg.errors.SerializationFailure:
            _count("serialization")  # a documented retry (40001), e.g. a price change
            continue
        except psycopg.OperationalError:
            _count("killed")
            killed += 1
            continue  # killed mid-flight: unknown outcome, retry with the same key
        op.acked = True
        if rng.random() < 0.3:
            again = _retry_quietly(url, op)
            if again is not None and op.kind in ("redeem", "ad", "adjust"):
                assert again == op.answer, f"{op.kind} {op.key}: a retry answered differently"
        return op
    return op


def _retry_quietly(url: str, op: Op) -> Any:
    try:
        return _attempt(url, op)
    except psycopg.errors.DeadlockDetected:
        _count("deadlock")
        return None
    except psycopg.errors.SerializationFailure:
        _count("serialization")
        return None
    except psycopg.OperationalError:
        return None


def _killer(url: str, stop: threading.Event, kills: list[int]) -> None:
    rng = random.Random(7)
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            pids = [
                pid
                for (pid,) in conn.execute(
                    "select pid from pg_stat_activity where application_name = %s"
                    " and state in ('active', 'idle in transaction')",
                    (APP,),
                )
            ]
            if pids:
                victim = rng.choice(pids)
                if conn.execute("select pg_terminate_backend(%s)", (victim,)).fetchone() == (True,):
                    kills.append(victim)
            time.sleep(rng.uniform(0.01, 0.04))


def _books(db: psycopg.Connection) -> dict[str, Any]:
    return {
        "negative": db.execute(
            "select count(*) from crypto.ledger_accounts where kind = 'user' and balance < 0"
        ).fetchone()[0],  # type: ignore[index]
        "sum": db.execute("select coalesce(sum(amount), 0) from crypto.ledger_entries").fetchone()[
            0
        ],  # type: ignore[index]
        "violations": db.execute(
            "select coalesce(json_agg(v), '[]') from crypto.integrity_violations() as v"
        ).fetchone()[0],  # type: ignore[index]
    }


def test_bank_under_races_retries_and_killed_backends(db: psycopg.Connection, db_url: str) -> None:
    rng = random.Random(42)
    # Tuesday's predictions, closed and priced: settled during the storm.
    service(db, "select crypto.clock_set('2026-11-24T09:00:00+09:00')")
    service(db, "select crypto.open_session('2026-11-24')")
    users = [new_user(db, f"bank{i}@example.com") for i in range(8)]
    for uid in users:
        with db.transaction():
            act_as(db, uid)
            for symbol in rng.sample(SYMBOLS, 3):
                db.execute(
                    "select api.submit_prediction(%s, %s)", (symbol, rng.choice(["UP", "DOWN"]))
                )
    service(db, "select crypto.clock_set('2026-11-25T07:00:00+09:00')")
    service(db, "select crypto.close_session('2026-11-24')")
    for i, symbol in enumerate(SYMBOLS):
        service(db, "select crypto.load_eod_price('2026-11-23', %s, 100, 'test')", symbol)
        close = ("101", "99", "100")[i % 3]  # up, down and VOID symbols
        service(db, "select crypto.load_eod_price('2026-11-24', %s, %s, 'test')", symbol, close)
    service(db, "select crypto.open_session('2026-11-25')")  # ads count towards this one
    for uid in users:
        email = db.execute("select email from crypto.users where id = %s", (uid,)).fetchone()[0]  # type: ignore[index]
        service(
            db, "select crypto.adjust_points(%s, %s, 'start', %s)", email, START, f"start:{uid}"
        )
    service(db, "select crypto.upsert_reward('R1', 'Scarce', 150, 12)")
    service(db, "select crypto.upsert_reward('R2', 'Cheap', 40, 100)")
    with db.transaction():
        db.execute(
            "insert into crypto.ads (id, title, reward_kind, reward_points) values"
            " ('pts', '20 points', 'POINTS', 20), ('slot', 'A slot', 'SLOT', 0)"
        )
        db.execute(
            "update crypto.settings set value = '0.3' where key = 'rewards.vendor_failure_rate'"
        )

    ops: list[Op] = []
    for n in range(240):
        uid = rng.choice(users)
        kind = rng.choice(["redeem", "redeem", "ad", "ad", "adjust", "issue"])
        if kind == "redeem":
            ops.append(Op(kind, uid, f"k{n}", rng.choice(["R1", "R2"])))
        elif kind == "ad":
            ops.append(Op(kind, uid, f"k{n}", rng.choice(["pts", "slot"])))
        elif kind == "adjust":
            ops.append(Op(kind, uid, f"k{n}", rng.choice([-300, -50, 25, 200])))
        else:
            ops.append(Op(kind, uid, f"k{n}", None))
    for at in (40, 41, 120):
        ops.insert(at, Op("settle", users[0], f"settle{at}", "2026-11-24"))

    FAILURES.clear()
    stop = threading.Event()
    kills: list[int] = []
    killer = threading.Thread(target=_killer, args=(db_url, stop, kills))
    killer.start()
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            done = list(pool.map(lambda op: _run(db_url, op, random.Random(op.key)), ops))
    finally:
        stop.set()
        killer.join()
    # Drain what the vendor still has to do, with no one killing anything:
    # backoffs end now, and the leases of workers killed mid-job expire
    # (with the time a vendor call of theirs could still have run).
    with db.transaction():
        db.execute(
            "update crypto.settings set value = '0' where key = 'rewards.vendor_failure_rate'"
        )
        db.execute(
            "update crypto.jobs set run_after = crypto.now() - interval '1 day',"
            " locked_at = now() - interval '1 hour', lease_until = null"
            " where status in ('queued', 'running')"
        )
    with psycopg.connect(db_url, autocommit=True) as worker:
        worker.execute("set role oxp_service")
        while run_once(worker):
            pass

    assert kills, "the killer never hit a transaction"
    assert FAILURES["deadlock"] == 0, f"deadlocks: {FAILURES}"
    print(f"bank test: {len(kills)} backends killed, attempts failed: {dict(FAILURES)}")
    assert all(op.acked for op in done), [op for op in done if not op.acked]
    books = _books(db)
    assert books == {"negative": 0, "sum": 0, "violations": []}
    # Every movement is in the audit chain, and the chain verifies.
    service(db, "select crypto.audit_seal()")
    assert service(db, "select crypto.audit_verify()") | {"rows_checked": None} == {
        "ok": True,
        "pending": 0,
        "first_bad": None,
        "rows_checked": None,
    }
    assert db.execute(
        "select count(*) from crypto.ledger_transfers as t where t.refusal is null"
        " and t.reason <> 'settlement_award' and not exists (select from crypto.audit_logs as l"
        "  where l.action = 'points.transfer' and l.subject = t.idempotency_key)"
    ).fetchone() == (0,)

    # Each key applied once, and every acknowledged operation is there.
    for op in done:
        if op.kind == "redeem":
            rows = db.execute(
                "select count(*) from crypto.rewards_redemptions where user_id = %s"
                " and idempotency_key = %s",
                (op.user, op.key),
            ).fetchone()[0]  # type: ignore[index]
            assert rows == (0 if "problem" in op.answer else 1), op
        elif op.kind == "ad":
            rows = db.execute(
                "select count(*) from crypto.ad_unlocks where user_id = %s and transaction_id = %s",
                (op.user, op.key),
            ).fetchone()[0]  # type: ignore[index]
            assert rows == (0 if "problem" in op.answer else 1), op
        elif op.kind == "adjust":
            refusal = db.execute(
                "select refusal from crypto.ledger_transfers where idempotency_key = %s",
                ("adjust:" + op.key,),
            ).fetchone()
            assert refusal is not None, op
            assert (refusal[0] is None) == ("problem" not in op.answer), op
    assert db.execute(
        "select phase::text from crypto.session_control where trading_day = '2026-11-24'"
    ).fetchone() == ("SETTLED",)

    # The same balances from the business facts alone, never reading entries.
    for uid in users:
        expected = db.execute(
            """
            select
                coalesce((select sum((l.details ->> 'amount')::bigint) from crypto.audit_logs as l
                          where l.action = 'points.adjust'
                            and l.details ->> 'user_id' = (%(u)s::uuid)::text), 0)
              + 100 * (select count(*) from crypto.predictions as p
                       join crypto.settlements as s using (trading_day, symbol)
                       where p.user_id = %(u)s and p.choice::text = s.outcome::text)
              + 20 * (select count(*) from crypto.ad_unlocks as a
                      where a.user_id = %(u)s and a.reward_kind = 'POINTS')
              - coalesce((select sum(r.cost_points) from crypto.rewards_redemptions as r
                          where r.user_id = %(u)s and r.status in ('REQUESTED', 'ISSUED')), 0)
            """,
            {"u": uid},
        ).fetchone()[0]  # type: ignore[index]
        balance = db.execute(
            "select balance from crypto.ledger_accounts where user_id = %s", (uid,)
        ).fetchone()[0]  # type: ignore[index]
        assert balance == expected, uid
    stock = db.execute(
        "select sku, stock, reserved, issued from crypto.rewards_inventory order by sku"
    ).fetchall()
    assert all(reserved + issued <= total for _, total, reserved, issued in stock)
    jobs = db.execute(
        "select status::text, attempts, last_error from crypto.jobs where status <> 'done'"
    ).fetchall()
    assert jobs == []
    assert all(reserved == 0 for _, _, reserved, _ in stock)  # the vendor answered every one


def test_twenty_users_race_for_the_last_unit(db: psycopg.Connection, db_url: str) -> None:
    users = [new_user(db, f"last{i}@example.com") for i in range(20)]
    for uid in users:
        email = db.execute("select email from crypto.users where id = %s", (uid,)).fetchone()[0]  # type: ignore[index]
        service(db, "select crypto.adjust_points(%s, 500, 'start', %s)", email, f"s:{uid}")
    service(db, "select crypto.upsert_reward('LAST', 'The last one', 300, 1)")

    def redeem(i: int) -> str:
        with psycopg.connect(db_url) as conn:
            act_as(conn, users[i])
            answer = conn.execute("select api.redeem_reward('LAST', 'buy')").fetchone()[0]  # type: ignore[index]
            conn.commit()
        return answer["problem"]["sqlstate"] if "problem" in answer else "won"

    outcomes = race_each(20, redeem)
    assert sorted(outcomes) == ["OX202"] * 19 + ["won"]
    winner = users[outcomes.index("won")]
    balances = dict(
        db.execute(
            "select user_id::text, balance from crypto.ledger_accounts where user_id = any(%s::uuid[])",
            (users,),
        ).fetchall()
    )
    assert balances == {uid: 200 if uid == winner else 500 for uid in users}
    assert db.execute(
        "select stock, reserved, issued from crypto.rewards_inventory where sku = 'LAST'"
    ).fetchone() == (1, 1, 0)
