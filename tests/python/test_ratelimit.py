"""Rate limits (SPEC 5): counted in PostgreSQL, so every API process shares
them; 429 problem+json with Retry-After and RateLimit headers."""

from __future__ import annotations

import ipaddress
import threading

import httpx
import psycopg
import pytest

from ox_sidecar.ratelimit import client_ip, limit_key
from support import (
    SYMBOLS,
    bearer,
    new_user,
    open_session_for,
    running_api,
    service,
    signup,
)

pytestmark = pytest.mark.usefixtures("calendar")


@pytest.fixture
def client(live_client: httpx.Client) -> httpx.Client:
    """These tests talk to the API under uvicorn, over a real socket."""
    return live_client


def set_limit(db: psycopg.Connection, key: str, value: int) -> None:
    with db.transaction():
        db.execute("update crypto.settings set value = %s where key = %s", (str(value), key))


def test_predictions_per_minute_count_only_accepted_ones_and_retry_after_is_exact(
    client: httpx.Client, db: psycopg.Connection
) -> None:
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    set_limit(db, "predictions.base_limit", 10)
    h = bearer(signup(client, "fast@example.com"))
    service(db, "select crypto.clock_set('2026-11-24T09:00:10+09:00')")

    def predict(symbol: str) -> httpx.Response:
        return client.post(f"/v1/predictions/{symbol}", json={"choice": "UP"}, headers=h)

    # Mistakes (not in the universe, a bad body) use none of the player's budget.
    refused = [predict("ZZZZ"), predict("QQQQ")]
    refused.append(client.post("/v1/predictions/AAPL", json={"choice": "up"}, headers=h))
    assert [r.status_code for r in refused] == [422, 422, 422]
    answers = [predict(s) for s in ["AAPL", "MSFT", "NVDA", "TSLA", "AMD"]]
    assert [a.status_code for a in answers] == [201] * 5
    assert answers[4].headers["RateLimit-Remaining"] == "0"
    limited = predict("META")
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["code"] == "RATE_LIMITED"
    assert limited.headers["RateLimit-Limit"] == "5"
    assert limited.headers["RateLimit-Remaining"] == "0"
    # Five in the minute from 09:00: one more fits once the previous minute
    # weighs 4 (5 x 48/60), at 09:01:12, about 62 s after 09:00:10; a plain
    # "until the window ends" (50 s) would send the client back too early.
    retry = int(limited.headers["Retry-After"])
    assert 55 < retry <= 62
    assert f"retry in {retry} s" in limited.json()["detail"]
    assert db.execute("select count(*) from crypto.predictions").fetchone() == (5,)
    # Other users and other routes are not affected.
    other = bearer(signup(client, "calm@example.com"))
    assert (
        client.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=other).status_code == 201
    )
    assert client.get("/v1/session/today", headers=h).status_code == 200

    service(db, "select crypto.clock_set('2026-11-24T09:01:11+09:00')")
    assert predict("META").status_code == 429
    service(db, "select crypto.clock_set('2026-11-24T09:01:12+09:00')")
    assert predict("META").status_code == 201


def test_predictions_per_hour(client: httpx.Client, db: psycopg.Connection) -> None:
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    set_limit(db, "ratelimit.predictions_per_minute", 1000)
    set_limit(db, "ratelimit.predictions_per_hour", 4)
    set_limit(db, "predictions.base_limit", 10)
    h = bearer(signup(client, "hourly@example.com"))
    codes = []
    symbols = ["AAPL", "ZZZZ", "MSFT", "AAPL", "NVDA", "TSLA", "AMD", "META"]
    for minute, symbol in enumerate(symbols):
        service(
            db,
            "select crypto.clock_set(%s::timestamptz)",
            f"2026-11-24T09:{10 + minute:02d}:00+09:00",
        )
        codes.append(
            client.post(f"/v1/predictions/{symbol}", json={"choice": "UP"}, headers=h).status_code
        )
    # The unknown symbol and the duplicate are refused and do not count.
    assert codes == [201, 422, 201, 409, 201, 201, 429, 429]


