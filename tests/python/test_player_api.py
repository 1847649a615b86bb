"""Issue 15, items 6 to 8 over real processes: a player API that explains
itself, the auditor's psql, the clock for every role, price-fetch errors."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import yfinance as yf
from fastapi.testclient import TestClient
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ox_sidecar.eod import ProviderUnavailable, YFinanceProvider, fetch_day
from ox_sidecar.worker import run_once
from support import OXP, bearer, open_session_for, service, signup

pytestmark = pytest.mark.usefixtures("calendar")


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    return body


@pytest.fixture
def token(client: TestClient, db: psycopg.Connection) -> str:
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    return signup(client, "player@example.com")


def test_validation_errors_state_the_rule(client: TestClient, token: str) -> None:
    h = bearer(token)
    body = problem(
        client.post("/v1/predictions/AAPL", json={"choice": "up"}, headers=h),
        422,
        "VALIDATION_FAILED",
    )
    assert body["detail"] == "choice must be 'UP' or 'DOWN'"
    assert body["errors"] == [
        {"field": "choice", "in": "body", "rule": "choice must be 'UP' or 'DOWN'"}
    ]
    short = client.post("/v1/auth/signup", json={"email": "a@example.com", "password": "short"})
    assert problem(short, 422, "VALIDATION_FAILED")["detail"] == (
        "password must be at least 8 characters"
    )
    no_key = client.post("/v1/rewards/MUG/redeem", headers=h)
    assert problem(no_key, 422, "VALIDATION_FAILED")["detail"] == (
        "the Idempotency-Key header is required"
    )
    big = client.get("/v1/points/ledger", params={"limit": 500}, headers=h)
    assert problem(big, 422, "VALIDATION_FAILED")["detail"] == "limit must be at most 100"
    symbol = client.post("/v1/predictions/1BAD", json={"choice": "UP"}, headers=h)
    assert "symbol must be a ticker" in problem(symbol, 422, "VALIDATION_FAILED")["detail"]
    day = client.get("/v1/predictions", params={"trading_day": "yesterday"}, headers=h)
    assert problem(day, 422, "VALIDATION_FAILED")["detail"] == (
        "trading_day must be a date (YYYY-MM-DD)"
    )


def test_the_after_cutoff_detail_is_filled_in(
    client: TestClient, db: psycopg.Connection, token: str
) -> None:
    # The reproduction: the tick closed the session at the cutoff, then a
    # player tried; the detail read "Predictions for  closed at ".
    service(db, "select crypto.clock_set('2026-11-24T23:30:00+09:00')")
    service(db, "select crypto.schedule_tick()")
    late = client.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=bearer(token))
    assert problem(late, 409, "SESSION_CLOSED")["detail"] == (
        "Predictions for 2026-11-24 closed at 2026-11-24T23:25:00+09:00;"
        " the session for 2026-11-25 opens at 2026-11-25T06:00:00+09:00"
    )


def test_401_answers_name_the_bearer_scheme(client: TestClient) -> None:
    for r in (
        client.get("/v1/users/me"),
        client.get("/v1/users/me", headers={"Authorization": "Bearer junk"}),
        client.post("/v1/auth/login", json={"email": "no@example.com", "password": "whatever1"}),
    ):
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="ox-predict"'
    assert "WWW-Authenticate" not in client.get("/v1/rewards").headers


def test_login_answers_with_the_user_like_signup(client: TestClient) -> None:
    created = client.post(
        "/v1/auth/signup", json={"email": "twin@example.com", "password": "correct horse battery"}
    ).json()
    login = client.post(
        "/v1/auth/login", json={"email": "twin@example.com", "password": "correct horse battery"}
    )
    assert login.status_code == 200
    assert login.json()["user"] == created["user"]
    assert {"access_token", "refresh_token", "expires_in"} <= set(login.json())


def test_session_today_for_a_player_and_between_sessions(
    client: TestClient, db: psycopg.Connection, token: str
) -> None:
    h = bearer(token)
    assert client.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=h).status_code == 201
    today = client.get("/v1/session/today", headers=h).json()
    assert today["trading_day"] == "2026-11-24"
    assert today["cutoff_at"] == "2026-11-24T23:25:00+09:00"
    assert today["cutoff_at_new_york"] == "2026-11-24T09:25:00-05:00"
    assert today["market_close_at_new_york"] == "2026-11-24T16:00:00-05:00"
    assert today["points_per_win"] == 100
    assert today["player"] == {
        "predictions_used": 1,
        "predictions_limit": 3,
        "predictions_left": 2,
        "ad_slot_unlocks_left": 7,
        "ad_point_rewards_left": 5,
    }
    assert today["next_session"] is None
    assert client.get("/v1/session/today").json()["player"] is None  # anon

    service(db, "select crypto.clock_set('2026-11-25T01:00:00+09:00')")
    service(db, "select crypto.schedule_tick()")
    later = client.get("/v1/session/today", headers=h).json()
    assert later["accepting_predictions"] is False
    assert later["next_session"]["trading_day"] == "2026-11-25"
    assert later["next_session"]["opens_at"] == "2026-11-25T06:00:00+09:00"
    assert later["next_session"]["opens_at_new_york"] == "2026-11-24T16:00:00-05:00"
    doc = client.get("/openapi.json").json()["paths"]["/v1/session/today"]["get"]["description"]
    assert "New York date" in doc


def test_history_pages_and_results_explain_themselves(
    client: TestClient, db: psycopg.Connection, token: str
) -> None:
    h = bearer(token)
    for s in ("AAPL", "MSFT", "NVDA"):
        assert client.post(f"/v1/predictions/{s}", json={"choice": "UP"}, headers=h).is_success
    service(db, "select crypto.clock_set('2026-11-25T07:00:00+09:00')")
    service(db, "select crypto.schedule_tick()")
    for day, aapl, msft in (("2026-11-23", "100", "100"), ("2026-11-24", "102.5", "100.005")):
        service(db, "select crypto.load_eod_price(%s, 'AAPL', %s, 'test')", day, aapl)
        service(db, "select crypto.load_eod_price(%s, 'MSFT', %s, 'test')", day, msft)
    service(db, "select crypto.settle_session('2026-11-24', true)")
    open_session_for(db, "2026-11-25", "2026-11-25T09:00:00+09:00")
    assert client.post("/v1/predictions/AMD", json={"choice": "DOWN"}, headers=h).is_success

    seen: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/predictions", params=params, headers=h).json()
        seen += [(i["trading_day"], i["symbol"]) for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages <= 3  # a full last page still hands out a cursor; the next is empty
    assert seen == [
        ("2026-11-25", "AMD"),
        ("2026-11-24", "NVDA"),
        ("2026-11-24", "MSFT"),
        ("2026-11-24", "AAPL"),
    ]
    items = {
        i["symbol"]: i
        for i in client.get(
            "/v1/predictions", params={"trading_day": "2026-11-24"}, headers=h
        ).json()["items"]
    }
    assert items["AAPL"]["outcome"] == "WON"
    assert (items["AAPL"]["close_previous"], items["AAPL"]["close"]) == (100, 102.5)
    assert items["AAPL"]["change_percent"] == "2.5000"
    assert (items["MSFT"]["outcome"], items["MSFT"]["void_reason"]) == ("VOID", "threshold")
    assert items["MSFT"]["change_percent"] == "0.0050"
    assert (items["NVDA"]["void_reason"], items["NVDA"]["close"]) == ("missing_price", None)
    public = {s["symbol"]: s for s in client.get("/v1/settlements/2026-11-24").json()["symbols"]}
    assert public["MSFT"]["void_reason"] == "threshold"
    assert public["TSLA"]["void_reason"] == "missing_price"
    assert public["AAPL"]["void_reason"] is None


def test_oxp_clock_show_works(env: None, db: psycopg.Connection) -> None:
    service(db, "select crypto.clock_set('2026-11-24T09:00:00+09:00')")
    shown = subprocess.run([OXP, "clock", "show"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "clock: 2026-11-24T09:00" in shown.stdout


@pytest.fixture
def auditor(db_url: str) -> Iterator[psycopg.Connection]:
    """A real login as `auditor`, as `psql -U auditor` makes one."""
    parts = conninfo_to_dict(db_url) | {"user": "auditor"}
    with psycopg.connect(make_conninfo(**parts), autocommit=True) as conn:
        yield conn


def test_the_auditor_in_psql(
    client: TestClient, db: psycopg.Connection, token: str, auditor: psycopg.Connection
) -> None:
    signup(client, "idle@example.com")  # a user with no entries
    assert auditor.execute("show timezone").fetchone() == ("Asia/Seoul",)
    now = auditor.execute("select crypto.now()").fetchone()[0]  # type: ignore[index]
    assert now.utcoffset() == dt.timedelta(hours=9)
    names = {
        r[0]
        for r in auditor.execute("select name from audit.account_balances where kind = 'system'")
    }
    assert names == {"issuance", "ads", "redemptions", "adjustments"}
    users = auditor.execute(
        "select name, entries from audit.account_balances where kind = 'user' order by name"
    ).fetchall()
    assert users == [("idle@example.com", 0), ("player@example.com", 0)]
    for view in ("user_points_history", "daily_settlements", "settlement_symbols"):
        auditor.execute(f"select * from audit.{view}").fetchall()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        auditor.execute("select crypto.clock_set(now())")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        auditor.execute("create table audit.mine (x int)")
    # The README's queries, as printed there.
    assert auditor.execute("select crypto.audit_verify() ->> 'ok'").fetchone() == ("true",)
    assert auditor.execute("select * from crypto.integrity_violations()").fetchall() == []


def test_a_network_failure_is_logged_as_itself(
    db: psycopg.Connection, db_url: str, env: None
) -> None:
    """Real yfinance with an unreachable network (a proxy that does not
    resolve): the log and the job say so, not "still missing: AAPL"."""
    service(db, "select crypto.set_universe('2026-11-24', array['AAPL'])")
    service(db, "select crypto.clock_set('2026-11-25T07:00:00+09:00')")
    svc = psycopg.connect(db_url, autocommit=True)
    svc.execute("set role oxp_service")
    yf.config.network.proxy = "http://proxy.invalid:3128"
    try:
        with pytest.raises(ProviderUnavailable, match=r"proxy\.invalid"):
            fetch_day(svc, YFinanceProvider(timeout=5), dt.date(2026, 11, 24))
        log = db.execute("select status::text, error from crypto.eod_fetch_logs").fetchone()
        assert log is not None and log[0] == "failed"
        assert "yfinance failed at AAPL" in log[1] and "Could not resolve proxy" in log[1]
        assert "missing" not in log[1]
    finally:
        yf.config.network.proxy = None
        svc.close()


def test_the_fetch_job_stops_once_its_day_is_settled(
    db: psycopg.Connection, db_url: str, env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EOD_PROVIDER", "csv")
    monkeypatch.setenv("EOD_CSV_FILE", "/nonexistent/closes.csv")  # would fail if read
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    service(db, "select crypto.clock_set('2026-11-25T06:20:00+09:00')")
    service(db, "select crypto.schedule_tick()")  # closes, asks for prices
    service(db, "select crypto.settle_session('2026-11-24', true)")  # settled by hand
    svc = psycopg.connect(db_url, autocommit=True)
    svc.execute("set role oxp_service")
    try:
        assert run_once(svc) is True
    finally:
        svc.close()
    assert db.execute("select status::text, attempts, last_error from crypto.jobs").fetchone() == (
        "done",
        1,
        None,
    )
    assert db.execute("select count(*) from crypto.eod_fetch_logs").fetchone() == (0,)


def test_universe_set_refuses_an_unknown_ticker_unless_allowed(
    env: None, db: psycopg.Connection
) -> None:
    def oxp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([OXP, *args], capture_output=True, text=True, check=False)

    typo = oxp("universe", "set", "--day", "2026-11-30", "AAPL", "APPL")
    assert typo.returncode == 1
    assert "UNKNOWN_SYMBOL" in typo.stderr and "APPL" in typo.stderr
    assert "--allow-unknown" in typo.stderr
    assert db.execute("select count(*) from crypto.active_universe").fetchone() == (0,)
    bad = oxp("universe", "set", "--day", "2026-11-30", "AAPL", "B@D")
    assert bad.returncode == 1 and '"B@D" is not a symbol' in bad.stderr
    ok = oxp("universe", "set", "--day", "2026-11-30", "AAPL", "NEWCO", "--allow-unknown")
    assert ok.returncode == 0, ok.stderr
    assert db.execute(
        "select source from crypto.known_symbols where symbol = 'NEWCO'"
    ).fetchone() == ("operator",)
