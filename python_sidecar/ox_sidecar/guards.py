"""Limits on what one request may cost the process: the size of its body,
and how many memory-hard password hashes run at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import Problem, problem_response

T = TypeVar("T")


class BodyLimit:
    """Refuses a request body over `limit` bytes with 413 problem+json, before
    the app parses anything: at once when Content-Length says so, else once
    the streamed body passes the limit (it is read here, at most `limit`
    bytes, and handed on)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.limit
            except ValueError:
                too_big = True
            if too_big:
                await self._refuse(scope, receive, send)
                return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = Problem("PAYLOAD_TOO_LARGE", f"Request bodies are limited to {self.limit} bytes")
        response = problem_response(problem, scope.get("path", ""))
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class HashGate:
    """At most `slots` argon2 computations at once (each takes 64 MiB): a
    burst of sign-ins waits its turn instead of exhausting memory; a request
    that waited `wait_seconds` gets 503."""

    def __init__(self, slots: int, wait_seconds: float):
        self.slots = max(1, slots)
        self.wait_seconds = wait_seconds
        self._semaphore: asyncio.Semaphore | None = None

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        if self._semaphore is None:  # made in the event loop that uses it
            self._semaphore = asyncio.Semaphore(self.slots)
        try:
            await asyncio.wait_for(self._semaphore.acquire(), self.wait_seconds)
        except TimeoutError as exc:
            raise Problem("UNAVAILABLE", "Too many sign-ins at once; retry shortly") from exc
        try:
            return await run_in_threadpool(work, *args)
        finally:
            self._semaphore.release()
