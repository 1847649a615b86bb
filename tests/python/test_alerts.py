"""Alerts reach a person (issue 11, item 4): the worker posts each
transition to every webhook once, a failing webhook is retried alone, the
URL's secret never lands in the database; `oxp alerts` lists and resolves."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from ox_cli.main import app
from ox_sidecar import logs
from ox_sidecar.config import clear_settings
from ox_sidecar.worker import run_once
from support import WebhookSink


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch, env: None) -> Iterator[tuple[WebhookSink, str, str]]:
    with WebhookSink() as sink:
        steady = f"{sink.base}/services/T1/B1/steady-secret"
        flaky = f"{sink.base}/services/T2/B2/flaky-secret"
        monkeypatch.setenv("ALERT_WEBHOOK_URL", f"{steady}, {flaky}")
        clear_settings()
        yield sink, steady, flaky


def drain(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as svc:
        svc.execute("set role oxp_service")
        while run_once(svc):
            pass


def test_each_transition_reaches_every_webhook_once(
    db: psycopg.Connection,
    db_url: str,
    hooks: tuple[WebhookSink, str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("INFO")  # as the worker runs: its log must not carry the URLs
    sink = hooks[0]
    sink.fail["/services/T2/B2/flaky-secret"] = 1
    alert_id = db.execute(
        "select (crypto.alert_open('integrity', '', 'critical', '{\"violations\": 3}')).id"
    ).fetchone()[0]  # type: ignore[index]
    db.execute("select crypto.alert_open('integrity', '', 'critical', '{\"violations\": 4}')")
    drain(db_url)
    assert [p for p, _ in sink.posts] == ["/services/T1/B1/steady-secret"]
    job = db.execute(
        "select status::text, last_error from crypto.jobs where kind = 'alert.deliver'"
    ).fetchone()
    assert job is not None and job[0] == "queued" and "500" in job[1]
    assert "secret" not in job[1], "the webhook's secret path never reaches the database"

    db.execute("update crypto.jobs set run_after = crypto.now() where kind = 'alert.deliver'")
    drain(db_url)
    assert sorted(p for p, _ in sink.posts) == [
        "/services/T1/B1/steady-secret",
        "/services/T2/B2/flaky-secret",
    ], "the retry went to the failed webhook only"
    text = sink.posts[0][1]["text"]
    assert "[CRITICAL] integrity opened" in text and f"alert {alert_id}" in text
    stored = db.execute("select target_hash from crypto.alert_deliveries").fetchall()
    assert len(stored) == 2 and all(len(h) == 64 for (h,) in stored)

    # Cleared by its check: one more transition, delivered once to each.
    db.execute(
        "insert into crypto.system_health (at, check_name, status) values (now(), 'integrity', 'ok')"
    )
    drain(db_url)
    drain(db_url)
    resolved = [b["text"] for _, b in sink.posts if "resolved" in b["text"]]
    assert len(resolved) == 2 and all("cleared by rule" in t for t in resolved)
    worker_log = capsys.readouterr().err
    assert "webhooks refused" in worker_log, "the worker logged the failed delivery"
    assert "secret" not in worker_log, "never a webhook's URL in the log"


def test_oxp_alerts_lists_and_resolves_with_a_reason(
    db: psycopg.Connection, db_url: str, hooks: tuple[WebhookSink, str, str]
) -> None:
    sink = hooks[0]
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
    assert any("resolved" in b["text"] and "worker restarted" in b["text"] for _, b in sink.posts)
