"""Emails never reach the logs (issue 9, item 13): the API under uvicorn, its
log read back after sign-ups, wrong passwords and refused inputs."""

from __future__ import annotations

from pathlib import Path

import httpx

from support import running_api


def test_the_api_log_names_no_email(env: None, tmp_path: Path) -> None:
    log_file = tmp_path / "api.log"
    with (
        running_api(env={"LOG_LEVEL": "INFO"}, log=log_file) as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        email = "private.person@example.com"
        created = c.post("/v1/auth/signup", json={"email": email, "password": "p" * 12})
        assert created.status_code == 201
        taken = c.post("/v1/auth/signup", json={"email": email, "password": "p" * 12})
        assert taken.status_code == 409
        wrong = c.post("/v1/auth/login", json={"email": email, "password": "x" * 12})
        assert wrong.status_code == 401
        bad = c.post("/v1/auth/login", json={"email": "not-an-email@", "password": "x"})
        assert bad.status_code == 422
    log = log_file.read_text()
    assert "/v1/auth/login" in log, log[-2000:]
    assert "private.person" not in log and "not-an-email" not in log
