"""The PostgREST request model: one transaction per request that first sets
the role and the JWT claims, then calls one SQL function."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

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


@dataclass(frozen=True)
class Pools:
    """The API's two logins. `authenticator` becomes anon, app_user or
    auth_service; only `admin_authenticator` can become app_admin, so a flaw
    in the user path cannot reach the admin role."""

    user: AsyncConnectionPool
    admin: AsyncConnectionPool
    user_timeout_ms: int = 5000
    admin_timeout_ms: int = 30000
    # A SQLSTATE the API has not seen re-reads the map (problems.py).
    error_map: ErrorMapReloader = field(default_factory=lambda: ErrorMapReloader(30.0))

    def for_role(self, role: str) -> tuple[AsyncConnectionPool, int]:
        if role == ADMIN:
            return self.admin, self.admin_timeout_ms
        return self.user, self.user_timeout_ms

    async def open(self) -> None:
        await self.user.open(wait=False)
        await self.admin.open(wait=False)

    async def close(self) -> None:
        await self.user.close()
        await self.admin.close()


def new_pool(url: str, size: int, timeout: float = 5.0) -> AsyncConnectionPool:
    """A request waits `timeout` seconds for a connection, then gets 503
    (never a hung request while the database is down); a pooled connection
    is checked before use, so none broken by a restart is handed out."""
    return AsyncConnectionPool(
        url,
        min_size=size,
        max_size=size,
        open=False,
        timeout=timeout,
        check=AsyncConnectionPool.check_connection,
        kwargs={"application_name": "oxp-api"},
    )


async def call_api(pools: Pools, role: str, claims: str, function: str, *args: Any) -> str | None:
    """`api.<function>(args)` as the caller, on the pool of the login that
    may become that role; its JSON result as text, untouched.

    A function that must remember a refusal (under an Idempotency-Key)
    cannot raise it, as raising would undo the record; it returns
    `{"problem": {"sqlstate", "detail"}}`, answered here like a raised error.
    """
    query = sql.SQL(
        "select r::text, r -> 'problem' ->> 'sqlstate', r -> 'problem' ->> 'detail'"
        " from api.{}({}) as r"
    ).format(sql.Identifier(function), sql.SQL(", ").join(sql.Placeholder() * len(args)))
    if any(isinstance(a, str) and "\x00" in a for a in args):
        # PostgreSQL text cannot hold NUL; the driver would refuse it before
        # sending, which is the caller's mistake, not an outage.
        raise Problem("VALIDATION_FAILED", "Text may not contain NUL characters")
    pool, timeout_ms = pools.for_role(role)
    try:
        # Pipelined: BEGIN, the caller, the call and COMMIT in one round trip.
        async with pool.connection() as conn, conn.pipeline():
            await conn.execute(SET_CALLER, (role, claims, str(timeout_ms)))
            cur = await conn.execute(query, args)
            await conn.commit()
            row = await cur.fetchone()
    except psycopg.Error as exc:
        # No answer from the server (a lost link, a restart or restore in
        # progress), or the server going down under us (57P01..57P03).
        if exc.sqlstate is None or exc.sqlstate.startswith("57P"):
            raise Problem("DATABASE_UNAVAILABLE", "The database is unreachable") from exc
        if not is_mapped(exc.sqlstate):
            await pools.error_map.reload_for(exc.sqlstate, pools.user)
        raise from_database(exc, role) from exc
    if row is None:
        return None
    text, sqlstate, detail = row
    if sqlstate is not None:
        if not is_mapped(sqlstate):
            await pools.error_map.reload_for(sqlstate, pools.user)
        raise from_sqlstate(sqlstate, detail)
    return text  # type: ignore[no-any-return]
