"""The PostgREST request model: one transaction per request that first sets
the role and the JWT claims, then calls one SQL function."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import gate as rate_gate
from .config import Settings
from .problems import ErrorMapReloader, Problem, from_database, from_sqlstate, is_mapped

# A role's own statement_timeout (ALTER ROLE ... SET) does not apply on SET
# ROLE, so each request sets its own, for its transaction only.
SET_CALLER = (
    "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
    " set_config('statement_timeout', %s, true)"
)
# The sign-in helpers (login, second factor, refresh, logout, Google, the
# rate limiter) run as this role: neither anon nor a user token reaches them.
AUTH = "auth_service"
ADMIN = "app_admin"
# The rate limiter, before a request's call in its transaction
# (plpgsql/rate_limit.sql): the gate counts the request and lets the call's
# statement run only if it may (the guard below). Nothing runs after the
# call: the rows it counts stay locked to COMMIT, which only the player's
# own requests wait for (the IP's count is a row per backend, sql/0036).
# The gate and the caller's role in one statement, the first: EXECUTE on the
# gate is checked as the statement starts, as the API's login, which may
# call the gate itself (plpgsql/rate_limit.sql), before the role changes.
RATE_LIMIT_GATE = (
    "select api.rate_limit_gate(%s, %s, %s, %s)::text, set_config('role', %s, true),"
    " set_config('request.jwt.claims', %s, true), set_config('statement_timeout', %s, true)"
)
# A pseudo-constant condition: PostgreSQL evaluates it once, before the
# function scan under it, and never starts the scan when it is false.
GUARD = sql.SQL(" where current_setting('oxp.rate_limit', true) = 'allowed'")


# How far a replica is behind, in seconds, as any login may ask it: the age
# of the last commit it replayed. The worker commits a heartbeat on the
# primary every REPLICA_HEARTBEAT_SECONDS (crypto.replica_heartbeat), so a
# replica that keeps up replays one that often; an older last commit means
# it is behind, or its link is dead while its receiver has not yet timed
# out (received = replayed then proves nothing: it may receive nothing). With
# no worker beating, an idle primary reads as lag: the reads go to the
# primary, never to a replica whose freshness nobody vouches for. Unknown
# (null) when it receives nothing (no WAL receiver: the primary is down or
# the link is cut) or has replayed nothing since it started; unknown too
# when it is not in recovery (a primary, a promoted ex-replica, a restored
# copy: its data may be any age).
REPLICA_LAG = """
select pg_is_in_recovery(),
       case
         when not pg_is_in_recovery() then null
         when not exists (select from pg_stat_wal_receiver) then null
         when pg_last_xact_replay_timestamp() is null then null
         else greatest(extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp()), 0)
       end::float8
"""


class ApiPool(AsyncConnectionPool):
    """A pool of one API login, and whether its requests may use psycopg's
    pipeline mode (see new_pool)."""

    def __init__(self, *args: Any, pipelined: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipelined = pipelined


class Replica:
    """The reads that may lag (metrics, leaderboard, settlement results)
    go here while the replica answers and is at most `max_lag` seconds
    behind; otherwise, and whenever a read here fails for the replica's
    sake, to the primary. The lag is looked at once per `check_seconds`."""

    def __init__(
        self,
        user: ApiPool,
        admin: ApiPool,
        max_lag: float,
        check_seconds: float,
    ) -> None:
        self.user = user
        self.admin = admin
        self.max_lag = max_lag
        self.check_seconds = check_seconds
        self.lag: float | None = None
        self._checked = -1e9
        self._lock = asyncio.Lock()

    async def usable(self) -> bool:
        # One request looks (up to a second when the replica is down); the
        # others meanwhile go by the last look instead of queueing behind it.
        if time.monotonic() - self._checked >= self.check_seconds and not self._lock.locked():
            async with self._lock:
                if time.monotonic() - self._checked >= self.check_seconds:
                    self.lag = await self._measure()
                    self._checked = time.monotonic()
        return self.lag is not None and self.lag <= self.max_lag

    async def _measure(self) -> float | None:
        try:
            async with self.user.connection(timeout=1) as conn:
                cur = await conn.execute(REPLICA_LAG)
                row = await cur.fetchone()
                await conn.rollback()
        except (psycopg.Error, PoolTimeout):
            return None
        return None if row is None or row[1] is None else float(row[1])

    def down(self) -> None:
        """A read failed for the replica's sake: the primary until the next look."""
        self.lag = None
        self._checked = time.monotonic()

    async def open(self) -> None:
        await self.user.open(wait=False)
        await self.admin.open(wait=False)

    async def close(self) -> None:
        await self.user.close()
        await self.admin.close()


