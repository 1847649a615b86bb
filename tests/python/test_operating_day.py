"""An admin runs a whole day through the API only (issue 11, "done when"):
the universe, an EOD fetch while the price source is down, the alert
delivered to a webhook, closes loaded by hand, a manual settlement, the
day's metrics and every action found in the audit under the admin's id.
The API under uvicorn, the real worker code, a local webhook sink. Only the
clock is moved from outside, as time passes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from ox_sidecar.config import clear_settings
from ox_sidecar.worker import run_once
from support import WebhookSink, admin_token, bearer, running_api, service, signup

pytestmark = pytest.mark.usefixtures("calendar")


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch, env: None) -> Iterator[WebhookSink]:
    with WebhookSink() as hooks:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", f"{hooks.base}/ops-channel")
        # The price source is down: the configured file does not exist.
        monkeypatch.setenv("EOD_PROVIDER", "csv")
        monkeypatch.setenv("EOD_CSV_FILE", "/nonexistent/closes.csv")
        clear_settings()
        yield hooks


def work(db_url: str) -> None:
    """The worker: every job that is due, with its real handlers."""
    with psycopg.connect(db_url, autocommit=True) as svc:
        svc.execute("set role oxp_service")
        while run_once(svc):
            pass


def test_an_admin_drives_a_day_through_the_api(
    db: psycopg.Connection, db_url: str, sink: WebhookSink
) -> None:
    with running_api() as base, httpx.Client(base_url=base, timeout=30) as api:
        boss = bearer(admin_token(api, "boss@example.com"))  # type: ignore[arg-type]
        boss_id = db.execute(
            "select id from crypto.users where email = 'boss@example.com'"
        ).fetchone()[0]  # type: ignore[index]

        def admin(method: str, path: str, **kw: object) -> httpx.Response:
            r = api.request(method, path, headers=boss, **kw)  # type: ignore[arg-type]
            assert r.status_code < 300, (path, r.status_code, r.text)
            return r

        # The morning: the day's symbols, then the session opens on the tick.
        service(db, "select crypto.clock_set('2026-11-24T08:00:00+09:00')")
        admin(
            "POST",
            "/admin/universe/upsert",
            json={"trading_day": "2026-11-24", "symbols": ["AAPL", "MSFT"]},
        )
        admin("POST", "/admin/batches/schedule-tick/run")
        ann = bearer(signup(api, "ann@example.com"))  # type: ignore[arg-type]
        bob = bearer(signup(api, "bob@example.com"))  # type: ignore[arg-type]
        for who, choice in ((ann, "UP"), (bob, "DOWN")):
            r = api.post("/v1/predictions/AAPL", json={"choice": choice}, headers=who)
            assert r.status_code == 201, r.text

        # After New York closes: the tick asks for closes; the source is down.
        service(db, "select crypto.clock_set('2026-11-25T07:00:00+09:00')")
        admin("POST", "/admin/batches/schedule-tick/run")
        job = admin("POST", "/admin/eod/trigger", json={"trading_day": "2026-11-24"}).json()["job"]
        work(db_url)
        failed = db.execute(
            "select status::text, last_error from crypto.jobs where id = %s", (job,)
        ).fetchone()
        assert failed is not None and failed[0] == "queued" and "closes.csv" in failed[1]
        alert = admin("GET", "/admin/dashboard").json()["alerts"]
        assert [(a["rule"], a["subject"]) for a in alert] == [("eod_fetch", "2026-11-24")]
        work(db_url)  # the alert's delivery
        assert [p for p, _ in sink.posts] == ["/ops-channel"]
        assert "eod_fetch 2026-11-24 opened" in sink.posts[0][1]["text"]

        # The admin has the closes from elsewhere, and settles the day.
        closes = [
            {"trading_day": d, "symbol": s, "close": c}
            for d, s, c in (
                ("2026-11-23", "AAPL", "100"),
                ("2026-11-24", "AAPL", "103.5"),
                ("2026-11-23", "MSFT", "400"),
                ("2026-11-24", "MSFT", "398"),
            )
        ]
        assert admin("POST", "/admin/eod/prices", json={"closes": closes}).json()["changed"] == 4
        settled = admin(
            "POST", "/admin/settlement/manual", json={"trading_day": "2026-11-24"}
        ).json()
        assert settled["winners"] == 1
        assert api.get("/v1/points/balance", headers=ann).json()["balance"] == 100
        # The public settlement view says an admin typed the closes, not which.
        public = api.get("/v1/settlements/2026-11-24").json()
        assert {r["source"] for r in public["symbols"]} == {"admin"}, public

        # The day in the metrics, the alert cleared and delivered as such.
        admin("POST", "/admin/batches/metrics-rollup/run")
        day = admin(
            "GET", "/v1/metrics/daily", params={"from": "2026-11-24", "to": "2026-11-24"}
        ).json()
        [row] = day["items"]
        assert (row["participants"], row["wins"], row["losses"]) == (2, 1, 1)
        assert row["points_issued"]["settlement"] == 100
        admin("POST", "/admin/batches/evaluate-alerts/run")
        assert admin("GET", "/admin/dashboard").json()["alerts"] == []
        work(db_url)
        assert "eod_fetch 2026-11-24 resolved" in sink.posts[-1][1]["text"]

        # Every change is in the audit, under the admin's own id.
        page = admin(
            "GET", "/admin/audit", params={"actor": f"user:{boss_id}", "limit": 100}
        ).json()
        actions = {i["action"] for i in page["items"]}
        assert {
            "universe.set",
            "batch.run",
            "eod.trigger",
            "eod.prices_loaded",
            "settlement.manual",
        } <= actions, actions
