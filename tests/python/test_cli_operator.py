"""The operator's commands (issue 15, items 3-5): reads, changes that are
refused or confirmed, and a CLI that explains itself, against a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner, Result

from ox_cli.cmd_session import _void_text
from ox_cli.main import app
from ox_sidecar.config import clear_settings, get_settings

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("env", "calendar")

PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def run(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def data(*args: str) -> Any:
    """A command's --json output."""
    return json.loads(run(*args, "--json").stdout)


def refused(*args: str, code: str, exit_code: int = 1) -> str:
    """A refusal, in both shapes: one line on stderr, and JSON on stdout."""
    plain = run(*args, code=exit_code)
    line = plain.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: {code}: "), plain.stderr
    assert "Traceback" not in plain.output
    as_json = run(*args, "--json", code=exit_code)
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == code and error["detail"] == line.removeprefix(f"error: {code}: ")
    return str(error["detail"])


def signup(db: psycopg.Connection, email: str) -> str:
    with db.transaction():
        db.execute("set local role anon")
        user = db.execute("select api.signup(%s, %s)", (email, PASSWORD_HASH)).fetchone()
    return str(user[0]["id"])  # type: ignore[index]


def scalar(db: psycopg.Connection, query: str, *args: Any) -> Any:
    row = db.execute(query, args).fetchone()
    return None if row is None else row[0]


# --- a CLI that explains itself --------------------------------------------


