"""GET /metrics (issue 11, item 3): requests by route template and status,
the database's gauges, for the operator's network only; real uvicorn."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from support import running_api


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from the exposition text, labels in any order."""
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:{{(.*)}})? (\S+)$", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(2))
    return None


def test_metrics_count_routes_and_read_the_database(
    db: psycopg.Connection, live_client: httpx.Client
) -> None:
    created = live_client.post(
        "/v1/auth/signup", json={"email": "scraped@example.com", "password": "p" * 12}
    )
    assert created.status_code == 201
    assert live_client.post("/v1/predictions/NOPE1", json={"choice": "UP"}).status_code == 401
    assert live_client.get("/no/such/page").status_code == 404
    assert live_client.request("PROPFIND", "/v1/users/me").status_code == 405
    db.execute("select crypto.alert_open('queue_stale', '', 'warning', '{}')")
    for _ in range(3):  # scrapes are not rate limited, and not counted
        scrape = live_client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    assert (
        sample(
            text, "oxp_http_requests_total", method="POST", route="/v1/auth/signup", status="201"
        )
        == 1.0
    )
    assert (
        sample(text, "oxp_http_requests_total", route="/v1/predictions/{symbol}", status="401")
        == 1.0
    ), "by route template, never the raw path"
    assert sample(text, "oxp_http_requests_total", route="unmatched", status="404") == 1.0
    assert sample(text, "oxp_http_requests_total", route="/metrics") is None
    assert sample(text, "oxp_http_request_duration_seconds_count", route="/v1/auth/signup") == 1.0
    assert sample(text, "oxp_http_requests_total", method="PROPFIND") is None, (
        "no label per made-up method"
    )
    assert sample(text, "oxp_http_requests_total", method="OTHER", status="405") == 1.0
    assert sample(text, "oxp_database_up") == 1.0
    # What says it was forwarded came through a proxy: not the operator's.
    forwarded = live_client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert forwarded.status_code == 404
    assert sample(text, "oxp_alerts_open", rule="queue_stale", severity="warning") == 1.0
    assert sample(text, "oxp_jobs", kind="alert.deliver", status="queued") == 1.0
    assert sample(text, "oxp_db_pool_connections_in_use") is not None


@pytest.mark.parametrize(
    "setting",
    [
        {"TRUSTED_PROXIES": '["127.0.0.1/32"]'},  # it came through the public proxy
        {"METRICS_NETWORKS": '["10.0.0.0/8"]'},  # not the operator's network
    ],
)
def test_metrics_are_not_for_the_public(
    env: None, monkeypatch: pytest.MonkeyPatch, setting: dict[str, str]
) -> None:
    for key, value in setting.items():
        monkeypatch.setenv(key, value)
    with running_api() as base:
        refused = httpx.get(f"{base}/metrics", timeout=10)
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert "oxp_" not in refused.text


def test_each_process_reports_its_answers_for_the_5xx_alert(
    db: psycopg.Connection, env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_COUNTS_REPORT_SECONDS", "0.2")
    with running_api() as base, httpx.Client(base_url=base, timeout=10) as c:
        for _ in range(5):
            assert c.get("/health").status_code == 200
        reported = 0
        for _ in range(50):
            reported = db.execute(
                "select coalesce(sum(total), 0) from crypto.http_counts"
            ).fetchone()[0]  # type: ignore[index]
            if reported >= 5:
                break
            time.sleep(0.1)
    assert reported >= 5, "the answers reached the database's per-minute counts"
    assert db.execute("select sum(errors) from crypto.http_counts").fetchone() == (0,)


def test_a_stopped_api_leaves_no_counters_directory_behind(env: None, tmp_path: Path) -> None:
    """`oxp serve` keeps its processes' counters in a directory of its own,
    which its stop (SIGTERM, re-raised by uvicorn, so no atexit) or a kill
    leaves behind: the next start deletes it, never a running one's."""
    from ox_cli.cmd_run import metrics_dir

    with running_api(env={"TMPDIR": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": ""}) as base:
        assert httpx.get(f"{base}/ready").status_code == 200
        serving = list(tmp_path.glob("oxp-metrics.*"))
        assert len(serving) == 1 and any(serving[0].iterdir())  # its counters' files
        # A start meanwhile (another `oxp serve`) leaves the running one's.
        Path(metrics_dir(tmp_path)).rmdir()
        assert serving[0].is_dir()
    # Another running process's (this one's parent, alive) is never taken.
    other = tmp_path / f"oxp-metrics.{os.getppid()}.other"
    other.mkdir()
    Path(metrics_dir(tmp_path)).rmdir()
    assert not serving[0].exists()
    assert other.is_dir()
