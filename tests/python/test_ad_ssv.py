"""Ad rewards pay only on the ad network's verified server-side callback:
the real API under uvicorn, a local key server publishing ECDSA P-256 keys
in AdMob's shape, callbacks signed as AdMob signs them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from adnetwork import AdNetwork, run_ad_network
from support import bearer, open_session_for, race_each, running_api, service, signup

pytestmark = pytest.mark.usefixtures("calendar")


@pytest.fixture
def network() -> Iterator[AdNetwork]:
    with run_ad_network() as n:
        yield n


@pytest.fixture
def api(env: None, network: AdNetwork, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch.setenv("AD_SSV_KEYS_URL", network.keys_url)
    monkeypatch.setenv("AD_SSV_REFETCH_SECONDS", "0")  # tests rotate keys at once
    monkeypatch.setenv("AD_SSV_AD_UNITS", '["1234567890"]')  # our rewarded ad unit
    with running_api() as base, httpx.Client(base_url=base, timeout=30) as c:
        yield c


@pytest.fixture
def player(api: httpx.Client, db: psycopg.Connection) -> dict[str, str]:
    with db.transaction():
        db.execute("update crypto.settings set value = '100000' where key like 'ratelimit.%'")
        db.execute(
            "insert into crypto.ads (id, title, reward_kind, reward_points) values"
            " ('slot', 'One more prediction', 'SLOT', 0), ('pts', '20 points', 'POINTS', 20)"
        )
    open_session_for(db, "2026-11-24", "2026-11-24T09:00:00+09:00")
    return bearer(signup(api, "player@example.com"))


def now(db: psycopg.Connection) -> dt.datetime:
    """The database's clock (crypto.now()), which the tests move."""
    return service(db, "select crypto.now()")  # type: ignore[no-any-return]


def show(api: httpx.Client, user: dict[str, str], ad: str, key: str) -> dict[str, Any]:
    shown = api.post(f"/v1/ads/{ad}/click", headers={**user, "Idempotency-Key": key})
    assert shown.status_code == 201, shown.text
    return shown.json()["ssv"]  # type: ignore[no-any-return]


def balance(api: httpx.Client, user: dict[str, str]) -> int:
    return api.get("/v1/points/balance", headers=user).json()["balance"]  # type: ignore[no-any-return]


def test_a_verified_callback_pays_once_and_a_click_alone_nothing(
    api: httpx.Client, db: psycopg.Connection, network: AdNetwork, player: dict[str, str]
) -> None:
    ssv = show(api, player, "pts", "c1")
    assert balance(api, player) == 0  # the click recorded an impression, no more

    query = network.callback(**ssv, transaction_id="18fa792de1bca816", timestamp=now(db))
    paid = api.get(f"/v1/ads/ssv?{query}")  # no token: the network calls
    assert paid.status_code == 200, paid.text
    assert paid.json()["points"] == 20 and paid.json()["impression_id"] == ssv["custom_data"]
    assert balance(api, player) == 20

    replay = api.get(f"/v1/ads/ssv?{query}")
    assert replay.status_code == 200 and replay.json() == paid.json()
    assert balance(api, player) == 20  # answered, not paid again
    ledger = api.get("/v1/points/ledger", headers=player).json()["items"]
    assert [(e["reason"], e["amount"]) for e in ledger] == [("ad_reward", 20)]

    # The same impression under another transaction pays nothing.
    again = network.callback(**ssv, transaction_id="18fa792de1bca817", timestamp=now(db))
    refused = api.get(f"/v1/ads/ssv?{again}")
    assert refused.status_code == 409 and refused.json()["code"] == "AD_IMPRESSION_REWARDED"
    assert refused.headers["content-type"] == "application/problem+json"
    assert balance(api, player) == 20
    assert network.fetches == 1  # the keys were cached


def test_forged_and_refused_callbacks_pay_nothing(
    api: httpx.Client, db: psycopg.Connection, network: AdNetwork, player: dict[str, str]
) -> None:
    ssv = show(api, player, "pts", "c1")
    other = show(api, bearer(signup(api, "other@example.com")), "pts", "o1")
    at = now(db)

    def refused(query: str, status: int, code: str) -> None:
        r = api.get(f"/v1/ads/ssv?{query}")
        assert (r.status_code, r.json()["code"]) == (status, code), (query, r.text)

    good = network.callback(**ssv, transaction_id="t1", timestamp=at)
    # Tampered after signing: the amount, the user, the impression.
    refused(good.replace("reward_amount=1", "reward_amount=1000"), 403, "AD_SSV_BAD_SIGNATURE")
    refused(good.replace(ssv["user_id"], other["user_id"]), 403, "AD_SSV_BAD_SIGNATURE")
    refused(good.replace(ssv["custom_data"], other["custom_data"]), 403, "AD_SSV_BAD_SIGNATURE")
    # Signed by a key the network does not publish, under a published key id.
    network.new_key("2002", publish=False)
    content = network.signed_content(**ssv, transaction_id="t1", timestamp=at)
    forged = network.sign(content, "2002").replace("key_id=2002", "key_id=1001")
    refused(forged, 403, "AD_SSV_BAD_SIGNATURE")
    # ...or under its own id, which the key server (asked again) does not know.
    fetches = network.fetches
    refused(network.sign(content, "2002"), 403, "AD_SSV_UNKNOWN_KEY")
    assert network.fetches == fetches + 1
    # Not the shape of a callback.
    refused(f"{good}&user_id=x", 400, "AD_SSV_MALFORMED")  # signature and key_id not last
    refused(content, 400, "AD_SSV_MALFORMED")  # no signature
    refused(f"{content}&signature=!!!&key_id=1001", 400, "AD_SSV_MALFORMED")
    refused(f"{content}&signature=AAAA&key_id=1001", 403, "AD_SSV_BAD_SIGNATURE")
    # Signed by the network, but refused by the rules.
    stale = at - dt.timedelta(days=2)
    refused(network.callback(**ssv, transaction_id="t2", timestamp=stale), 403, "AD_SSV_STALE")
    unknown = {**ssv, "custom_data": str(uuid.uuid4())}
    refused(
        network.callback(**unknown, transaction_id="t3", timestamp=at), 404, "AD_IMPRESSION_UNKNOWN"
    )
    # Signed by the network for another publisher's ad unit (AdMob signs
    # every publisher's callbacks with the same keys): not our ad.
    refused(
        network.callback(**ssv, transaction_id="t5", timestamp=at, ad_unit="999"),
        403,
        "AD_SSV_UNKNOWN_AD_UNIT",
    )
    wrong_user = {**ssv, "user_id": other["user_id"]}
    refused(
        network.callback(**wrong_user, transaction_id="t4", timestamp=at),
        403,
        "AD_SSV_USER_MISMATCH",
    )

    assert balance(api, player) == 0
    assert service(db, "select count(*) from crypto.ad_unlocks") == 0
    # The untouched callback still pays: nothing above used it up.
    assert api.get(f"/v1/ads/ssv?{good}").status_code == 200
    assert balance(api, player) == 20


