"""Monitoring as code (issue 14, item 9): the Grafana dashboard and the
Prometheus alert rules ask only for metrics a real API exports. promtool
checks the files' syntax and unit-tests the rules (scripts/check_deploy.sh);
this test compares their metric names with a real scrape."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import psycopg
import yaml

from ox_sidecar import metrics
from support import service

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
# A metric name in PromQL: ours all start with oxp_; `up` is Prometheus' own.
OURS = re.compile(r"\b(oxp_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def exported(text: str) -> set[str]:
    """Every sample name the exposition text declares (with the suffixes
    Prometheus stores for counters and histograms) or carries."""
    names: set[str] = set()
    for line in text.splitlines():
        typed = re.match(r"^# TYPE (\S+) (\S+)$", line)
        if typed:
            name, kind = typed.groups()
            names.add(name)
            names.update(name + s for s in SUFFIXES.get(kind, ()) if not name.endswith(s))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    return exprs


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) >= 10
    return exprs


def test_dashboard_and_alerts_use_only_metrics_the_api_exports(
    db: psycopg.Connection, calendar: None, live_client: httpx.Client
) -> None:
    # Every gauge family present: a day's metrics row and a worker's heartbeat.
    service(db, "select crypto.compute_daily_metrics('2026-03-02')")
    service(db, "select crypto.worker_heartbeat('monitoring-test', '{}')")
    assert live_client.get("/v1/session/today").status_code in (200, 404)
    scrape = live_client.get("/metrics")
    assert scrape.status_code == 200
    names = exported(scrape.text)
    assert "oxp_game_predictions" in names and "oxp_http_requests_total" in names
    # A counter no request has touched yet (oxp_http_5xx_total) is absent
    # from a multi-process scrape: its declaration is what the module
    # registers, rendered here by the same code in one process.
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    names |= exported(metrics.render(None)[0].decode())
    assert "oxp_http_5xx_total" in names and "oxp_worker_heartbeat_age_seconds" in names

    # Prometheus renames a target's own `job`/`instance` label to exported_*,
    # so a rule filtering on ours would match nothing and never fire.
    labels = {
        label
        for line in scrape.text.splitlines()
        if line.startswith("oxp_") and "{" in line
        for label in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', line.split("{", 1)[1])
    }
    assert labels and not labels & {"job", "instance"}, labels
    declared = {
        name
        for names in re.findall(r"labels=\[([^\]]*)\]", Path(metrics.__file__).read_text())
        for name in re.findall(r'"([^"]+)"', names)
    }
    assert "task" in declared and not declared & {"job", "instance"}, declared

    for source, exprs in (("dashboard", dashboard_exprs()), ("alerts.yml", alert_exprs())):
        used = {name for expr in exprs for name in OURS.findall(expr)}
        unknown = sorted(used - names)
        assert not unknown, f"{source} asks for metrics the API does not export: {unknown}"
        assert len(used) >= 8, f"{source} covers business and system metrics"
    # What the dashboard leaves out would be a blind spot: it shows every family.
    families = {n for n in names if n.startswith("oxp_") and not n.endswith("_created")}
    shown = {name for expr in dashboard_exprs() for name in OURS.findall(expr)}
    bases = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in shown} | shown
    missing = sorted(
        n
        for n in families
        if n not in bases and re.sub(r"_(bucket|sum|count)$", "", n) not in bases
    )
    assert not missing, f"metrics the dashboard does not show: {missing}"


def test_the_name_check_can_fail() -> None:
    """A misspelt metric is caught: the comparison is not vacuous."""
    text = '# TYPE oxp_http_requests counter\noxp_http_requests_total{route="/x"} 1.0\n'
    names = exported(text)
    assert "oxp_http_requests_total" in names
    assert set(OURS.findall("rate(oxp_http_request_total[5m])")) - names == {
        "oxp_http_request_total"
    }