@dataclass(frozen=True)
class Pools:
    """The API's two logins. `authenticator` becomes anon, app_user or
    auth_service; only `admin_authenticator` can become app_admin, so a flaw
    in the user path cannot reach the admin role."""

    user: ApiPool
    admin: ApiPool
    user_timeout_ms: int = 5000
    admin_timeout_ms: int = 30000
    replica: Replica | None = None
    # A SQLSTATE the API has not seen re-reads the map (problems.py).
    error_map: ErrorMapReloader = field(default_factory=lambda: ErrorMapReloader(30.0))

    def for_role(self, role: str) -> tuple[ApiPool, int]:
        if role == ADMIN:
            return self.admin, self.admin_timeout_ms
        return self.user, self.user_timeout_ms

    async def open(self) -> None:
        await self.user.open(wait=False)
        await self.admin.open(wait=False)
        if self.replica:
            await self.replica.open()

    async def close(self) -> None:
        await self.user.close()
        await self.admin.close()
        if self.replica:
            await self.replica.close()


def new_pool(
    url: str, size: int, timeout: float = 5.0, prepare_threshold: int | None = 5
) -> ApiPool:
    """A request waits `timeout` seconds for a connection, then gets 503
    (never a hung request while the database is down); a pooled connection
    is checked before use, so none broken by a restart is handed out.
    `prepare_threshold=None` behind PgBouncer in transaction mode: a prepared
    statement lives on one server connection, the next transaction may get
    another. Behind it, no pipeline mode either: psycopg ends a pipeline with
    a Sync and, when that Sync's answer is not in yet, a Flush. PgBouncer
    1.18 may already have handed the server connection back on the Sync's
    ReadyForQuery; the late Flush then takes it again and, as PostgreSQL
    answers a Flush with nothing, keeps it forever (CI, 2026-11-27: every
    request after it hung)."""
    return ApiPool(
        url,
        min_size=size,
        max_size=size,
        open=False,
        timeout=timeout,
        check=AsyncConnectionPool.check_connection,
        kwargs={"application_name": "oxp-api", "prepare_threshold": prepare_threshold},
        pipelined=prepare_threshold is not None,
    )


def _batch(pool: ApiPool, conn: psycopg.AsyncConnection[Any]) -> Any:
    """The request's statements in one round trip (a pipeline), or one by one
    where a pipeline is unsafe (new_pool): the same transaction either way."""
    if pool.pipelined:
        return conn.pipeline()
    return contextlib.nullcontext()


def connection_lost(exc: psycopg.Error) -> bool:
    """The request's connection is gone, not its statement wrong: no answer
    (a lost link, a restart or restore in progress), the server going down
    under us (57P01..57P03), a connection error reported by a pooler (08),
    or the session ended for idling in its transaction (25P03,
    plpgsql/00_api_logins.sql). Answered DATABASE_UNAVAILABLE (503)."""
    state = exc.sqlstate
    return state is None or state.startswith(("57P", "08")) or state == "25P03"