def test_rotated_keys_are_fetched_and_an_unreachable_key_server_asks_for_a_retry(
    api: httpx.Client, db: psycopg.Connection, network: AdNetwork, player: dict[str, str]
) -> None:
    first = show(api, player, "pts", "c1")
    assert (
        api.get(
            f"/v1/ads/ssv?{network.callback(**first, transaction_id='t1', timestamp=now(db))}"
        ).status_code
        == 200
    )
    network.new_key("3003")  # the network rotates
    second = show(api, player, "pts", "c2")
    rotated = network.callback("3003", **second, transaction_id="t2", timestamp=now(db))
    assert api.get(f"/v1/ads/ssv?{rotated}").status_code == 200
    network.new_key("4004")
    network.down = True
    third = show(api, player, "pts", "c3")
    later = network.callback("4004", **third, transaction_id="t3", timestamp=now(db))
    down = api.get(f"/v1/ads/ssv?{later}")
    assert down.status_code == 503 and down.json()["code"] == "UNAVAILABLE"  # AdMob retries
    network.down = False
    assert api.get(f"/v1/ads/ssv?{later}").status_code == 200
    assert balance(api, player) == 60


def test_slot_ads_unlock_on_the_callback_and_caps_hold_under_racing_callbacks(
    api: httpx.Client, db: psycopg.Connection, network: AdNetwork, player: dict[str, str]
) -> None:
    today = api.get("/v1/session/today", headers=player).json()
    limit = today["player"]["predictions_limit"]
    slot = show(api, player, "slot", "s1")
    assert (
        api.get("/v1/session/today", headers=player).json()["player"]["predictions_limit"] == limit
    )
    query = network.callback(**slot, transaction_id="s1", timestamp=now(db))
    assert api.get(f"/v1/ads/ssv?{query}").status_code == 200
    assert (
        api.get("/v1/session/today", headers=player).json()["player"]["predictions_limit"]
        == limit + 1
    )

    # The same transaction six times at once: paid once, answered six times alike.
    ssv = show(api, player, "pts", "p0")
    once = network.callback(**ssv, transaction_id="p0", timestamp=now(db))
    answers = race_each(6, lambda _: api.get(f"/v1/ads/ssv?{once}"))
    assert {r.status_code for r in answers} == {200}
    assert len({r.text for r in answers}) == 1
    assert balance(api, player) == 20

    # Eight impressions, their eight callbacks at once: the cap (5 a session)
    # is checked when paying, so four more pay and four are refused.
    shown = [show(api, player, "pts", f"p{i}") for i in range(1, 9)]
    at = now(db)
    queries = [
        network.callback(**s, transaction_id=f"p{i + 1}", timestamp=at) for i, s in enumerate(shown)
    ]
    codes = race_each(8, lambda i: api.get(f"/v1/ads/ssv?{queries[i]}"))
    assert sorted(r.status_code for r in codes) == [200] * 4 + [409] * 4
    assert {r.json()["code"] for r in codes if r.status_code == 409} == {"AD_LIMIT_REACHED"}
    assert balance(api, player) == 100
    capped = api.post("/v1/ads/pts/click", headers={**player, "Idempotency-Key": "p9"})
    assert capped.status_code == 409 and capped.json()["code"] == "AD_LIMIT_REACHED"
    assert service(db, "select count(*) from crypto.integrity_violations()") == 0


def test_the_timestamp_is_read_in_milliseconds_or_microseconds() -> None:
    """AdMob documents milliseconds; its own example has 16 digits (microseconds)."""
    from ox_sidecar.ad_ssv import parse

    def at(stamp: str) -> dt.datetime:
        content = (
            "ad_network=1&ad_unit=2&custom_data=c&reward_amount=1&reward_item=x"
            f"&timestamp={stamp}&transaction_id=t&user_id=u"
        )
        return parse(content).rewarded_at

    assert at("1507770365237") == at("1507770365237823").replace(microsecond=237000)
    assert at("1507770365237").year == 2017
