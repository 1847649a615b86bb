"""Alerts reach a person (issue 11, item 4): the worker posts each
transition to every webhook once, a failing webhook is retried alone, the
URL's secret never lands in the database; `oxp alerts` lists and resolves."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import psycopg
import pytest
from typer.testing import CliRunner

from ox_cli.main import app
from ox_sidecar.config import get_settings
from ox_sidecar.worker import run_once


class Webhook(http.server.BaseHTTPRequestHandler):
    """A Slack-style incoming webhook: records each POST by path; a path in
    `fail` answers 500 that many times first."""

    posts: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    fail: ClassVar[dict[str, int]] = {}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Webhook.fail.get(self.path, 0) > 0:
            Webhook.fail[self.path] -= 1
            self.send_response(500)
        else:
            Webhook.posts.append((self.path, body))
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch, env: None) -> Iterator[tuple[str, str]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Webhook.posts.clear()
    Webhook.fail.clear()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    steady, flaky = f"{base}/services/T1/B1/steady-secret", f"{base}/services/T2/B2/flaky-secret"
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"{steady}, {flaky}")
    get_settings.cache_clear()
    try:
        yield steady, flaky
    finally:
        server.shutdown()
        server.server_close()


def drain(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as svc:
        svc.execute("set role oxp_service")
        while run_once(svc):
            pass


def test_each_transition_reaches_every_webhook_once(
    db: psycopg.Connection, db_url: str, hooks: tuple[str, str]
) -> None:
    Webhook.fail["/services/T2/B2/flaky-secret"] = 1
    alert_id = db.execute(
        "select (crypto.alert_open('integrity', '', 'critical', '{\"violations\": 3}')).id"
    ).fetchone()[0]  # type: ignore[index]
    db.execute("select crypto.alert_open('integrity', '', 'critical', '{\"violations\": 4}')")
    drain(db_url)
    assert [p for p, _ in Webhook.posts] == ["/services/T1/B1/steady-secret"]
    job = db.execute(
        "select status::text, last_error from crypto.jobs where kind = 'alert.deliver'"
    ).fetchone()
    assert job is not None and job[0] == "queued" and "500" in job[1]
    assert "secret" not in job[1], "the webhook's secret path never reaches the database"

    db.execute("update crypto.jobs set run_after = crypto.now() where kind = 'alert.deliver'")
    drain(db_url)
    assert sorted(p for p, _ in Webhook.posts) == [
        "/services/T1/B1/steady-secret",
        "/services/T2/B2/flaky-secret",
    ], "the retry went to the failed webhook only"
    text = Webhook.posts[0][1]["text"]
    assert "[CRITICAL] integrity opened" in text and f"alert {alert_id}" in text
    stored = db.execute("select target_hash from crypto.alert_deliveries").fetchall()
    assert len(stored) == 2 and all(len(h) == 64 for (h,) in stored)

    # Cleared by its check: one more transition, delivered once to each.
    db.execute(
        "insert into crypto.system_health (at, check_name, status) values (now(), 'integrity', 'ok')"
    )
    drain(db_url)
    drain(db_url)
    resolved = [b["text"] for _, b in Webhook.posts if "resolved" in b["text"]]
    assert len(resolved) == 2 and all("cleared by rule" in t for t in resolved)


def test_oxp_alerts_lists_and_resolves_with_a_reason(
    db: psycopg.Connection, db_url: str, hooks: tuple[str, str]
) -> None:
    runner = CliRunner()
    db.execute("select crypto.alert_open('queue_stale', '', 'warning', '{\"due_jobs\": 3}')")
    listed = json.loads(runner.invoke(app, ["alerts", "--json"]).stdout)
    assert [(a["rule"], a["severity"]) for a in listed] == [("queue_stale", "warning")]
    table = runner.invoke(app, ["alerts"]).stdout
    assert "queue_stale" in table and "due_jobs" in table
    refused = runner.invoke(app, ["alerts", "resolve", str(listed[0]["id"]), "--reason", "x"])
    assert refused.exit_code != 0 and "VALIDATION_FAILED" in refused.stderr
    done = runner.invoke(
        app, ["alerts", "resolve", str(listed[0]["id"]), "--reason", "worker restarted", "--json"]
    )
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["resolution"] == "worker restarted"
    assert json.loads(runner.invoke(app, ["alerts", "--json"]).stdout) == []
    assert len(json.loads(runner.invoke(app, ["alerts", "--all", "--json"]).stdout)) == 1
    drain(db_url)
    assert any(
        "resolved" in b["text"] and "worker restarted" in b["text"] for _, b in Webhook.posts
    )
