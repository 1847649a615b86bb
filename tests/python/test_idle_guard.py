"""The API logins' guard against a request stalled inside its transaction
(plpgsql/00_api_logins.sql), and how the shim answers the ended session."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

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
