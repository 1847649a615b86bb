"""A process's rate-limit leases (gate.Leases) on their own: what a request
spends, what is left for the gate, who may ask. The gate's side (what it
grants and reserves) is pgTAP 130; both together over HTTP, test_ratelimit."""

from __future__ import annotations

import time

import pytest

from ox_sidecar.gate import Leases

USER = "00000000-0000-4000-8000-000000000001"


def lease(n: int, expires_in: float = 30.0, limit: int = 100, remaining: int = 90) -> dict:
    return {"n": n, "expires_in": expires_in, "limit": limit, "remaining": remaining}


def test_a_request_spends_what_it_holds_and_the_gate_counts_the_rest() -> None:
    leases = Leases()
    now = time.monotonic()
    asked = leases.wanted("1.2.3.4", USER, ["point_reads"], now)
    assert asked == ["ip", "point_reads"]
    leases.settle("1.2.3.4", USER, asked, {"ip": lease(2)}, now)
    rest, headers = leases.take("1.2.3.4", USER, ["point_reads"])
    assert rest == ["point_reads"]  # no point-read lease: the gate counts that one
    assert headers["RateLimit-Limit"] == "100" and headers["RateLimit-Remaining"] == "89"
    assert leases.take("1.2.3.4", None, [])[0] == []  # anonymous: the IP alone, leased
    assert leases.take("1.2.3.4", None, []) == (["ip"], {})  # two spent: the gate again
    assert leases.take("5.6.7.8", None, [])[0] == ["ip"]  # another IP holds nothing


def test_one_request_at_a_time_asks_and_a_failure_lets_the_next_ask() -> None:
    leases = Leases()
    asked_at = time.monotonic()
    first = leases.wanted("1.2.3.4", USER, ["point_reads"], asked_at)
    assert first == ["ip", "point_reads"]
    assert leases.wanted("1.2.3.4", USER, ["point_reads"], time.monotonic()) == []  # being asked
    leases.settle("1.2.3.4", USER, first, {}, asked_at)  # the gate failed
    assert leases.wanted("1.2.3.4", USER, ["point_reads"], time.monotonic()) == first


def test_an_ask_timed_out_does_not_clear_the_ask_after_it() -> None:
    leases = Leases()
    stale = time.monotonic() - Leases.ASK_SECONDS - 1  # its mark has run out
    assert leases.wanted("1.2.3.4", None, [], stale) == ["ip"]
    later = time.monotonic()
    assert leases.wanted("1.2.3.4", None, [], later) == ["ip"]  # asks again
    leases.settle("1.2.3.4", None, ["ip"], {}, stale)  # the first answer, late
    assert leases.wanted("1.2.3.4", None, [], time.monotonic()) == []  # the later ask holds


def test_a_lease_ends_with_its_window_counted_from_when_it_was_asked() -> None:
    leases = Leases()
    asked_at = time.monotonic() - 29.9  # the gate's answer came 29.9 s after asking
    leases.settle("1.2.3.4", None, ["ip"], {"ip": lease(5, expires_in=30.0)}, asked_at)
    assert leases.take("1.2.3.4", None, [])[0] == []
    time.sleep(0.15)
    assert leases.take("1.2.3.4", None, [])[0] == ["ip"]


def test_two_grants_of_one_window_add_up() -> None:
    leases = Leases()
    now = time.monotonic()
    leases.settle("1.2.3.4", None, ["ip"], {"ip": lease(1)}, now)
    leases.settle("1.2.3.4", None, [], {"ip": lease(1)}, now)  # reserved too: ours
    assert [leases.take("1.2.3.4", None, [])[0] for _ in range(3)] == [[], [], ["ip"]]


def test_the_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Leases, "MAX", 2)
    leases = Leases()
    now = time.monotonic()
    for ip in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        leases.settle(ip, None, ["ip"], {"ip": lease(5)}, now)
    # The oldest grant is forgotten (its reservation only goes unused).
    assert [leases.take(ip, None, [])[0] for ip in ("1.1.1.1", "2.2.2.2", "3.3.3.3")] == [
        ["ip"],
        [],
        [],
    ]
