"""The error map follows the database (issue 10, item 4): a SQLSTATE the API
has not seen makes it re-read api.error_codes() once, at most once per
ERROR_CODES_RELOAD_SECONDS, instead of answering 500 until a restart."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.usefixtures("calendar")


def raise_from_universe_today(db: psycopg.Connection, sqlstate: str, code: str) -> None:
    """A new error code, and a function behind a route that raises it, added
    while the API runs (as a migration would)."""
    db.execute(
        "insert into crypto.error_codes (sqlstate, code, http_status, title)"
        " values (%s, %s, 410, 'Added while the API ran')",
        (sqlstate, code),
    )
    db.execute(
        f"""create or replace function api.universe_today() returns json
            language plpgsql set search_path = crypto, pg_temp as $$
            begin
                raise exception using errcode = '{sqlstate}', message = '{code}',
                    detail = 'Raised by a function newer than the API';
            end $$"""
    )


def test_a_code_added_while_the_api_runs_is_answered_without_a_restart(
    client: TestClient, db: psycopg.Connection
) -> None:
    assert client.get("/v1/universe/today").json()["code"] == "NO_SESSION"  # as it was
    raise_from_universe_today(db, "OX229", "ADDED_LATER")

    r = client.get("/v1/universe/today")
    assert r.status_code == 410, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "ADDED_LATER"
    assert r.json()["detail"] == "Raised by a function newer than the API"
    # Known from now on, without another read.
    assert client.get("/v1/universe/today").json()["code"] == "ADDED_LATER"


def test_unknown_codes_reread_the_map_at_most_once_per_interval(
    client: TestClient, db: psycopg.Connection
) -> None:
    raise_from_universe_today(db, "OX229", "ADDED_LATER")
    assert client.get("/v1/universe/today").status_code == 410
    # A second new code within the interval (30 s by default) is not read:
    # a flood of unknown codes costs one read per interval, no more.
    raise_from_universe_today(db, "OX228", "ADDED_LATER_STILL")
    r = client.get("/v1/universe/today")
    assert r.status_code == 500, r.text
    assert r.json()["code"] == "INTERNAL"


def test_every_unknown_code_rereads_once_the_interval_allows(
    client: TestClient, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    reloader = client.app.state.pool.error_map  # type: ignore[attr-defined]
    monkeypatch.setattr(reloader, "every_seconds", 0.0)
    raise_from_universe_today(db, "OX229", "ADDED_LATER")
    assert client.get("/v1/universe/today").status_code == 410
    raise_from_universe_today(db, "OX228", "ADDED_LATER_STILL")
    assert client.get("/v1/universe/today").json()["code"] == "ADDED_LATER_STILL"
