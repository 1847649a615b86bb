"""OpenAPI true to behaviour (issue 10, item 8): schemathesis drives every
operation of /openapi.json against the real API (a uvicorn process and a real
database) as an outside client would, with a player's token (the player
routes; the admin ones only answer them 403, test_admin_api) and with an
admin's (every operation), stateful links included. Fails on any 5xx and any
answer the schema does not describe (status, content type, headers, body).
Deterministic (--generation-deterministic): the same cases every run.

Valid input reaches the success paths, not only the refusals: the test
seeds a settled day, points, a reward in stock, an ad, users and an UNKNOWN
redemption, and writes them into schemathesis.toml (per-operation
parameters; the admin bodies' OpenAPI examples name the same data). A
warning that an operation's valid cases were all refused
(validation_mismatch) or 404'd (missing_test_data) fails the run, and the
NDJSON report must show a 2xx/3xx answer from every operation but the few
no configured value can reach (UNREACHABLE, each with its own test)."""

from __future__ import annotations

import json
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
from support import (
    admin_token,
    bearer,
    free_port,
    new_user,
    open_session_for,
    running_api,
    service,
    signup,
)

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


# Where no configured value can reach the success path, the operation is
# still fuzzed (every check above holds) but is not held to "some valid
# input was served": each has its own test of the success path.
UNREACHABLE = {
    # Paid only when signed with a key the ad network publishes, its query
    # string in the network's order (test_ad_ssv signs real callbacks).
    "GET /v1/ads/ssv": "signed by the ad network",
    # A state spent on first use, bound to the browser's cookie, with a code
    # the identity provider issued for it (test_oauth).
    "GET /v1/auth/oauth/callback": "a one-time state and the browser's cookie",
    "POST /v1/auth/oauth/callback": "a one-time state and the browser's cookie",
    # Spent on use: a second use of the same token ends its family (test_auth).
    "POST /v1/auth/refresh": "a refresh token is spent on use",
    # The link's token is mailed, stored hashed and spent once (test_email_verification).
    "POST /v1/auth/verify-email": "a mailed one-time token",
    # The keys are dotted names (game.points_per_win), which schemathesis
    # cannot address as body fields; test_admin_api patches them.
    "PATCH /admin/settings": "dotted setting keys",
}


# Answered only with a refusal in one run, by design: the admin run fuzzes
# the same generated emails the player run already signed up (409), and an
# admin is never mailed a verification link (403).
UNSERVED = {
    "player": set(UNREACHABLE) - {"PATCH /admin/settings"},
    "admin": {*UNREACHABLE, "POST /v1/auth/signup", "POST /v1/auth/verify-email/resend"},
}


def unserved(report: Path) -> set[str]:
    """The operations the run never got a 2xx or 3xx answer from (read from
    its NDJSON report): where only refusals were ever checked."""
    tested: set[str] = set()
    served: set[str] = set()
    for line in report.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        tested.add(recorder["label"])
        for interaction in (recorder.get("interactions") or {}).values():
            if 200 <= ((interaction.get("response") or {}).get("status_code") or 0) < 400:
                served.add(recorder["label"])
    return tested - served


