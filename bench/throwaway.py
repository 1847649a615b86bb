"""A throwaway PostgreSQL cluster for the benchmarks: started on a free port,
stopped and deleted afterwards, even when the run is interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
LOCALPG = ROOT / "scripts" / "localpg.sh"


def run_script(conn: psycopg.Connection, script: str, params: dict[str, Any]) -> None:
    """A setup script of several statements, each with the same parameters
    (a statement with parameters must be sent alone)."""
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement, params)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def throwaway_cluster(shared_buffers: str = "256MB") -> Iterator[tuple[Path, int]]:
    """(a work folder, the cluster's port). Durability stays on: a benchmark measures the real thing."""
    signal.signal(signal.SIGTERM, _interrupt)  # `timeout` still gets the cleanup
    work = Path(tempfile.mkdtemp(prefix="oxp-bench."))
    work.chmod(0o755)
    port = free_port()
    try:
        subprocess.run(
            [LOCALPG, "start", work / "pg", str(port), "oxp"],
            check=True,
            env={**os.environ, "OXP_PG_SHARED_BUFFERS": shared_buffers},
        )
        yield work, port
    finally:
        subprocess.run([LOCALPG, "stop", work / "pg"], check=False)
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def running_api(url: str, work: Path, workers: int = 1, **env: str) -> Iterator[str]:
    """`oxp serve` against the throwaway cluster until it answers /ready; its base URL.
    `env` adds settings (API_POOL_SIZE="8", RATE_LIMITS_ENABLED="false", ...)."""
    port = free_port()
    server = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "oxp"),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env={
            **os.environ,
            "DATABASE_URL": url,
            "JWT_PRIVATE_KEY_FILE": str(work / "jwt.pem"),
            "LOG_LEVEL": "WARNING",
            **env,
        },
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Minutes: four API processes start slowly on a busy 2-core machine.
        for _ in range(3000):
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("the API did not become ready")
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
