"""The PostgREST request model: one transaction per request that first sets
the role and the JWT claims, then calls one SQL function."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from .problems import Problem, from_database, from_sqlstate

SET_CALLER = "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)"


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


async def call_api(
    pool: AsyncConnectionPool, role: str, claims: str, function: str, *args: Any
) -> str | None:
    """`api.<function>(args)` as the caller; its JSON result as text, untouched.

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
    try:
        # Pipelined: BEGIN, the caller, the call and COMMIT in one round trip.
        async with pool.connection() as conn, conn.pipeline():
            await conn.execute(SET_CALLER, (role, claims))
            cur = await conn.execute(query, args)
            await conn.commit()
            row = await cur.fetchone()
    except psycopg.Error as exc:
        # No answer from the server (a lost link, a restart or restore in
        # progress), or the server going down under us (57P01..57P03).
        if exc.sqlstate is None or exc.sqlstate.startswith("57P"):
            raise Problem("DATABASE_UNAVAILABLE", "The database is unreachable") from exc
        raise from_database(exc, role) from exc
    if row is None:
        return None
    text, sqlstate, detail = row
    if sqlstate is not None:
        raise from_sqlstate(sqlstate, detail)
    return text  # type: ignore[no-any-return]
