"""What every answer of the API shares (issue 10, item 6): the OpenAPI
document lists every route the app declares, /ready counts what the
database recorded and names what it lacks, request ids reach the logs, and
CORS answers only the configured origins."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from ox_sidecar.config import ROOT, clear_settings
from support import running_api

# The routes of SPEC §5 and the admin API, written out: a route that goes
# missing from the document (or from the app) fails here by name.
ROUTES = {
    ("GET", "/health"), ("GET", "/ready"), ("GET", "/.well-known/jwks.json"),
    ("POST", "/v1/auth/signup"), ("POST", "/v1/auth/login"), ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/logout"), ("GET", "/v1/auth/verify-email"),
    ("POST", "/v1/auth/verify-email"), ("POST", "/v1/auth/verify-email/resend"),
    ("GET", "/v1/auth/oauth/google"), ("GET", "/v1/auth/oauth/callback"),
    ("POST", "/v1/auth/oauth/callback"),
    ("GET", "/v1/users/me"), ("GET", "/v1/users/stats"), ("POST", "/v1/users/me/nickname"),
    ("GET", "/v1/session/today"), ("GET", "/v1/universe/today"),
    ("POST", "/v1/predictions/{symbol}"), ("GET", "/v1/predictions"),
    ("GET", "/v1/settlements/{trading_day}"), ("GET", "/v1/leaderboard"),
    ("GET", "/v1/points/balance"), ("GET", "/v1/points/ledger"),
    ("GET", "/v1/rewards"), ("POST", "/v1/rewards/{sku}/redeem"),
    ("GET", "/v1/rewards/redemptions"),
    ("GET", "/v1/ads"), ("POST", "/v1/ads/{ad_id}/click"), ("GET", "/v1/ads/ssv"),
    ("GET", "/v1/metrics/{report}"),
    ("GET", "/admin/health"), ("GET", "/admin/dashboard"), ("GET", "/admin/audit"),
    ("POST", "/admin/settlement/correct"), ("POST", "/admin/settlement/manual"),
    ("POST", "/admin/universe/upsert"), ("POST", "/admin/rewards/inventory"),
    ("POST", "/admin/redemptions/{redemption_id}/resolve"),
    ("POST", "/admin/users/adjust-points"), ("POST", "/admin/users/{user_id}/disable"),
    ("POST", "/admin/users/{user_id}/enable"), ("POST", "/admin/eod/trigger"),
    ("POST", "/admin/eod/prices"), ("POST", "/admin/maintenance/integrity-check"),
    ("GET", "/admin/batches"), ("POST", "/admin/batches/{job}/run"),
    ("GET", "/admin/settings"), ("PATCH", "/admin/settings"),
    ("POST", "/admin/ads"), ("PATCH", "/admin/ads/{ad_id}"),
}  # fmt: skip
# Declared but left out of the document on purpose: Prometheus' scrape.
UNDOCUMENTED = {("GET", "/metrics")}


def documented(client: TestClient) -> set[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def test_openapi_documents_every_route_the_app_declares(client: TestClient) -> None:
    from ox_sidecar.routes import ROUTERS

    # The app's own routes and those of every router it includes (FastAPI
    # keeps an included router's routes in the router, not in app.routes).
    routes = [*client.app.routes, *(r for router in ROUTERS for r in router.routes)]  # type: ignore[attr-defined]
    declared = {
        (method, route.path)
        for route in routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert len(declared) > len(UNDOCUMENTED) + 40
    doc = documented(client)
    assert declared - UNDOCUMENTED == doc
    assert declared & UNDOCUMENTED == UNDOCUMENTED
    assert sorted(ROUTES - doc) == []
    predict = client.get("/openapi.json").json()["paths"]["/v1/predictions/{symbol}"]["post"]
    assert "application/problem+json" in predict["responses"]["409"]["content"]


def wait_ready(client: TestClient) -> httpx.Response:
    for _ in range(600):  # ready once start-up has read the error codes
        ready = client.get("/ready")
        if ready.status_code == 200:
            return ready
        time.sleep(0.1)
    return ready


def test_ready_counts_the_recorded_migrations_and_names_a_missing_one(
    client: TestClient, db: psycopg.Connection
) -> None:
    files = sorted(p.name for p in (ROOT / "sql").iterdir() if p.suffix == ".sql")
    assert files and all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.sql", f) for f in files), files
    ready = wait_ready(client)
    assert ready.status_code == 200, ready.text
    recorded = db.execute("select count(*) from migrations.applied").fetchone()
    assert (ready.json()["migrations"],) == recorded == (len(files),)
    db.execute("delete from migrations.applied where version = %s", (files[-1],))
    lacking = client.get("/ready")
    assert lacking.status_code == 503 and lacking.json()["code"] == "UNAVAILABLE"
    assert files[-1] in lacking.json()["detail"]


def test_request_ids_reach_the_response_and_the_log(env: None, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with running_api(env={"LOG_LEVEL": "INFO"}, log=log) as base:
        given = httpx.get(f"{base}/health", headers={"X-Request-Id": "trace-me-42"})
        made = httpx.get(f"{base}/v1/points/balance")  # refused: no token
        bad = httpx.get(f"{base}/health", headers={"X-Request-Id": "x" * 65})
    assert given.headers["x-request-id"] == "trace-me-42"
    made_id = made.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made_id)
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"])  # too long: replaced
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = {(r["request_id"], r["path"], r["status"]) for r in lines if r["message"] == "request"}
    assert ("trace-me-42", "/health", 200) in access
    assert (made_id, "/v1/points/balance", 401) in access
    assert ("x" * 65, "/health", 200) not in access


@pytest.fixture
def cors_client(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from ox_sidecar.app import create_app

    monkeypatch.setenv("CORS_ORIGINS", '["https://play.example"]')
    clear_settings()
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c
    clear_settings()


def preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        "/v1/predictions/AAPL",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


def test_cors_answers_the_configured_origin_only(cors_client: TestClient) -> None:
    ok = preflight(cors_client, "https://play.example")
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://play.example"
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "idempotency-key" in ok.headers["access-control-allow-headers"].lower()
    other = preflight(cors_client, "https://evil.example")
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    simple = cors_client.get("/health", headers={"Origin": "https://play.example"})
    assert simple.headers["access-control-allow-origin"] == "https://play.example"
    foreign = cors_client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


def test_a_refusal_without_a_call_still_carries_cors(
    cors_client: TestClient, db: psycopg.Connection
) -> None:
    """The limiter's middleware answers 429 itself for a request that reached
    no call: a cross-origin page must see that 429 (CORS outside it)."""
    with db.transaction():
        db.execute("update crypto.settings set value = '1' where key = 'ratelimit.ip_per_minute'")
    junk = {"Authorization": "Bearer junk", "Origin": "https://play.example"}
    first = cors_client.get("/v1/users/me", headers=junk)
    refused = cors_client.get("/v1/users/me", headers=junk)
    assert (first.status_code, refused.status_code) == (401, 429)
    assert refused.headers["access-control-allow-origin"] == "https://play.example"
    assert "retry-after" in refused.headers


def test_without_cors_origins_no_browser_origin_is_allowed(client: TestClient) -> None:
    answer = client.get("/health", headers={"Origin": "https://play.example"})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    assert preflight(client, "https://play.example").status_code in (404, 405)
