"""bench/bank: Jepsen's bank test at size. 32 clients for 60 s doing
ledger transfers, predictions, redemptions and operator adjustments, each
retried under its own idempotency key until acknowledged, with PostgreSQL
stopped (`pg_ctl stop -m immediate`) and started again in the middle.
Prints what was acknowledged, lost and duplicated, the deadlocks (must be
0), the serialization retries, and the seconds to recover. Durable commits
throughout (a throwaway cluster)."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ox_sidecar.calendar_sync import nyse_sessions
from ox_sidecar.migrate import migrate
from throwaway import throwaway_cluster

PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]
DAY = "2026-11-24"
USERS = 320


@dataclass
class Tally:
    acked: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # kind -> (key, applied)
    failures: Counter[str] = field(default_factory=Counter)
    first_ok_after_restart: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def pg_ctl(data: Path, *args: str) -> None:
    cmd = [PG_CTL, "-D", str(data), *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True)


def attempt(
    url: str, kind: str, key: str, user: tuple[str, str, int], other: int, rng: random.Random
) -> bool:
    """One try, in its own transaction; True when it changed the books
    (False: an answer that refused, e.g. not enough points)."""
    uid, email, account = user
    with psycopg.connect(url, connect_timeout=3) as conn:
        if kind == "transfer":  # any two accounts, either way: the lock order must hold
            row = conn.execute(
                "select (crypto.ledger_transfer(%s, %s, %s, %s, 'bench')).refusal",
                (f"bank:{key}", account, other, rng.randint(1, 5)),
            ).fetchone()
            return row is not None and row[0] is None
        if kind == "adjust":
            conn.execute("set local role oxp_operator")
            answer = conn.execute(
                "select crypto.adjust_points(%s, %s, 'bench', %s)",
                (email, rng.choice([-20, 10, 50]), key),
            ).fetchone()[0]  # type: ignore[index]
            return "problem" not in answer
        conn.execute(
            "select set_config('role', 'app_user', true),"
            " set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": uid, "role": "app_user"}),),
        )
        if kind == "predict":
            answer = conn.execute(
                "select api.submit_prediction(%s, %s, %s)",
                (rng.choice(SYMBOLS), rng.choice(["UP", "DOWN"]), key),
            ).fetchone()[0]  # type: ignore[index]
        else:
            answer = conn.execute("select api.redeem_reward('COIN', %s)", (key,)).fetchone()[0]  # type: ignore[index]
        return "problem" not in answer


def client(
    url: str, n: int, users: list[tuple[str, str, int]], stop: threading.Event, tally: Tally
) -> None:
    rng = random.Random(n)
    i = 0
    while not stop.is_set():
        kind = rng.choice(["transfer", "transfer", "predict", "redeem", "adjust"])
        key = f"c{n}-{i}"
        i += 1
        user, other = rng.sample(users, 2)
        seed = rng.random()  # the same arguments on every retry
        while True:
            try:
                applied = attempt(url, kind, key, user, other[2], random.Random(seed))
            except psycopg.errors.DeadlockDetected:
                with tally.lock:
                    tally.failures["deadlock"] += 1
                continue
            except psycopg.errors.SerializationFailure:
                with tally.lock:
                    tally.failures["serialization"] += 1
                continue
            except psycopg.OperationalError:
                with tally.lock:
                    tally.failures["unavailable"] += 1  # down: unknown outcome, same key again
                time.sleep(0.05)
                continue
            except psycopg.DatabaseError as exc:
                if not (exc.sqlstate or "").startswith("OX"):
                    raise
                applied = False  # a refusal of the game's rules is an answer
            with tally.lock:
                tally.acked.setdefault(kind, []).append((key, applied))
                if tally.first_ok_after_restart is None and stop_restarted.is_set():
                    tally.first_ok_after_restart = time.monotonic()
            break


stop_restarted = threading.Event()


def setup(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "select crypto.sync_calendar(%s::jsonb)", (json.dumps(nyse_sessions(2026, 2026)),)
        )
        conn.execute("select crypto.clock_set('2026-11-24T09:00:00+09:00')")
        conn.execute("select crypto.open_session(%s)", (DAY,))
        conn.execute("update crypto.settings set value = '10' where key = 'predictions.base_limit'")
        conn.execute("select crypto.upsert_reward('COIN', 'A coin', 3, 10000000)")
        conn.execute(
            "insert into crypto.users (id, email, password_hash)"
            " select gen_random_uuid(), 'bank' || i || '@example.com', '$argon2id$bench'"
            " from generate_series(1, %s) as i",
            (USERS,),
        )
        conn.execute(
            "insert into crypto.ledger_accounts (kind, user_id)"
            " select 'user', id from crypto.users order by email"
        )
        conn.execute(
            "select count(crypto.adjust_points(u.email, 1000, 'bench seed', 'seed:' || u.id))"
            " from crypto.users as u"
        )
        rows = conn.execute(
            "select u.id::text, u.email, a.id from crypto.users as u"
            " join crypto.ledger_accounts as a on a.user_id = u.id order by a.id"
        ).fetchall()
    return [(str(u), str(e), int(a)) for u, e, a in rows]


def check(url: str, tally: Tally) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        seen: Counter[str] = Counter()
        for (key,) in conn.execute(
            "select substr(idempotency_key, 6) from crypto.ledger_transfers"
            " where idempotency_key like 'bank:c%%' and refusal is null"
            " union all select substr(idempotency_key, 8) from crypto.ledger_transfers"
            " where idempotency_key like 'adjust:c%%' and refusal is null"
            " union all select idempotency_key from crypto.rewards_redemptions"
            " where idempotency_key like 'c%%'"
        ):
            seen[key] += 1
        # A prediction keeps its key in the idempotency store, with its answer.
        predicted = conn.execute("select count(*) from crypto.predictions").fetchone()[0]  # type: ignore[index]
        negative = conn.execute(
            "select count(*) from crypto.ledger_accounts where kind = 'user' and balance < 0"
        ).fetchone()[0]  # type: ignore[index]
        violations = conn.execute(
            "select coalesce(json_agg(v), '[]') from crypto.integrity_violations() as v"
        ).fetchone()[0]  # type: ignore[index]
        total = conn.execute(
            "select coalesce(sum(amount), 0) from crypto.ledger_entries"
        ).fetchone()[0]  # type: ignore[index]
    applied = {
        key for kind, keys in tally.acked.items() if kind != "predict" for key, ok in keys if ok
    }
    predictions = sum(ok for _, ok in tally.acked.get("predict", []))
    return {
        "lost": len(applied - set(seen)) + max(0, predictions - predicted),
        "duplicated": sum(n - 1 for n in seen.values() if n > 1) + max(0, predicted - predictions),
        "not_acknowledged_but_present": len(set(seen) - applied),
        "negative_balances": negative,
        "integrity_violations": violations,
        "ledger_sum": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--down", type=float, default=3.0, help="seconds PostgreSQL stays down")
    args = parser.parse_args()
    with throwaway_cluster() as (work, port):
        data = work / "pg"
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        migrate(url, "development")
        users = setup(url)
        tally, stop = Tally(), threading.Event()
        threads = [
            threading.Thread(target=client, args=(url, n, users, stop, tally))
            for n in range(args.clients)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(args.seconds / 2)
        pg_ctl(data, "-m", "immediate", "stop")
        time.sleep(args.down)
        pg_ctl(data, "-l", str(data / "server.log"), "-w", "-t", "60", "start")
        up_at = time.monotonic()
        stop_restarted.set()
        time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        deadlocks_logged = (
            (data / "server.log").read_text(errors="replace").count("deadlock detected")
        )
        result = check(url, tally)
    acked = {kind: len(keys) for kind, keys in sorted(tally.acked.items())}
    recovered = (tally.first_ok_after_restart or float("nan")) - up_at
    print(
        f"bench/bank: {args.clients} clients, {elapsed:.0f} s, a crash (-m immediate) at {args.seconds / 2:.0f} s"
    )
    print(
        f"acknowledged      {sum(acked.values())} {acked} ({sum(acked.values()) / elapsed:.0f}/s)"
    )
    print(f"lost              {result['lost']}")
    print(f"duplicated        {result['duplicated']}")
    print(f"deadlocks         {tally.failures['deadlock']} (server log: {deadlocks_logged})")
    print(f"serialization     {tally.failures['serialization']} retries")
    print(
        f"while down        {tally.failures['unavailable']} attempts refused, retried with the same key"
    )
    print(
        f"recovery          {recovered:.2f} s from PostgreSQL started to the first acknowledged operation"
    )
    print(
        f"books             negative balances {result['negative_balances']}, ledger sum"
        f" {result['ledger_sum']}, integrity violations {len(result['integrity_violations'])}"
    )
    ok = (
        result["lost"] == 0
        and result["duplicated"] == 0
        and tally.failures["deadlock"] == 0
        and deadlocks_logged == 0
        and result["negative_balances"] == 0
        and result["integrity_violations"] == []
        and result["ledger_sum"] == 0
    )
    if not ok:
        raise SystemExit("bench/bank: FAILED")


if __name__ == "__main__":
    main()
