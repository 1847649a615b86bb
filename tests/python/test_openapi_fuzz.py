"""OpenAPI true to behaviour (issue 10, item 8): schemathesis drives every
operation of /openapi.json against the real API (a uvicorn process and a real
database) as an outside client would, with a player's token (the player
routes; the admin ones only answer them 403, test_admin_api) and with an
admin's (every operation), stateful links included. Fails on any 5xx and any
answer the schema does not describe (status, content type, headers, body).
Deterministic (--generation-deterministic): the same cases every run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from oidc import run_oidc_server
from support import admin_token, free_port, open_session_for, running_api, signup

pytestmark = pytest.mark.usefixtures("calendar")

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Cases per operation and token: with ~48 operations and two tokens, well
# over 1,000 cases in all (asserted below from the run's own report).
MAX_EXAMPLES = 6
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def fuzz(base: str, token: str, work: Path, name: str, *extra: str) -> tuple[int, str, int]:
    report = work / f"{name}.ndjson"
    proc = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            *extra,
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261127",
            "--generation-deterministic",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
            "--no-color",
        ],
        cwd=work,  # its cache (.schemathesis/) stays out of the repository
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = proc.stdout + proc.stderr
    generated = re.search(r"(\d+) generated", output)
    return proc.returncode, output, int(generated.group(1)) if generated else 0


def test_every_operation_does_what_openapi_says(
    env: None, db: psycopg.Connection, tmp_path: Path
) -> None:
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    port = free_port()
    with run_oidc_server(tmp_path) as idp:
        # Deployed as in production: Google sign-in and mail configured (the API
        # only queues mail; no worker runs here), no rate limit in the way.
        deployment = {
            "RATE_LIMITS_ENABLED": "false",
            "SMTP_HOST": "127.0.0.1",
            "GOOGLE_OIDC_ISSUER": idp.issuer,
            "GOOGLE_CLIENT_ID": "oxp-test-client",
            "GOOGLE_CLIENT_SECRET": "oxp-test-secret",
            "OAUTH_REDIRECT_URI": f"http://127.0.0.1:{port}/v1/auth/oauth/callback",
        }
        fuzz_all(port, deployment, tmp_path)


def fuzz_all(port: int, deployment: dict[str, str], tmp_path: Path) -> None:
    with (
        running_api(port, env=deployment) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        tokens = {
            "player": signup(client, "fuzz@example.com"),  # type: ignore[arg-type]
            "admin": admin_token(client, "boss@example.com"),
        }
        runs = {
            "player": ("--exclude-path-regex", "^/(admin|v1/metrics)"),
            "admin": (),
        }
        total = 0
        for name, token in tokens.items():
            code, output, cases = fuzz(base, token, tmp_path, name, *runs[name])
            assert code == 0, f"{name}:\n{output[-20000:]}"
            total += cases
    assert total >= 1000, total


def test_openapi_documents_every_route_with_its_answers(client: TestClient) -> None:
    """Every API route the app serves is in /openapi.json, with a schema for
    its success body (or a redirect's Location) and problem+json's."""
    doc = client.get("/openapi.json").json()["paths"]
    served = {
        (method.lower(), context.path)
        for context in iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
        if isinstance(context.original_route, APIRoute) and context.original_route.include_in_schema
        for method in context.original_route.methods
    }
    assert len(served) >= 45, served
    for method, path in served:
        operation = doc[path][method]
        answers = operation["responses"]
        success = [code for code in answers if code.startswith(("2", "3"))]
        assert success, (method, path)
        for code in success:
            answer = answers[code]
            content = answer.get("content", {})
            documented = [c.get("schema") for c in content.values()] or [answer.get("headers")]
            assert all(documented), (method, path, code, answer)
        problem = answers["422"]["content"]["application/problem+json"]["schema"]
        assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])