def _tree(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _tree(sub, (*path, name))


# Commands that print nothing to parse (they run until stopped).
NO_JSON = {("serve",), ("worker",)}


def test_every_command_and_option_has_help_and_fits_80_columns() -> None:
    root = typer.main.get_command(app)
    missing: list[str] = []
    no_json: list[str] = []
    for path, command in _tree(root):
        name = " ".join(("oxp", *path))
        if not (command.help or "").strip():
            missing.append(name)
        for param in command.params:
            if param.name != "help" and not (getattr(param, "help", None) or "").strip():
                missing.append(f"{name} {param.name}")
        is_group = bool(getattr(command, "commands", None))
        prints = path and not is_group and path not in NO_JSON
        if prints and not any("--json" in p.opts for p in command.params):
            no_json.append(name)
        if is_group or not path:
            text = run(*path, "--help", env={"COLUMNS": "80"}).stdout
            wide = [line for line in text.splitlines() if len(line) > 80]
            assert not wide, f"{name} --help is wider than 80 columns: {wide}"
    assert not missing, f"no help text: {missing}"
    assert not no_json, f"no --json: {no_json}"


def test_usage_errors_are_one_line_naming_the_choices() -> None:
    detail = refused(
        "eod", "fetch", "--day", "2026-11-24", "--provider", "yahoo",
        code="VALIDATION_FAILED", exit_code=2,
    )  # fmt: skip
    assert "'yfinance'" in detail and "'csv'" in detail and "--provider" in detail
    assert "--reason" in refused(
        "points", "adjust", "a@example.com", "5", code="VALIDATION_FAILED", exit_code=2
    )
    missing = refused(
        "eod", "fetch", "--day", "2026-11-24", "--provider", "csv", "--file", "/nonexistent.csv",
        code="VALIDATION_FAILED",
    )  # fmt: skip
    assert "/nonexistent.csv" in missing


def test_a_bad_close_in_a_csv_names_the_line_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("trading_day,symbol,close\n2026-11-24,AAPL,12x\n")
    result = run("eod", "load", str(bad), code=1)
    assert "bad.csv:2: VALIDATION_FAILED: 12x is not a number" in result.stderr
    assert "decimal" not in result.stderr and "Conversion" not in result.stderr


def test_clock_prints_a_sentence_or_json_never_a_repr(db: psycopg.Connection) -> None:
    # crypto.now() reads a setting the service role may not execute yet (the
    # fix is another item of issue 15); grant it here so the format is tested.
    db.execute("grant execute on function crypto.setting(text) to oxp_service")
    out = run("clock", "set", "2026-11-24T09:00").stdout
    assert out.startswith("clock: 2026-11-24T09:00:") and "shifted" in out
    assert data("clock", "show")["now"].startswith("2026-11-24T09:0")
    assert "{" not in run("clock", "show").stdout
    assert data("clock", "reset")["offset_seconds"] == 0


# --- users ------------------------------------------------------------------


def test_users_list_show_and_admin_changes(db: psycopg.Connection) -> None:
    uid = signup(db, "ann@example.com")
    signup(db, "bo@example.com")
    run("points", "adjust", "ann@example.com", "70", "--reason", "welcome", "--key", "u1")

    users = {u["email"]: u for u in data("users", "list")}
    assert users["ann@example.com"]["balance"] == 70
    assert users["ann@example.com"]["role"] == "user"
    assert set(users["ann@example.com"]) >= {"created_at", "last_seen_at", "predictions"}
    assert [u["email"] for u in data("users", "list", "--role", "admin")] == []
    refused("users", "list", "--role", "root", code="VALIDATION_FAILED")

    ann = data("users", "show", "ANN@example.com")
    assert ann["balance"] == 70 and ann["recent_predictions"] == []
    assert "balance" in run("users", "show", "ann@example.com").stdout
    assert refused("users", "show", "nobody@example.com", code="NOT_FOUND") == (
        "No user nobody@example.com"
    )

    secret = data("users", "create-admin", "ann@example.com")["totp_secret"]
    assert "ann@example.com is an admin already" in refused(
        "users", "create-admin", "ann@example.com", code="ALREADY_ADMIN"
    )
    key = get_settings().totp_key
    stored = "select ext.pgp_sym_decrypt(totp_secret_enc, %s) from crypto.users where id = %s"
    assert scalar(db, stored, key, uid) == secret, "a refused promotion keeps the secret"

    new_secret = data("users", "reset-totp", "ann@example.com")["totp_secret"]
    assert new_secret != secret and scalar(db, stored, key, uid) == new_secret
    refused("users", "reset-totp", "bo@example.com", code="NOT_AN_ADMIN")

    assert "is a player now" in run("users", "demote", "ann@example.com").stdout
    assert scalar(db, "select role::text from crypto.users where id = %s", uid) == "user"
    refused("users", "demote", "ann@example.com", code="NOT_AN_ADMIN")
    assert (
        scalar(
            db,
            "select count(*) from crypto.audit_logs where action in ('user.demote', 'user.reset_totp')",
        )
        == 2
    )


# --- points -----------------------------------------------------------------


def test_points_ledger_and_a_derived_key_that_pays_once(db: psycopg.Connection) -> None:
    signup(db, "pat@example.com")
    first = run("points", "adjust", "pat@example.com", "25", "--reason", "goodwill")
    assert "the same command again today does not pay twice" in first.stderr
    again = run("points", "adjust", "pat@example.com", "25", "--reason", "goodwill", "--json")
    assert json.loads(again.stdout)["replay"] is True
    assert json.loads(again.stdout)["key_derived"] is True
    balance = "select balance from crypto.ledger_accounts a join crypto.users u on u.id = a.user_id"
    assert scalar(db, balance + " where u.email = 'pat@example.com'") == 25

    other = data("points", "adjust", "pat@example.com", "25", "--reason", "another reason")
    assert other["replay"] is False and other["balance_after"] == 50

    page = data("points", "ledger", "pat@example.com")
    assert [e["amount"] for e in page["items"]] == [25, 25]
    assert page["items"][0]["reason"] == "adjustment"
    assert data("points", "ledger", "pat@example.com", "--limit", "1")["next_cursor"]
    refused("points", "ledger", "pat@example.com", "--limit", "0", code="VALIDATION_FAILED")
    refused("points", "ledger", "nobody@example.com", code="NOT_FOUND")


# --- sessions ---------------------------------------------------------------


def test_session_close_asks_and_session_list_explains_voids(db: psycopg.Connection) -> None:
    run("clock", "set", "2026-11-24T09:00")
    run("session", "open", "--day", "2026-11-24")
    detail = refused("session", "close", code="CONFIRMATION_REQUIRED")
    assert "2026-11-24" in detail and "--yes" in detail
    phase = "select phase::text from crypto.session_control where trading_day = '2026-11-24'"
    assert scalar(db, phase) == "OPEN", "a refused close changes nothing"
    assert data("session", "close", "--yes") == {"trading_day": "2026-11-24", "phase": "CLOSED"}

    run("clock", "set", "2026-11-25T07:00")
    db.execute(
        "select crypto.load_eod_price(d, s, 100, 'test') from unnest(array['AAPL', 'MSFT']) as s"
        " cross join unnest(array['2026-11-23', '2026-11-24']::date[]) as d"
    )
    run("session", "settle", "--day", "2026-11-24", "--void-missing")
    [session] = data("session", "list", "--from", "2026-11-24", "--to", "2026-11-24")
    assert session["phase"] == "SETTLED" and session["symbols"] == 10
    voids = {v["symbol"]: v for v in session["voids"]}
    assert voids["AAPL"]["reason"] == "threshold"
    assert Decimal(voids["AAPL"]["change"]) == 0, "exact, as a decimal string"
    assert voids["NVDA"]["reason"] == "missing_price"
    assert voids["NVDA"]["missing"] == ["2026-11-23", "2026-11-24"]
    assert "SETTLED" in run("session", "list").stdout
    assert _void_text(voids["NVDA"]) == "no close on 2026-11-23 and 2026-11-24"
    threshold = {"symbol": "AAPL", "reason": "threshold", "change": Decimal("0.000050")}
    assert _void_text(threshold) == "change 0.00005 inside the threshold"
    refused(
        "session", "list", "--from", "2026-11-30", "--to", "2026-11-24", code="VALIDATION_FAILED"
    )


# --- rewards ----------------------------------------------------------------


def test_redemptions_by_status(db: psycopg.Connection) -> None:
    uid = signup(db, "red@example.com")
    run("points", "adjust", "red@example.com", "500", "--reason", "welcome", "--key", "r1")
    run("rewards", "add", "MUG", "--name", "A mug", "--cost", "300", "--stock", "2")
    with db.transaction():
        db.execute(
            "select set_config('request.jwt.claims', %s, true), set_config('role', 'app_user', true)",
            (json.dumps({"sub": uid, "role": "app_user"}),),
        )
        db.execute("select api.redeem_reward('MUG', 'redeem-1')")
    [item] = data("rewards", "redemptions", "--status", "requested")["items"]
    assert item["email"] == "red@example.com" and item["sku"] == "MUG"
    assert data("rewards", "redemptions", "--status", "ISSUED")["items"] == []
    assert "REQUESTED, UNKNOWN, ISSUED" in refused(
        "rewards", "redemptions", "--status", "lost", code="VALIDATION_FAILED"
    )
    balance = "select a.balance from crypto.ledger_accounts as a where a.user_id = %s"
    assert db.execute(balance, (uid,)).fetchone() == (200,)
    cancelled = data("rewards", "cancel", str(item["id"]))
    assert cancelled["status"] == "CANCELLED"
    assert db.execute(balance, (uid,)).fetchone() == (500,), "the points come back"
    assert data("rewards", "cancel", str(item["id"]))["status"] == "CANCELLED"  # a retry
    assert db.execute(balance, (uid,)).fetchone() == (500,), "refunded once"


# --- jobs -------------------------------------------------------------------


def test_jobs_list_retry_cancel(db: psycopg.Connection) -> None:
    fetch = scalar(db, "select crypto.enqueue_job('eod.fetch', '{}', 'eod.fetch:2026-11-24', 1)")
    issue = scalar(db, "select crypto.enqueue_job('reward.issue', '{\"redemption_id\": 9}', null)")
    db.execute("select crypto.claim_job(array['eod.fetch'])")
    db.execute("select crypto.fail_job(%s, 'DNS failure: no such host')", (fetch,))

    [dead] = data("jobs", "list", "--status", "dead")
    assert dead["id"] == fetch and dead["last_error"] == "DNS failure: no such host"
    assert "DNS failure" in run("jobs", "list").stdout
    refused("jobs", "list", "--status", "lost", code="VALIDATION_FAILED")

    assert data("jobs", "retry", str(fetch))["status"] == "queued"
    assert refused("jobs", "retry", "999999", code="NOT_FOUND") == "No job 999999"
    assert data("jobs", "cancel", str(fetch), "--reason", "loaded by hand")["status"] == "cancelled"
    assert "oxp rewards cancel 9" in refused(
        "jobs", "cancel", str(issue), code="JOB_STATE_CONFLICT"
    )
    status = "select status::text from crypto.jobs where id = %s"
    assert scalar(db, status, issue) == "queued", "a refused cancel changes nothing"
    actions = (
        "select array_agg(action order by id) from crypto.audit_logs where action like 'job.%%'"
    )
    assert scalar(db, actions) == ["job.retry", "job.cancel"]


# --- eod --------------------------------------------------------------------


def test_eod_show_closes_missing_and_attempts(db: psycopg.Connection) -> None:
    run("clock", "set", "2026-11-24T09:00")
    run("session", "open", "--day", "2026-11-24")
    run("clock", "set", "2026-11-25T07:00")  # after New York's close
    db.execute("select crypto.load_eod_price('2026-11-24', 'AAPL', 234.5, 'csv:x.csv')")
    db.execute(
        "select crypto.log_eod_fetch('2026-11-24', 'yfinance', now(), 'failed', 0, 'rate limit')"
    )
    report = data("eod", "show", "--day", "2026-11-24")
    assert report["closes"][0] == {
        "symbol": "AAPL", "close": "234.500000", "source": "csv:x.csv",
        "fetched_at": report["closes"][0]["fetched_at"], "previous_close": None,
    }  # fmt: skip
    assert {"trading_day": "2026-11-23", "symbol": "AAPL"} in report["missing"]
    assert report["attempts"][0]["error"] == "rate limit"
    text = " ".join(run("eod", "show", "--day", "2026-11-24").stdout.split())
    assert "2026-11-24: MSFT, GOOGL" in text and "rate limit" in text
    assert "2026-11-26 is not a trading day" in refused(
        "eod", "show", "--day", "2026-11-26", code="NOT_A_TRADING_DAY"
    )


# --- settings ---------------------------------------------------------------


def test_settings_show_and_set(db: psycopg.Connection) -> None:
    settings = {s["key"]: s for s in data("settings", "show")}
    assert settings["points.per_win"]["value"] == 100
    assert settings["points.per_win"]["rule"] == "a whole number from 1 to 1000000"
    assert data("settings", "show", "settlement.threshold")["value"] == "0.0001"

    assert "points.per_win: 100 -> 150" in run("settings", "set", "points.per_win", "150").stdout
    assert data("settings", "set", "points.per_win", "150")["changed"] is False

    for key, value, code in [
        ("no.such", "1", "UNKNOWN_SETTING"),
        ("environment", "production", "SETTING_READ_ONLY"),
        ("predictions.base_limit", "0", "VALIDATION_FAILED"),
        ("settlement.threshold", "0.05", "VALIDATION_FAILED"),
        ("settlement.threshold", "-0.0001", "VALIDATION_FAILED"),
        ("points.per_win", "lots", "VALIDATION_FAILED"),
    ]:
        assert key in refused("settings", "set", key, value, code=code)
    refused("settings", "show", "no.such", code="UNKNOWN_SETTING")
    values = "select jsonb_object_agg(key, value) from crypto.settings where key = any(%s)"
    keys = ["points.per_win", "predictions.base_limit", "settlement.threshold", "environment"]
    assert scalar(db, values, keys) == {
        "points.per_win": 150, "predictions.base_limit": 3,
        "settlement.threshold": 0.0001, "environment": "development",
    }  # fmt: skip
    audited = "select count(*) from crypto.audit_logs where action = 'setting.set'"
    assert scalar(db, audited) == 1


# --- keys -------------------------------------------------------------------


def test_a_second_key_rotation_within_the_token_lifetime_needs_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_PRIVATE_KEY_FILE", str(tmp_path / "jwt.pem"))
    clear_settings()
    first = data("keys", "rotate")["kid"]
    # Not refused(): its two runs may fall either side of a second in the detail.
    again = run("keys", "rotate", code=1)
    assert again.stderr.startswith("error: KEY_ROTATED_RECENTLY: ") and "--force" in again.stderr
    assert (tmp_path / "jwt.previous.pem").exists()
    assert data("keys", "rotate", "--force")["kid"] != first


# --- metrics ----------------------------------------------------------------


def test_metrics_of_a_settled_day(db: psycopg.Connection) -> None:
    run("clock", "set", "2026-11-24T09:00")
    run("session", "open", "--day", "2026-11-24")
    ann, bo = signup(db, "ann@example.com"), signup(db, "bo@example.com")
    for uid, choice in ((ann, "UP"), (bo, "DOWN")):
        with db.transaction():
            db.execute(
                "select set_config('role', 'app_user', true),"
                " set_config('request.jwt.claims', %s, true)",
                (json.dumps({"sub": uid, "role": "app_user"}),),
            )
            db.execute("select api.submit_prediction('AAPL', %s)", (choice,))
    assert (
        data("metrics", "--refresh", "--from", "2026-11-24", "--to", "2026-11-24")[0]["unsettled"]
        == 2
    ), "the open session's running figures"
    run("session", "close", "--yes")
    run("clock", "set", "2026-11-25T07:00")
    db.execute(
        "select crypto.load_eod_price(d::date, 'AAPL', c, 'test')"
        " from (values ('2026-11-23', 100), ('2026-11-24', 101)) as v (d, c)"
    )
    run("session", "settle", "--day", "2026-11-24", "--void-missing")
    [day] = data("metrics", "--refresh", "--from", "2026-11-24", "--to", "2026-11-24")
    assert (day["participants"], day["wins"], day["losses"], day["unsettled"]) == (2, 1, 1, 0)
    assert Decimal(day["win_rate"]) == Decimal("0.5")
    assert day["points_issued"]["settlement"] == 100 and day["points_outstanding"] == 100
    table = run("metrics", "--from", "2026-11-24", "--to", "2026-11-24").stdout
    assert "2026-11-24" in table and "1/1/0" in table
    refused("metrics", "--from", "2026-11-30", "--to", "2026-11-24", code="VALIDATION_FAILED")


def test_audit_search_pages_like_the_admin_route(db: psycopg.Connection) -> None:
    for sku in ("A1", "B2", "C3"):
        db.execute("select crypto.upsert_reward(%s, 'x', 10, 1)", (sku,))
    page = data("audit", "search", "--action", "reward.upsert", "--limit", "2")
    assert [i["subject"] for i in page["items"]] == ["C3", "B2"] and page["next_cursor"]
    rest = data(
        "audit", "search", "--action", "reward.upsert", "--cursor", str(page["next_cursor"])
    )
    assert [i["subject"] for i in rest["items"]] == ["A1"] and rest["next_cursor"] is None
    assert (
        "more: --cursor"
        in run("audit", "search", "--action", "reward.upsert", "--limit", "2").stdout
    )
    refused("audit", "search", "--limit", "0", code="VALIDATION_FAILED")


def test_cli_changes_are_audited_under_the_operator(db: psycopg.Connection) -> None:
    import getpass

    signup(db, "pat@example.com")
    run("points", "adjust", "pat@example.com", "50", "--reason", "goodwill", "--key", "op-1")
    actor = "select actor from crypto.audit_logs where action = 'points.adjust' order by id desc limit 1"
    assert scalar(db, actor) == f"operator:{getpass.getuser()} as role:postgres"
    signup(db, "boss@example.com")
    run("users", "create-admin", "boss@example.com")
    run(
        "--as",
        "boss@example.com",
        "points",
        "adjust",
        "pat@example.com",
        "5",
        "--reason",
        "typo",
        "--key",
        "op-2",
    )
    boss = scalar(db, "select id from crypto.users where email = 'boss@example.com'")
    assert scalar(db, actor) == f"operator:user:{boss} as role:postgres"
    refused("--as", "pat@example.com", "clock", "show", code="NOT_AN_ADMIN")


# --- eod fetch (issue 10, item 6) ---------------------------------------------


def test_eod_fetch_loads_what_the_day_lacks_and_logs_each_attempt(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    from support import service

    service(db, "select crypto.set_universe('2026-11-24', array['AAPL', 'MSFT'], true)")
    for at in ("2026-11-24T09:00:00+09:00", "2026-11-25T06:15:00+09:00"):  # opens, then closes
        service(db, "select crypto.clock_set(%s::timestamptz)", at)
        service(db, "select crypto.schedule_tick()")
    closes = tmp_path / "closes.csv"
    closes.write_text(
        "trading_day,symbol,close\n2026-11-23,AAPL,100\n2026-11-24,AAPL,101.5\n"
        "2026-11-23,MSFT,400\n2026-11-25,MSFT,1\n"  # MSFT's Tuesday is not in the file
    )
    day = ["eod", "fetch", "--day", "2026-11-24", "--provider", "csv", "--file", str(closes)]
    partial = json.loads(run(*day, "--json", code=1).stdout)
    assert partial == {"trading_day": "2026-11-24", "loaded": 3, "missing": ["MSFT@2026-11-24"]}
    closes.write_text("trading_day,symbol,close\n2026-11-24,MSFT,399\n2026-11-24,AAPL,7\n")
    full = json.loads(run(*day, "--json").stdout)
    assert full == {"trading_day": "2026-11-24", "loaded": 1, "missing": []}
    assert db.execute(
        "select trading_day::text, symbol, close, source from crypto.eod_prices"
        " order by trading_day, symbol"
    ).fetchall() == [
        ("2026-11-23", "AAPL", Decimal("100"), "csv"),
        ("2026-11-23", "MSFT", Decimal("400"), "csv"),
        ("2026-11-24", "AAPL", Decimal("101.5"), "csv"),  # only what was missing is asked for
        ("2026-11-24", "MSFT", Decimal("399"), "csv"),
    ]
    assert db.execute(
        "select provider, status::text, rows from crypto.eod_fetch_logs order by id"
    ).fetchall() == [("csv", "failed", 3), ("csv", "succeeded", 1)]