def toml(value: object) -> str:
    """A TOML value (JSON's strings, numbers and booleans are TOML's; arrays
    and objects become arrays and inline tables)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return json.dumps(value)


def write_config(
    work: Path, operations: dict[str, dict[str, object]], dictionaries: dict[str, list[str]]
) -> Path:
    """schemathesis.toml: the seeded data each operation needs to get past
    the business rules, and a warning that says valid input never got
    through (or 404'd for want of data) fails the run."""
    lines = [
        "[warnings]",
        'fail-on = ["validation_mismatch", "missing_test_data"]',
    ]
    lines.append("")
    lines.append("[dictionaries]")
    lines += [f"{name} = {toml({'values': values})}" for name, values in dictionaries.items()]
    for name, parameters in operations.items():
        lines += ["", "[[operations]]", f"include-name = {toml(name)}"]
        lines.append(f"parameters = {toml(parameters)}")
    for name in UNREACHABLE:
        lines += ["", "[[operations]]", f"include-name = {toml(name)}", "warnings = false"]
    config = work / "schemathesis.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def fuzz(base: str, token: str, work: Path, name: str, *extra: str) -> tuple[int, str, int]:
    report = work / f"{name}.ndjson"
    proc = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(work / "schemathesis.toml"),
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


SETTLED_DAY = "2026-11-23"


def seed_days(db: psycopg.Connection) -> list[dict[str, str]]:
    """Monday 2026-11-23 opened, priced and settled; Tuesday's session open
    (the game's now: 2026-11-24 09:00 KST). The closes Monday read."""
    open_session_for(db, SETTLED_DAY, "2026-11-23T09:00:00+09:00")
    symbols = service(
        db,
        "select array_agg(symbol::text order by position) from crypto.active_universe"
        " where trading_day = %s",
        SETTLED_DAY,
    )
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    closes = [
        {"trading_day": day, "symbol": symbol, "close": "100"}
        for symbol in symbols
        for day in ("2026-11-20", SETTLED_DAY)
    ]
    service(db, "select crypto.load_eod_prices(%s::jsonb, 'admin')", json.dumps(closes))
    service(db, "select crypto.settle_session(%s::date, false)", SETTLED_DAY)
    return closes


def test_every_operation_does_what_openapi_says(
    env: None, db: psycopg.Connection, tmp_path: Path
) -> None:
    closes = seed_days(db)
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
        fuzz_all(db, port, deployment, tmp_path, closes)


def seed_players(db: psycopg.Connection, client: httpx.Client) -> dict[str, object]:
    """The player's points, a reward in stock, an ad, a bystander an admin
    may disable, and a redemption the vendor left UNKNOWN (the admin
    routes' OpenAPI examples name player@example.com and 2026-11-23)."""
    service(db, "select crypto.upsert_reward('MUG', 'A mug', 100, 1000)")
    db.execute(
        "insert into crypto.ads (id, title, reward_kind, reward_points)"
        " values ('pts', '20 points', 'POINTS', 20)"
    )
    for who in ("fuzz", "boss"):
        service(
            db, "select crypto.adjust_points(%s, 100000, 'fuzz', %s)", f"{who}@example.com", who
        )
    # The fuzzed wrong passwords for player@example.com never lock it out here.
    db.execute("update crypto.settings set value = '1000' where key = 'auth.login_max_failures'")
    bystander = new_user(db, "bystander@example.com")
    player = signup(client, "player@example.com")  # type: ignore[arg-type]
    service(db, "select crypto.adjust_points('player@example.com', 500, 'fuzz', 'player-seed')")
    made = client.post(
        "/v1/rewards/MUG/redeem", headers={**bearer(player), "Idempotency-Key": "player-1"}
    )
    assert made.status_code == 201, made.text
    service(db, "select crypto.redemption_unknown(%s, 'read timeout')", made.json()["id"])
    player_id = service(db, "select id::text from crypto.users where email = 'player@example.com'")
    return {"bystander": bystander, "player": player_id, "redemption": made.json()["id"]}


def fuzz_all(
    db: psycopg.Connection,
    port: int,
    deployment: dict[str, str],
    tmp_path: Path,
    closes: list[dict[str, str]],
) -> None:
    with (
        running_api(port, env=deployment) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        tokens = {
            "player": signup(client, "fuzz@example.com"),  # type: ignore[arg-type]
            "admin": admin_token(client, "boss@example.com"),
        }
        seeded = seed_players(db, client)
        symbol = closes[0]["symbol"]
        reason = "seeded by the OpenAPI fuzz test"
        # A retry with the same Idempotency-Key answers what the first call
        # did: one key per write, so every valid case reaches the success path.
        write_config(
            tmp_path,
            {
                "POST /v1/predictions/{symbol}": {
                    "symbol": symbol,
                    "Idempotency-Key": "fuzz-predict",
                    "body.choice": "UP",
                },
                "POST /v1/auth/login": {
                    "body.email": "player@example.com",
                    "body.password": "correct horse battery",
                },
                "POST /v1/rewards/{sku}/redeem": {"sku": "MUG", "Idempotency-Key": "fuzz-redeem"},
                "POST /v1/ads/{ad_id}/click": {"ad_id": "pts", "Idempotency-Key": "fuzz-click"},
                "POST /admin/batches/{job}/run": {"job": "integrity-check"},
                "POST /admin/eod/prices": {"body.closes": closes},
                "POST /admin/eod/trigger": {"body.trading_day": SETTLED_DAY},
                "POST /admin/settlement/manual": {"body.trading_day": SETTLED_DAY},
                "POST /admin/settlement/correct": {
                    "body.trading_day": SETTLED_DAY,
                    "body.closes": [c for c in closes if c["trading_day"] == SETTLED_DAY],
                    "body.reason": reason,
                },
                "POST /admin/redemptions/{redemption_id}/resolve": {
                    "redemption_id": seeded["redemption"],
                    "body.status": "FAILED",
                    "body.reason": reason,
                },
                "POST /admin/universe/upsert": {
                    "body.trading_day": "2026-11-25",
                    "body.symbols": [symbol],
                },
                "POST /admin/users/adjust-points": {
                    "Idempotency-Key": "fuzz-adjust",
                    # Whichever of the two the case names (exactly one,
                    # as the schema says): the player's; the example's
                    # amount and reason, as the key's first use had them.
                    "body.email": {"dictionary": "player_email"},
                    "body.user_id": {"dictionary": "player_id"},
                    "body.amount": 100,
                    "body.reason": "goodwill after an outage",
                },
                "POST /admin/users/{user_id}/disable": {
                    "user_id": seeded["bystander"],
                    "body.reason": reason,
                },
                "POST /admin/users/{user_id}/enable": {
                    "user_id": seeded["bystander"],
                    "body.reason": reason,
                },
            },
            {"player_email": ["player@example.com"], "player_id": [str(seeded["player"])]},
        )
        runs = {
            "player": ("--exclude-path-regex", "^/(admin|v1/metrics)"),
            "admin": (),
        }
        total = 0
        for name, token in tokens.items():
            code, output, cases = fuzz(base, token, tmp_path, name, *runs[name])
            assert code == 0, f"{name}:\n{output[-20000:]}"
            assert unserved(tmp_path / f"{name}.ndjson") == UNSERVED[name], name
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