def _replica_failed(exc: psycopg.Error) -> bool:
    """The replica's fault, not the request's: its connection lost, a query
    cancelled by a conflict with recovery, or a read-only refusal."""
    return connection_lost(exc) or exc.sqlstate in ("40001", "25006")


async def call_api(pools: Pools, role: str, claims: str, function: str, *args: Any) -> str | None:
    """`api.<function>(args)` as the caller, on the pool of the login that
    may become that role; its JSON result as text, untouched.

    A function that must remember a refusal (under an Idempotency-Key)
    cannot raise it, as raising would undo the record; it returns
    `{"problem": {"sqlstate", "detail"}}`, answered here like a raised error.
    """
    query = _api_query(function, len(args))
    _refuse_nul(args)
    pool, timeout_ms = pools.for_role(role)
    gate = rate_gate.pending()
    if gate is not None and role == ADMIN:
        # The admin login cannot become auth_service: counted on its own.
        await count_alone(pools, gate)
        gate = None
    try:
        if gate is None:
            row = await _run(pool, timeout_ms, role, claims, query, args)
        else:
            row = await _run_gated(pool, timeout_ms, role, claims, query, args, gate)
    except psycopg.Error as exc:
        if gate is not None:
            await _recount(pools, gate, exc)
        state = exc.sqlstate
        if state is None or connection_lost(exc):
            raise Problem("DATABASE_UNAVAILABLE", "The database is unreachable") from exc
        if not is_mapped(state):
            await pools.error_map.reload_for(state, pools.user)
        raise from_database(exc, role) from exc
    return await _answer(pools, row)


async def count_alone(pools: Pools, gate: rate_gate.Gate) -> None:
    """The request's count in a transaction of its own (api.rate_limit): for
    a request that reaches no pipelined call (no database call, an admin
    call, a read from the replica, a route with costly work before its
    call). RATE_LIMITED when over a limit."""
    answer = await call_api(pools, AUTH, "", "rate_limit", gate.ip, gate.user, gate.kinds)
    rate_gate.verdict(gate, answer)


async def _recount(pools: Pools, gate: rate_gate.Gate, exc: psycopg.Error) -> None:
    """The call failed, and its transaction took the request's count with it:
    counted again on its own, so that failing requests count as they did
    (the call's own error is the answer). Not when the connection is gone."""
    if connection_lost(exc):
        return
    with contextlib.suppress(Problem, psycopg.Error):
        await count_alone(pools, gate)


async def _run_gated(
    pool: ApiPool,
    timeout_ms: int,
    role: str,
    claims: str,
    query: sql.Composed,
    args: tuple[Any, ...],
    gate: rate_gate.Gate,
) -> Any:
    """`_run` with the rate limiter before the call, in the same transaction
    (and round trip, where pipelined: see new_pool): BEGIN, the gate with
    the caller, the guarded call, COMMIT: as many statements as `_run`. A
    refusal is not an error (that would undo its count): the gate leaves
    oxp.rate_limit unset, the guard keeps the call from running, and the
    refusal commits with its count."""
    try:
        async with pool.connection() as conn, _batch(pool, conn):
            # Asked once a connection is ours: the wait for one is not the
            # gate's, and the ask's window is measured from here.
            if gate.leases is not None:
                gate.asked_at = time.monotonic()
                gate.asked = gate.leases.wanted(gate.ip, gate.user, gate.kinds, gate.asked_at)
            counted = await conn.execute(
                RATE_LIMIT_GATE,
                (gate.ip, gate.user, gate.kinds, gate.asked, role, claims, str(timeout_ms)),
            )
            cur = await conn.execute(query + GUARD, args)
            await conn.commit()
            answer = await counted.fetchone()
            row = await cur.fetchone()
    except BaseException:
        # Rolled back: no lease was reserved; the next request may ask.
        rate_gate.verdict_lost(gate)
        raise
    rate_gate.verdict(gate, answer[0] if answer else None)
    return row


