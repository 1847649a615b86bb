"""The API logins' guard against a request stalled inside its transaction
(plpgsql/00_api_logins.sql), and how the shim answers the ended session."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ox_sidecar import worker
from ox_sidecar.db import connection_lost


@pytest.mark.parametrize("login", ["authenticator", "admin_authenticator"])
def test_a_session_idle_in_its_transaction_is_ended_and_counts_as_unreachable(
    db_url: str, login: str
) -> None:
    with psycopg.connect(make_conninfo(db_url, user=login)) as conn:
        # What every new session of the API's logins gets from the role.
        assert conn.execute("show idle_in_transaction_session_timeout").fetchone() == ("10s",)
        with pytest.raises(psycopg.errors.DivisionByZero) as wrong:
            conn.execute("select 1 / 0")
        conn.rollback()
        # A statement's own error is the request's answer, not an outage.
        assert not connection_lost(wrong.value)
        conn.execute("set idle_in_transaction_session_timeout = '200ms'")
        conn.commit()
        conn.execute("select 1")  # inside a transaction now, then stalled
        time.sleep(1)
        with pytest.raises(psycopg.Error) as ended:
            conn.execute("select 1")
    # Answered DATABASE_UNAVAILABLE (503), never an unmapped 500.
    assert connection_lost(ended.value), (ended.value.sqlstate, ended.value)


def test_the_worker_reconnects_when_its_session_is_ended_for_idling(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's login is bounded too (plpgsql/00_login_idle_limits.sql):
    a session it left idle in a transaction is ended by the server, and the
    worker reconnects rather than exits; a statement's own error still
    stops it."""
    with psycopg.connect(make_conninfo(db_url, user="oxp_service")) as conn:
        assert conn.execute("show idle_in_transaction_session_timeout").fetchone() == ("5min",)
        conn.execute("set idle_in_transaction_session_timeout = '200ms'")
        conn.commit()
        conn.execute("select 1")
        time.sleep(1)
        with pytest.raises(psycopg.Error) as ended:
            conn.execute("select 1")
    assert ended.value.sqlstate in (None, "25P03")
    # Errors that stop it: a statement's own (the server's SQLSTATE), and one
    # psycopg raises itself on a live link (no SQLSTATE: a parameter missing).
    stoppers: list[psycopg.Error] = []
    with psycopg.connect(db_url) as conn:
        for bad in ("select 1 / 0", "select %s"):
            with pytest.raises(psycopg.Error) as wrong:
                conn.execute(bad, ())
            stoppers.append(wrong.value)
            conn.rollback()
    assert stoppers[0].sqlstate == "22012" and stoppers[1].sqlstate is None

    monkeypatch.setattr(worker.time, "sleep", lambda _: None)
    for stopper in stoppers:
        served: list[str] = []

        def serve(url: str, poll_seconds: float, kinds: list[str], s: list[str] = served) -> None:
            s.append(url)
            if len(s) > 2:  # it waited the stopper out as an outage
                raise RuntimeError("served again after an error that should stop it")
            raise ended.value if len(s) == 1 else stopper  # noqa: B023 (used at once)

        monkeypatch.setattr(worker, "_serve", serve)
        with pytest.raises(type(stopper)):
            worker.run_forever(db_url)
        assert served == [db_url, db_url]  # ended: served again; the stopper: raised


def test_the_cli_bounds_its_session_like_the_operator_login(env: None) -> None:
    """`oxp` logs in as DATABASE_URL's user, whose settings are not
    oxp_operator's: it sets the operator's limit itself, and its command
    still commits (the setting's own transaction ends before the command's)."""
    from ox_cli.common import service_connection

    with service_connection() as conn:
        assert conn.execute("show idle_in_transaction_session_timeout").fetchone() == ("15min",)
        conn.execute("select crypto.clock_set(now() + interval '30 days')")
    with service_connection() as conn:
        assert conn.execute("select crypto.now() - now() > interval '29 days'").fetchone() == (
            True,
        )
