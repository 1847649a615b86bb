"""The PostgREST request model: one transaction per request that first sets
the role and the JWT claims, then calls one SQL function."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from .problems import Problem, from_database

SET_CALLER = "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)"


def new_pool(url: str, size: int) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        url,
        min_size=size,
        max_size=size,
        open=False,
        kwargs={"application_name": "oxp-api"},
    )


async def call_api(
    pool: AsyncConnectionPool, role: str, claims: str, function: str, *args: Any
) -> str | None:
    """`api.<function>(args)` as the caller; its JSON result as text, untouched."""
    query = sql.SQL("select api.{}({})::text").format(
        sql.Identifier(function), sql.SQL(", ").join(sql.Placeholder() * len(args))
    )
    try:
        # Pipelined: BEGIN, the caller, the call and COMMIT in one round trip.
        async with pool.connection() as conn, conn.pipeline():
            await conn.execute(SET_CALLER, (role, claims))
            cur = await conn.execute(query, args)
            await conn.commit()
            row = await cur.fetchone()
    except psycopg.Error as exc:
        if exc.sqlstate is None:  # no answer from the server: pool timeout, lost link
            raise Problem("UNAVAILABLE", "The database is unreachable") from exc
        raise from_database(exc, role) from exc
    return None if row is None else row[0]