def _refuse_nul(args: tuple[Any, ...]) -> None:
    if any(isinstance(a, str) and "\x00" in a for a in args):
        # PostgreSQL text cannot hold NUL; the driver would refuse it before
        # sending, which is the caller's mistake, not an outage (nor a
        # replica's failure).
        raise Problem("VALIDATION_FAILED", "Text may not contain NUL characters")


async def _answer(pools: Pools, row: Any) -> str | None:
    """An api function's row: its JSON text, or the problem it returned;
    and the answer of a limit the function checked itself, if any."""
    if row is None:
        return None
    text, sqlstate, detail, limited = row
    limit_headers = rate_gate.call_verdict(limited)
    if sqlstate is not None:
        if not is_mapped(sqlstate):
            await pools.error_map.reload_for(sqlstate, pools.user)
        problem = from_sqlstate(sqlstate, detail)
        problem.headers = limit_headers
        raise problem
    return text  # type: ignore[no-any-return]


def _api_query(function: str, n: int) -> sql.Composed:
    # The last column: a limit the function checked itself leaves its answer
    # in oxp.rate_limit_answer (crypto.place_prediction). Read in the call's
    # own statement, after the function ran (its scan comes first):
    # transaction-local, so never another request's.
    return sql.SQL(
        "select r::text, r -> 'problem' ->> 'sqlstate', r -> 'problem' ->> 'detail',"
        " nullif(current_setting('oxp.rate_limit_answer', true), '')"
        " from api.{}({}) as r"
    ).format(sql.Identifier(function), sql.SQL(", ").join(sql.Placeholder() * n))


async def _run(
    pool: ApiPool,
    timeout_ms: int,
    role: str,
    claims: str,
    query: sql.Composed,
    args: tuple[Any, ...],
    timeout: float | None = None,
) -> Any:
    # BEGIN, the caller, the call and COMMIT: one round trip where pipelined.
    async with pool.connection(timeout=timeout) as conn, _batch(pool, conn):
        await conn.execute(SET_CALLER, (role, claims, str(timeout_ms)))
        cur = await conn.execute(query, args)
        await conn.commit()
        return await cur.fetchone()


async def read_api(pools: Pools, role: str, claims: str, function: str, *args: Any) -> str | None:
    """`call_api` for a read that may lag (a `stable` function that writes
    nothing): from the replica when it is up and close enough behind, else,
    or when the replica fails under it, from the primary. The same caller,
    role and errors either way: the replica has the primary's roles."""
    _refuse_nul(args)
    replica = pools.replica
    if replica is None or not await replica.usable():
        return await call_api(pools, role, claims, function, *args)
    gate = rate_gate.pending()
    if gate is not None:
        await count_alone(pools, gate)  # the replica cannot write the count
    pool = replica.admin if role == ADMIN else replica.user
    _, timeout_ms = pools.for_role(role)
    try:
        row = await _run(pool, timeout_ms, role, claims, _api_query(function, len(args)), args, 1)
    except PoolTimeout:
        replica.down()
        return await call_api(pools, role, claims, function, *args)
    except psycopg.Error as exc:
        if _replica_failed(exc):
            replica.down()
            return await call_api(pools, role, claims, function, *args)
        raise from_database(exc, role) from exc
    return await _answer(pools, row)


def new_replica(settings: Settings) -> Replica | None:
    """The replica's two pools (the API's logins there), when DATABASE_REPLICA_URL is set."""
    user_url = settings.replica_url_as("authenticator")
    admin_url = settings.replica_url_as("admin_authenticator")
    if user_url is None or admin_url is None:
        return None
    size = settings.replica_pool_size
    threshold = settings.api_prepare_threshold
    return Replica(
        new_pool(user_url, size, timeout=1.0, prepare_threshold=threshold),
        new_pool(admin_url, max(1, size // 2), timeout=1.0, prepare_threshold=threshold),
        settings.replica_max_lag_seconds,
        settings.replica_check_seconds,
    )
