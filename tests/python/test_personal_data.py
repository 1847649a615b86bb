"""Emails never reach the logs (issue 9, item 13): the API under uvicorn, its
log read back after sign-ups, wrong passwords and refused inputs."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from support import OXP, free_port


def test_the_api_log_names_no_email(env: None, tmp_path: Path) -> None:
    port = free_port()
    log_file = tmp_path / "api.log"
    with log_file.open("wb") as sink:
        proc = subprocess.Popen(
            [OXP, "serve", "--port", str(port), "--workers", "1"],
            env={**os.environ, "LOG_LEVEL": "INFO"},
            stdout=sink,
            stderr=sink,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            with httpx.Client(base_url=base, timeout=30) as c:
                email = "private.person@example.com"
                assert (
                    c.post(
                        "/v1/auth/signup", json={"email": email, "password": "p" * 12}
                    ).status_code
                    == 201
                )
                taken = c.post("/v1/auth/signup", json={"email": email, "password": "p" * 12})
                assert taken.status_code == 409
                wrong = c.post("/v1/auth/login", json={"email": email, "password": "x" * 12})
                assert wrong.status_code == 401
                bad = c.post("/v1/auth/login", json={"email": "not-an-email@", "password": "x"})
                assert bad.status_code == 422
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    log = log_file.read_text()
    assert '"path": "/v1/auth/login"' in log or "/v1/auth/login" in log, log[-2000:]
    assert "private.person" not in log and "not-an-email" not in log
