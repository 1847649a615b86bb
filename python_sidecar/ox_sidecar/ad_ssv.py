"""Server-side verification (SSV) of rewarded-ad callbacks, in AdMob's shape.

The network calls GET <our callback>?ad_network=..&ad_unit=..&custom_data=..
&key_id=..&reward_amount=..&reward_item=..&timestamp=..&transaction_id=..
&user_id=..&signature=..&key_id=.. — `signature` and `key_id` are the last
two parameters, and what is signed is the query string exactly as sent, up
to (not including) `&signature=`. The signature is ECDSA P-256 with SHA-256,
DER-encoded, in URL-safe base64; the key is the one named by key_id in the
network's published list ({"keys": [{"keyId", "pem", "base64"}]}), fetched
over HTTPS, cached, and fetched again when a callback names a key we do not
hold (the network rotates keys). The `cryptography` library verifies; no
ECDSA is written here. Who gets paid, and how much, is SQL's
(api.ad_ssv_reward); this only decides whether the network said it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .problems import Problem

SIGNATURE_MARK = "&signature="
# What a callback must carry besides signature and key_id. custom_data and
# user_id are optional for the network, not for us: they tie the view to an
# impression and a user.
REQUIRED = ("ad_network", "ad_unit", "custom_data", "timestamp", "transaction_id", "user_id")
KNOWN = frozenset((*REQUIRED, "reward_amount", "reward_item", "key_id"))
MAX_QUERY = 4096


@dataclass(frozen=True)
class Callback:
    transaction_id: str
    custom_data: str
    user_id: str
    rewarded_at: dt.datetime
    evidence: dict[str, Any]
    ad_unit: str = ""


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _timestamp(text: str) -> dt.datetime:
    """Milliseconds since the epoch (AdMob's documentation says so, though
    its own example has 16 digits: microseconds); both are read."""
    if not text.isdigit() or len(text) > 17:
        raise Problem("AD_SSV_MALFORMED", "timestamp must be a number of milliseconds")
    value = int(text)
    seconds = value / 1_000_000 if value >= 10**14 else value / 1000
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def split(query: str) -> tuple[str, bytes, str]:
    """The signed content, the signature and the key id of a raw query string."""
    if len(query) > MAX_QUERY:
        raise Problem("AD_SSV_MALFORMED", "The query string is too long")
    at = query.find(SIGNATURE_MARK)
    if at <= 0:
        raise Problem("AD_SSV_MALFORMED", "No signature parameter after the signed parameters")
    try:
        tail = parse_qsl(query[at + 1 :], keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise Problem("AD_SSV_MALFORMED", "The signature and key_id are not readable") from exc
    if [name for name, _ in tail] != ["signature", "key_id"]:
        raise Problem("AD_SSV_MALFORMED", "signature and key_id must be the last two parameters")
    signature, key_id = tail[0][1], tail[1][1]
    if not key_id.isdigit() or len(key_id) > 20:
        raise Problem("AD_SSV_MALFORMED", "key_id must be a number")
    try:
        raw = _b64url(signature)
    except (binascii.Error, ValueError) as exc:
        raise Problem("AD_SSV_MALFORMED", "The signature is not URL-safe base64") from exc
    if not raw:
        raise Problem("AD_SSV_MALFORMED", "The signature is empty")
    return query[:at], raw, key_id


def parse(content: str) -> Callback:
    """The signed parameters, once the signature is known to be good."""
    try:
        pairs = parse_qsl(content, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise Problem("AD_SSV_MALFORMED", "The parameters are not readable") from exc
    params = dict(pairs)
    if len(params) != len(pairs):
        raise Problem("AD_SSV_MALFORMED", "A parameter is repeated")
    missing = [name for name in REQUIRED if not params.get(name)]
    if missing:
        raise Problem("AD_SSV_MALFORMED", f"Missing: {', '.join(missing)}")
    evidence = {k: v[:200] for k, v in params.items() if k in KNOWN}
    return Callback(
        transaction_id=params["transaction_id"],
        custom_data=params["custom_data"],
        user_id=params["user_id"],
        rewarded_at=_timestamp(params["timestamp"]),
        evidence=evidence,
        ad_unit=params["ad_unit"],
    )


class SsvVerifier:
    """The network's published keys, cached for `cache_seconds` (AdMob asks
    for no more than 24 hours); a callback naming a key not in the cache
    fetches the list again, but not more often than every `refetch_seconds`,
    so forged key ids cannot make us hammer the key server."""

    def __init__(self, keys_url: str, cache_seconds: float, refetch_seconds: float):
        self.keys_url = keys_url
        self.cache_seconds = cache_seconds
        self.refetch_seconds = refetch_seconds
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched: float | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(self.keys_url)
                response.raise_for_status()
                listed = response.json()["keys"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise Problem("UNAVAILABLE", "The ad network's keys cannot be fetched") from exc
        keys: dict[str, ec.EllipticCurvePublicKey] = {}
        for entry in listed if isinstance(listed, list) else []:
            try:
                key = load_pem_public_key(entry["pem"].encode())
            except (KeyError, TypeError, AttributeError, ValueError):
                continue  # one unreadable entry does not hide the others
            if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
                keys[str(entry.get("keyId"))] = key
        self._keys, self._fetched = keys, time.monotonic()

    async def key(self, key_id: str) -> ec.EllipticCurvePublicKey:
        async with self._lock:
            now = time.monotonic()
            age = None if self._fetched is None else now - self._fetched
            if age is None or age > self.cache_seconds:
                await self._fetch()
            elif key_id not in self._keys and age >= self.refetch_seconds:
                await self._fetch()  # the network may have rotated its keys
            found = self._keys.get(key_id)
        if found is None:
            raise Problem("AD_SSV_UNKNOWN_KEY", f"The ad network publishes no key {key_id}")
        return found

    async def verify(self, query: str) -> Callback:
        content, signature, key_id = split(query)
        key = await self.key(key_id)
        try:
            key.verify(signature, content.encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise Problem("AD_SSV_BAD_SIGNATURE", "The signature does not verify") from exc
        return parse(content)