def test_a_burst_of_one_players_predictions_is_held_to_the_limit_exactly(
    env: None, db: psycopg.Connection
) -> None:
    """The per-user prediction limit is a rule of the call, checked under
    the player's lock (crypto.prediction_rate): ten of one player's
    predictions at once, through two API processes, and exactly the limit
    gets through, every other one a 429 with its Retry-After."""
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    set_limit(db, "predictions.base_limit", 10)
    set_limit(db, "ratelimit.predictions_per_minute", 3)
    service(db, "select crypto.clock_set('2026-11-24T09:00:10+09:00')")
    with running_api() as one, running_api() as two:
        with httpx.Client(base_url=one) as c:
            h = bearer(signup(c, "burst@example.com"))
        start = threading.Barrier(len(SYMBOLS))
        answers: dict[str, httpx.Response] = {}

        def predict(i: int, symbol: str) -> None:
            with httpx.Client(base_url=(one, two)[i % 2], timeout=30) as c:
                start.wait()
                answers[symbol] = c.post(
                    f"/v1/predictions/{symbol}", json={"choice": "UP"}, headers=h
                )

        threads = [threading.Thread(target=predict, args=a) for a in enumerate(SYMBOLS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    codes = sorted(a.status_code for a in answers.values())
    assert codes == [201] * 3 + [429] * 7
    refused = [a for a in answers.values() if a.status_code == 429]
    assert all(int(a.headers["Retry-After"]) > 0 for a in refused)
    assert {a.headers["RateLimit-Limit"] for a in refused} == {"3"}
    assert all(len(a.headers.get_list("RateLimit-Remaining")) == 1 for a in refused)
    accepted = sorted(s for s, a in answers.items() if a.status_code == 201)
    assert db.execute(
        "select array_agg(symbol::text order by symbol) from crypto.predictions"
    ).fetchone() == (accepted,)


def test_point_reads_per_minute(client: httpx.Client, db: psycopg.Connection) -> None:
    set_limit(db, "ratelimit.point_reads_per_minute", 3)
    h = bearer(signup(client, "reader@example.com"))
    codes = [client.get("/v1/points/balance", headers=h).status_code for _ in range(3)]
    codes.append(client.get("/v1/points/ledger", headers=h).status_code)
    assert codes == [200, 200, 200, 429]
    assert client.get("/v1/rewards", headers=h).status_code == 200


def test_me_and_stats_are_point_reads(client: httpx.Client, db: psycopg.Connection) -> None:
    """Both return the balance, so they share the point-read limit."""
    set_limit(db, "ratelimit.point_reads_per_minute", 3)
    h = bearer(signup(client, "peeker@example.com"))
    paths = ["/v1/users/me", "/v1/users/stats", "/v1/points/balance", "/v1/users/me"]
    assert [client.get(p, headers=h).status_code for p in paths] == [200, 200, 200, 429]
    assert client.get("/v1/users/stats", headers=h).status_code == 429


def test_every_route_per_ip_but_the_probes(client: httpx.Client, db: psycopg.Connection) -> None:
    set_limit(db, "ratelimit.ip_per_minute", 4)
    codes = [client.get("/v1/rewards").status_code for _ in range(3)]
    # A bad token still counts against its IP.
    codes.append(client.get("/v1/users/me", headers={"Authorization": "Bearer junk"}).status_code)
    codes.append(client.get("/v1/ads").status_code)
    # Refused by the limiter's middleware too: a request that reaches no call.
    codes.append(client.get("/v1/users/me", headers={"Authorization": "Bearer junk"}).status_code)
    assert codes == [200, 200, 200, 401, 429, 429]
    assert all(client.get(p).status_code in (200, 503) for p in ("/health", "/ready") * 5)


def test_every_api_process_shares_the_count(env: None, db: psycopg.Connection) -> None:
    set_limit(db, "ratelimit.ip_per_minute", 4)
    with running_api() as one, running_api() as two:
        codes = [httpx.get(f"{base}/v1/rewards").status_code for base in (one, two, one, two, one)]
    assert codes == [200, 200, 200, 200, 429]


def test_leases_let_requests_through_unstated_and_never_past_the_limit(
    env: None, db: psycopg.Connection
) -> None:
    """Two API processes on one IP with a limit of 20 and leases of half of
    it: the first request of each asks the gate, which counts it and
    reserves the lease at once; the leased requests send no statement of
    the limiter's; the limit holds exactly across both processes, and the
    refused requests count."""
    set_limit(db, "ratelimit.ip_per_minute", 20)
    set_limit(db, "ratelimit.lease_share", 0.5)
    service(db, "select crypto.clock_set('2026-11-24T10:00:05+09:00')")  # a minute to go
    with running_api() as one, running_api() as two:

        def get(base: str) -> httpx.Response:
            return httpx.get(f"{base}/v1/rewards")

        first = get(one)
        assert first.status_code == 200 and ip_hits(db) == 11  # 1 + a lease of 10
        leased = [get(one) for _ in range(10)]
        assert [r.status_code for r in leased] == [200] * 10
        assert ip_hits(db) == 11  # no statement of the limiter's
        assert leased[-1].headers["RateLimit-Limit"] == "20"
        assert leased[-1].headers["RateLimit-Remaining"] == "9"
        assert get(two).status_code == 200 and ip_hits(db) == 20  # 1 + all that is left: 8
        assert [get(two).status_code for _ in range(8)] == [200] * 8
        refused = [get(base) for base in (one, two, one)]
        assert [r.status_code for r in refused] == [429] * 3
        assert int(refused[0].headers["Retry-After"]) > 0
    assert ip_hits(db) == 23  # 20 let through, 3 refused: each counted once


def ip_hits(db: psycopg.Connection) -> int:
    row = db.execute(
        "select coalesce(sum(hits), 0)::int from crypto.rate_limits where bucket = 'ip:127.0.0.1'"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_refused_call_never_runs_and_every_request_counts_once(
    env: None, db: psycopg.Connection
) -> None:
    """The limiter runs in the request's own transaction (db._run_gated): a
    refusal commits its count but its call never starts; a call that fails
    (its rollback takes the count) and a request that reaches no call are
    counted on their own, once; two API processes share the counts. The
    prediction rate is the call's own rule: its refusal is returned by the
    call, which writes no prediction either."""
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    set_limit(db, "ratelimit.predictions_per_minute", 2)
    set_limit(db, "predictions.base_limit", 10)
    set_limit(db, "ratelimit.lease_share", 0)  # every request counted as it comes
    with running_api() as one, running_api() as two:
        with httpx.Client(base_url=one) as client:
            h = bearer(signup(client, "shared@example.com"))
            fresh = bearer(signup(client, "fresh@example.com"))
        service(db, "select crypto.clock_set('2026-11-24T09:00:10+09:00')")
        before = ip_hits(db)

        def predict(
            base: str, symbol: str, choice: str = "UP", who: dict[str, str] = h
        ) -> httpx.Response:
            return httpx.post(
                f"{base}/v1/predictions/{symbol}", json={"choice": choice}, headers=who
            )

        unknown = predict(one, "ZZZZ")  # the call fails: rolled back, counted again
        bad_body = predict(two, "AAPL", "up")  # no call at all: counted on its own
        accepted = [predict(one, "AAPL"), predict(two, "MSFT")]
        refused = predict(two, "NVDA")
        assert [unknown.status_code, bad_body.status_code] == [422, 422]
        assert [a.status_code for a in accepted] == [201, 201]
        assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMITED"
        assert refused.headers["RateLimit-Limit"] == "2"
        assert int(refused.headers["Retry-After"]) > 0
        assert accepted[1].headers["RateLimit-Remaining"] == "0"
        assert unknown.headers["RateLimit-Limit"] == bad_body.headers["RateLimit-Limit"]
        # Five requests, each counted once against the IP, the refused one too.
        assert ip_hits(db) - before == 5

        # Refused by the gate (the IP is over its limit, counted in this
        # minute): the guarded call never starts, so a player with budget to
        # spare gets no prediction written, and the refusal is counted.
        set_limit(db, "ratelimit.ip_per_minute", 1)
        service(db, "select crypto.clock_set('2026-11-24T09:00:40+09:00')")
        guarded = predict(one, "NVDA", who=fresh)
        assert guarded.status_code == 429 and guarded.json()["code"] == "RATE_LIMITED"
        assert int(guarded.headers["Retry-After"]) > 0
        assert ip_hits(db) - before == 6
    assert db.execute(
        "select array_agg(symbol::text order by symbol) from crypto.predictions"
    ).fetchone() == (["AAPL", "MSFT"],)


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    # A client talking to us directly cannot choose its IP with a header.
    assert client_ip("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"
    # Through our proxy: the address the proxy saw, not what the client claimed left of it.
    assert client_ip("10.0.0.2", "1.2.3.4, 198.51.100.7", trusted) == "198.51.100.7"
    assert client_ip("10.0.0.2", "198.51.100.7, 10.0.0.5", trusted) == "198.51.100.7"
    assert client_ip("10.0.0.2", "not-an-ip", trusted) == "10.0.0.2"
    assert client_ip("10.0.0.2", None, trusted) == "10.0.0.2"
    # Several header lines are one list: the last line is the proxy's.
    assert client_ip("10.0.0.2", ["1.2.3.4", "198.51.100.7"], trusted) == "198.51.100.7"
    assert client_ip("10.0.0.2", ["1.2.3.4, 5.6.7.8", "198.51.100.7, 10.0.0.9"], trusted) == (
        "198.51.100.7"
    )


def test_ipv6_clients_are_limited_per_64() -> None:
    assert limit_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert limit_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert limit_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert limit_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert limit_key("198.51.100.7") == "198.51.100.7"


def test_every_forwarded_for_line_and_the_64_over_http(
    env: None, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind our proxy (127.0.0.1 trusted): the client is the rightmost
    untrusted address over every header line, and an IPv6 client is its /64."""
    monkeypatch.setenv("TRUSTED_PROXIES", '["127.0.0.1/32"]')
    set_limit(db, "ratelimit.ip_per_minute", 3)
    with running_api() as base, httpx.Client(base_url=base) as http:

        def get(*lines: str) -> int:
            headers = [("X-Forwarded-For", line) for line in lines]
            return http.get("/v1/rewards", headers=headers).status_code

        # The client forges a new first line each time; the proxy's line is the truth.
        spoofed = [get(f"203.0.113.{i}", "198.51.100.7") for i in range(4)]
        assert spoofed == [200, 200, 200, 429]
        # Addresses of one /64 are one client; the next /64 is another.
        same_64 = [get(f"2001:db8:1:2::{i:x}") for i in range(1, 5)]
        assert same_64 == [200, 200, 200, 429]
        assert get("2001:db8:1:3::1") == 200


def test_players_behind_one_address_never_wait_on_each_others_calls(
    db: psycopg.Connection, db_url: str
) -> None:
    """The gate counts before the call and its rows stay locked to COMMIT.
    A player's own other request waits on the player's row (their limit is
    exact); another player behind the same IP does not wait at all: each
    session counts the IP in a row of its own (sql/0036), summed."""
    set_limit(db, "ratelimit.lease_share", 0)  # every request counted as it comes
    player = new_user(db, "locks@example.com")
    neighbour = new_user(db, "natted@example.com")
    ip = "192.0.2.9"
    with (
        psycopg.connect(db_url) as gated,
        psycopg.connect(db_url) as same,
        psycopg.connect(db_url) as other,
    ):
        for conn in (gated, same, other):
            conn.execute("set role auth_service")
            # Seen today already (as a player is after their first request):
            # crypto.note_activity then locks nothing that would queue these.
            conn.execute("select api.rate_limit(%s, %s, %s)", ("192.0.2.1", player, []))
            conn.execute("select api.rate_limit(%s, %s, %s)", ("192.0.2.1", neighbour, []))
            conn.commit()
            conn.execute("set role auth_service")
        gated.execute("select api.rate_limit_gate(%s, %s, %s)", (ip, player, ["point_reads"]))
        # The call would run here, with the gate's rows locked.
        with other.transaction():
            other.execute("set local lock_timeout = '1s'")
            other.execute(
                "select api.rate_limit_gate(%s, %s, %s)", (ip, neighbour, ["point_reads"])
            )
        failures: list[BaseException] = []

        def players_own() -> None:
            try:
                same.execute("select api.rate_limit(%s, %s, %s)", (ip, player, ["point_reads"]))
                same.commit()
            except BaseException as exc:  # surfaced below
                failures.append(exc)

        waiting = threading.Thread(target=players_own)
        waiting.start()
        waiting.join(timeout=1.5)  # it waits on the player's row (deadlock_timeout is 1 s)
        assert waiting.is_alive() and not failures
        gated.commit()
        waiting.join(timeout=10)
        assert not failures, failures
    rows = db.execute(
        "select count(*)::int, sum(hits)::int from crypto.rate_limits where bucket = %s",
        (f"ip:{ip}",),
    ).fetchone()
    assert rows == (3, 3)  # one row per session, three requests
    reads = db.execute(
        "select sum(hits)::int from crypto.rate_limits where bucket = %s",
        (f"point_reads:minute:{player}",),
    ).fetchone()
    assert reads == (2,)
