"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import psycopg
from fastapi.testclient import TestClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service(db: psycopg.Connection, query: str, *args: Any) -> Any:
    """Run one statement as the operator role (as the CLI does)."""
    with db.transaction():
        db.execute("set local role oxp_operator")
        row = db.execute(query, args).fetchone()
    return None if row is None else row[0]


def open_session_for(db: psycopg.Connection, day: str, at_kst: str) -> None:
    service(db, "select crypto.clock_set(%s::timestamptz)", at_kst)
    service(db, "select crypto.schedule_tick()")
    phase = service(
        db, "select phase::text from crypto.session_control where trading_day = %s", day
    )
    assert phase == "OPEN", f"session {day} did not open at {at_kst}"


def signup(client: TestClient, email: str, password: str = "correct horse battery") -> str:
    r = client.post("/v1/auth/signup", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    return str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


T = TypeVar("T")
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "AVGO", "NFLX", "AMD"]


def new_user(db: psycopg.Connection, email: str) -> str:
    with db.transaction():
        db.execute("set local role anon")
        user = db.execute(
            "select api.signup(%s, %s)", (email, "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")
        ).fetchone()
    assert user is not None
    return str(user[0]["id"])


def race_each(n: int, work: Callable[[int], T]) -> list[T]:
    """Start n calls together (a barrier); what each returned, in call order."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


OXP = Path(sys.executable).parent / "oxp"


@contextmanager
def running_api(
    port: int | None = None, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[str]:
    """`oxp serve` (uvicorn) as a real process with this environment (and
    `env`); its base URL. Its output goes to `log`, or to a temporary file:
    never to a pipe nobody reads, where a chatty run fills the 64 KiB buffer
    and the API blocks in its log handler (CI hung so on 2026-11-27)."""
    port = port or free_port()
    sink = log.open("wb") if log else tempfile.TemporaryFile()  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(
        [OXP, "serve", "--port", str(port), "--workers", "1"],
        env={**os.environ, **(env or {})},
        stdout=sink,
        stderr=sink,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # A minute: an API process importing on a busy 2-core machine took
        # 46 s once; a ready one answers at once, so this costs nothing.
        for _ in range(600):
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"API not ready: {_tail(sink)!r}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave a stuck API behind for the next test
            proc.wait()
            raise
        finally:
            sink.close()


_OUTPUTS: dict[int, IO[bytes]] = {}


def spawn_oxp(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`oxp <args>` as a process whose output goes to a temporary file (see
    running_api for why not a pipe); `output_of` reads its end."""
    sink = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
    proc = subprocess.Popen([str(OXP), *args], env=env, stdout=sink, stderr=sink)
    _OUTPUTS[proc.pid] = sink
    return proc


def output_of(proc: subprocess.Popen[bytes]) -> str:
    sink = _OUTPUTS.get(proc.pid)
    return _tail(sink).decode(errors="replace") if sink else ""


def _tail(sink: IO[bytes], size: int = 20000) -> bytes:
    sink.flush()
    sink.seek(0, os.SEEK_END)
    sink.seek(max(0, sink.tell() - size))
    return sink.read()


def act_as(conn: psycopg.Connection, uid: str) -> None:
    """Become a user on this connection as the shim does: role and claims, for the transaction."""
    conn.execute(
        "select set_config('role', 'app_user', true), set_config('request.jwt.claims', %s, true)",
        (json.dumps({"sub": uid, "role": "app_user"}),),
    )


def admin_token(client: httpx.Client, email: str) -> str:
    """A signed-up user made an admin by `oxp users create-admin`, signed in
    with password and code: their access token (signed by the admin key)."""
    import pyotp
    from typer.testing import CliRunner

    from ox_cli.main import app

    signup(client, email)  # type: ignore[arg-type]
    result = CliRunner().invoke(app, ["users", "create-admin", email])
    assert result.exit_code == 0, result.output
    secret = result.output.split("TOTP secret (shown once): ")[1].split()[0]
    r = client.post(
        "/v1/auth/login",
        json={"email": email, "password": "correct horse battery", "otp": pyotp.TOTP(secret).now()},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


class _WebhookHandler(http.server.BaseHTTPRequestHandler):
    sink: WebhookSink

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        sink = self.server.sink  # type: ignore[attr-defined]
        if sink.fail.get(self.path, 0) > 0:
            sink.fail[self.path] -= 1
            self.send_response(500)
        else:
            sink.posts.append((self.path, body))
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


class WebhookSink:
    """A Slack-style incoming webhook on a local port: records each POST by
    path; a path in `fail` answers 500 that many times first."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, int] = {}
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WebhookHandler)
        self.server.sink = self  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> WebhookSink:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
