"""Prometheus `/metrics`: what each request cost, by route template and
status (prometheus-client, safe across uvicorn's worker processes), and
gauges the database computes at scrape time (api.prometheus_gauges).

Several processes: `oxp serve` points PROMETHEUS_MULTIPROC_DIR at a fresh
directory before the workers start, and a scrape, whichever process takes
it, adds up every process's files."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db import AUTH, call_api

log = logging.getLogger("ox_sidecar.metrics")

REQUESTS = Counter(
    "oxp_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
SERVER_ERRORS = Counter(
    "oxp_http_5xx_total", "HTTP answers with a 5xx status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "oxp_http_request_duration_seconds",
    "Time to answer, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
POOL_IN_USE = Gauge(
    "oxp_db_pool_connections_in_use", "Database connections lent out", multiprocess_mode="livesum"
)
POOL_WAITING = Gauge(
    "oxp_db_pool_requests_waiting", "Requests waiting for a connection", multiprocess_mode="livesum"
)


# Answers not yet reported to the database (api.note_http_counts), which
# the 5xx-rate alert reads: [total, 5xx].
_unreported = [0, 0]


async def report_http_counts(pool: Any, every_seconds: float = 15.0) -> None:
    """Forever: add this process's answers to the database's per-minute
    counts. A report that fails is kept and sent with the next one."""
    while True:
        await asyncio.sleep(every_seconds)
        total, errors = _unreported
        if total == 0:
            continue
        try:
            await call_api(pool, AUTH, "", "note_http_counts", total, errors)
        except Exception:  # the database is down: keep the counts for later
            log.debug("http counts not reported yet", exc_info=True)
            continue
        _unreported[0] -= total
        _unreported[1] -= errors


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Counts every answer under its route template (never the raw path:
    ids would make a series per request)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if route != "/metrics":
                # Bounded labels: a made-up method is OTHER, not a new series.
                method = scope["method"] if scope["method"] in METHODS else "OTHER"
                REQUESTS.labels(method, route, str(status)).inc()
                if status >= 500:
                    SERVER_ERRORS.labels(method, route, str(status)).inc()
                # The 5xx rate counts answers of our routes, not probes of
                # pages that do not exist (they would dilute an outage).
                if route != "unmatched":
                    _unreported[0] += 1
                    _unreported[1] += int(status >= 500)
                LATENCY.labels(method, route).observe(time.perf_counter() - started)


def note_pool(*stats: dict[str, int]) -> None:
    """psycopg_pool's get_stats() of each pool (the user and the admin
    logins): size minus idle is lent out."""
    POOL_IN_USE.set(sum(s.get("pool_size", 0) - s.get("pool_available", 0) for s in stats))
    POOL_WAITING.set(sum(s.get("requests_waiting", 0) for s in stats))


class DatabaseGauges(Collector):
    """The database's figures, read once per scrape by the scraping process."""

    def __init__(self, gauges: dict[str, Any] | None):
        self.gauges = gauges or {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        g = self.gauges
        up = GaugeMetricFamily("oxp_database_up", "1 when the scrape could read the database")
        up.add_metric([], 1.0 if g else 0.0)
        yield up
        if not g:
            return
        depth = GaugeMetricFamily("oxp_jobs", "Jobs by kind and status", labels=["kind", "status"])
        age = GaugeMetricFamily(
            "oxp_jobs_oldest_age_seconds",
            "Age of the oldest job by kind and status (queued: since it was due)",
            labels=["kind", "status"],
        )
        for q in g.get("queue", []):
            depth.add_metric([q["kind"], q["status"]], float(q["jobs"]))
            age.add_metric([q["kind"], q["status"]], float(q["oldest_seconds"]))
        yield depth
        yield age
        since = GaugeMetricFamily(
            "oxp_job_last_success_age_seconds",
            "Seconds since each scheduled job last succeeded",
            labels=["task"],  # not "job": Prometheus owns that label (the scrape job)
        )
        for job, seconds in g.get("last_success", {}).items():
            since.add_metric([job], float(seconds))
        yield since
        alerts = GaugeMetricFamily(
            "oxp_alerts_open", "Open alerts by rule and severity", labels=["rule", "severity"]
        )
        for a in g.get("alerts", []):
            alerts.add_metric([a["rule"], a["severity"]], float(a["open"]))
        yield alerts
        if g.get("worker_heartbeat_seconds") is not None:
            beat = GaugeMetricFamily(
                "oxp_worker_heartbeat_age_seconds", "Seconds since a worker last reported"
            )
            beat.add_metric([], float(g["worker_heartbeat_seconds"]))
            yield beat
        today = g.get("today")
        if today:
            for key, help_text in (
                ("active_users", "Active users of the latest trading day"),
                ("participants", "Players who predicted on the latest trading day"),
                ("predictions", "Predictions of the latest trading day"),
                ("points_outstanding", "Points held by all players"),
                ("age_seconds", "Age of the latest metrics rollup"),
            ):
                family = GaugeMetricFamily(f"oxp_game_{key}", help_text, labels=["trading_day"])
                family.add_metric([str(today["trading_day"])], float(today[key]))
                yield family


def render(gauges: dict[str, Any] | None) -> tuple[bytes, str]:
    """The exposition text: this process's (or every process's) metrics and
    the database's gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for metric in (REQUESTS, SERVER_ERRORS, LATENCY, POOL_IN_USE, POOL_WAITING):
            registry.register(metric)
    registry.register(DatabaseGauges(gauges))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def allowed(
    peer: str | None,
    networks: list[Any],
    trusted_proxies: list[Any],
    headers: Any = None,
) -> bool:
    """Scrapes come from the operator's network, never through the public
    proxy: a request a trusted proxy forwarded came from outside, and so did
    any that says it was forwarded (a proxy or docker's own may not be known)."""
    if headers is not None and any(
        h in headers for h in ("x-forwarded-for", "forwarded", "x-real-ip")
    ):
        return False
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    if any(address in n for n in trusted_proxies):
        return False
    return any(address in n for n in networks)
