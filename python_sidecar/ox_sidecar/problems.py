"""RFC 9457 problem+json. Status and code come from crypto.error_codes,
looked up by SQLSTATE for database errors, by code for the sidecar's own."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.responses import Response

log = logging.getLogger("ox_sidecar")

PROBLEM_TYPE = "https://ox-predict.example/problems/"


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    title: str


# Fallbacks until the table is read: the sidecar's own codes must work even
# when the database is down.
_BY_CODE: dict[str, ErrorCode] = {
    "VALIDATION_FAILED": ErrorCode("VALIDATION_FAILED", 422, "The request is not valid"),
    "INVALID_TOKEN": ErrorCode("INVALID_TOKEN", 401, "Missing, expired or invalid credentials"),
    "INVALID_CREDENTIALS": ErrorCode("INVALID_CREDENTIALS", 401, "Wrong email or password"),
    "NOT_FOUND": ErrorCode("NOT_FOUND", 404, "No such resource"),
    "METHOD_NOT_ALLOWED": ErrorCode("METHOD_NOT_ALLOWED", 405, "This method is not allowed here"),
    "UNAVAILABLE": ErrorCode("UNAVAILABLE", 503, "The service is unavailable"),
    "DATABASE_UNAVAILABLE": ErrorCode(
        "DATABASE_UNAVAILABLE", 503, "The database is unreachable; retry shortly"
    ),
    "PAYLOAD_TOO_LARGE": ErrorCode("PAYLOAD_TOO_LARGE", 413, "The request body is too large"),
    "INTERNAL": ErrorCode("INTERNAL", 500, "Internal error"),
}
_BY_SQLSTATE: dict[str, ErrorCode] = {}


def error_codes_loaded() -> bool:
    return bool(_BY_SQLSTATE)


async def load_error_codes(conn: psycopg.AsyncConnection) -> None:
    async with conn.transaction():
        await conn.execute("set local role anon")
        cur = await conn.execute("select sqlstate, code, http_status, title from api.error_codes()")
        rows = await cur.fetchall()
    _remember(rows)


def load_error_codes_sync(conn: psycopg.Connection) -> None:
    """The same table for `oxp`, on its own connection (oxp_service may call it)."""
    _remember(conn.execute("select sqlstate, code, http_status, title from api.error_codes()"))


def _remember(rows: Iterable[tuple[str, str, int, str]]) -> None:
    """The table as it is now: a row gone from it is gone from the map."""
    fresh = {sqlstate: ErrorCode(code, status, title) for sqlstate, code, status, title in rows}
    _BY_SQLSTATE.clear()
    _BY_SQLSTATE.update(fresh)
    for sqlstate, entry in fresh.items():
        if sqlstate.startswith("OX"):
            _BY_CODE[entry.code] = entry


class ErrorMapReloader:
    """Re-reads api.error_codes() when the API meets a SQLSTATE it has not
    seen (a migration added a code while it ran), at most once per
    `every_seconds`: a flood of unknown codes costs one read per interval,
    and what is still unknown after the read answers 500 INTERNAL."""

    def __init__(self, every_seconds: float):
        self.every_seconds = every_seconds
        self._last: float | None = None
        self._lock: asyncio.Lock | None = None

    async def reload_for(self, sqlstate: str, pool: AsyncConnectionPool) -> None:
        if sqlstate in _BY_SQLSTATE:
            return
        now = time.monotonic()
        if self._last is not None and now - self._last < self.every_seconds:
            return
        if self._lock is None:  # made in the event loop that uses it
            self._lock = asyncio.Lock()
        if self._lock.locked():
            return  # another request is reading it right now
        async with self._lock:
            self._last = now
            try:
                async with pool.connection(timeout=2) as conn:
                    await load_error_codes(conn)
            except Exception:
                log.warning("could not re-read the error codes", exc_info=True)
                return
        log.info(
            "error codes re-read", extra={"sqlstate": sqlstate, "known": sqlstate in _BY_SQLSTATE}
        )


def is_mapped(sqlstate: str) -> bool:
    return sqlstate in _BY_SQLSTATE


def error_code(code: str) -> ErrorCode:
    return _BY_CODE.get(code, _BY_CODE["INTERNAL"])


class Problem(Exception):
    def __init__(
        self,
        code: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ):
        super().__init__(code)
        self.entry = error_code(code)
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


def from_database(exc: psycopg.Error, role: str) -> Problem:
    """A database error as a problem: by SQLSTATE, with only the detail we wrote."""
    sqlstate = exc.sqlstate or ""
    if sqlstate == "42501" and role == "anon":
        return Problem("INVALID_TOKEN", "This request needs a signed-in user")
    entry = _BY_SQLSTATE.get(sqlstate)
    if entry is None:
        log.error("unmapped database error", extra={"sqlstate": sqlstate, "error": str(exc)})
        return Problem("INTERNAL")
    problem = Problem(entry.code)
    problem.entry = entry
    # Our functions put a sentence for people in DETAIL; constraint errors
    # carry SQL in theirs, which never leaves the service.
    diag = exc.diag
    problem.detail = diag.message_detail if sqlstate.startswith("OX") else entry.title
    return problem


def from_sqlstate(sqlstate: str, detail: str | None) -> Problem:
    """A refusal a function returned instead of raising (see db.call_api)."""
    entry = _BY_SQLSTATE.get(sqlstate)
    if entry is None or not sqlstate.startswith("OX"):
        log.error("unmapped returned problem", extra={"sqlstate": sqlstate})
        return Problem("INTERNAL")
    problem = Problem(entry.code, detail)
    problem.entry = entry
    return problem


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    body = {
        "type": PROBLEM_TYPE + problem.entry.code.lower().replace("_", "-"),
        "title": problem.entry.title,
        "status": problem.entry.status,
        "detail": problem.detail or problem.entry.title,
        "code": problem.entry.code,
    }
    if instance:
        body["instance"] = instance
    if problem.errors:
        body["errors"] = problem.errors
    headers = dict(problem.headers)
    if problem.entry.status == 401:
        # RFC 9110: a 401 names the scheme that would work (RFC 6750: Bearer).
        headers.setdefault("WWW-Authenticate", 'Bearer realm="ox-predict"')
    return Response(
        json.dumps(body),
        status_code=problem.entry.status,
        media_type="application/problem+json",
        headers=headers,
    )
