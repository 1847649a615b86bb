"""Reward vendors: who turns a redemption into a real voucher. The adapter is
the only part that talks to the outside; the database decides everything else.

The outcomes of a vendor call, and what the worker records for each:
- a reference: the voucher exists (ISSUED);
- VendorRefused: the vendor said no and issued nothing (FAILED, refunded);
- VendorUnknown: the request may have reached the vendor and no answer we
  can read came back (a read timeout, a connection lost after sending, a
  5xx, any other 2xx or a 3xx): the voucher may exist (UNKNOWN; asked again
  later with the same idempotency key);
- VendorRetryLater: the vendor answered another 4xx (credentials,
  throttling, a bad request): it reached the vendor, so the call's mark
  stays (no cancel refunds it); the job is retried;
- VendorUnavailable: no connection was made, so the request never left:
  the only outcome that takes the call's mark back; the job is retried.

The HTTP vendor's wire format (what a real vendor's endpoint implements):
    POST {VENDOR_URL}/vouchers
    Content-Type: application/json
    Idempotency-Key: <redemption id>
    X-OXP-Timestamp: <unix seconds>
    X-OXP-Signature: v1=<hex HMAC-SHA256(VENDOR_SECRET, signing_payload(...))>
    {"redemption_id": 42, "sku": "MUG", "idempotency_key": "42"}
answered with 200/201 {"status": "issued", "vendor_ref": "..."} (the same
reference again for a key seen before), or 409/422 {"status": "refused",
"reason": "..."}. The vendor rejects a signature older than 5 minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import psycopg

from . import environment
from .config import Settings, VendorNotConfigured

SIGNATURE_VERSION = "v1"
SIGNATURE_MAX_AGE_SECONDS = 300


class VendorRefused(Exception):
    """A final no from the vendor: the redemption fails and is refunded."""


class VendorUnknown(Exception):
    """No answer after the request may have reached the vendor: it may have
    issued the voucher. Never a refund; the worker asks again."""


class VendorUnavailable(Exception):
    """No connection was made (refused, timed out, no connection free): the
    request never left, so nothing was issued; the job is retried."""


class VendorRetryLater(Exception):
    """The vendor answered a 4xx that is no refusal (credentials, throttling,
    a bad request): presumably nothing was issued, but the request reached
    it, so the worker keeps the call's mark and retries the job."""


class Vendor(Protocol):
    # The longest one call can last (its timeouts summed): the worker's claim
    # on the job is stretched over it (crypto.redemption_sending).
    call_seconds: float

    def issue(self, redemption: dict[str, Any]) -> str:
        """Issue one unit; returns the vendor's reference. Must be idempotent per
        redemption id: a worker that dies mid-call retries with the same id."""
        ...


class SimulatedVendor:
    """Issues instantly; refuses a share of requests given by the database
    setting `rewards.vendor_failure_rate`, so demos and tests can make it fail.
    Its vouchers do not exist: it refuses to run against a production database."""

    def __init__(self, conn: psycopg.Connection, rng: random.Random | None = None) -> None:
        if environment.of_database(conn) == "production":
            raise VendorNotConfigured(
                "the database is production and VENDOR_URL is not set: the simulated"
                " reward vendor only runs in development"
            )
        row = conn.execute(
            "select (value #>> '{}')::float8 from crypto.settings"
            " where key = 'rewards.vendor_failure_rate'"
        ).fetchone()
        self.failure_rate = float(row[0]) if row else 0.0
        self.call_seconds = 1.0
        self.rng = rng or random.Random()  # noqa: S311 - a simulation, not a secret

    def issue(self, redemption: dict[str, Any]) -> str:
        if self.rng.random() < self.failure_rate:
            raise VendorRefused("the simulated vendor refused this request")
        return f"sim-{redemption['id']}"


def signing_payload(timestamp: str, method: str, path: str, key: str, body: bytes) -> bytes:
    """What is signed: the time, the request line and the key, then the body,
    so a signature is good for one request to one endpoint, for a while."""
    return f"{timestamp}.{method.upper()}.{path}.{key}.".encode() + body


def sign(secret: str, timestamp: str, method: str, path: str, key: str, body: bytes) -> str:
    digest = hmac.new(
        secret.encode(), signing_payload(timestamp, method, path, key, body), hashlib.sha256
    ).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signature_valid(
    secret: str,
    headers: dict[str, str],
    method: str,
    path: str,
    body: bytes,
    now: float | None = None,
) -> bool:
    """The vendor's side of `sign` (the test vendor uses it; a vendor may too)."""
    timestamp = headers.get("x-oxp-timestamp", "")
    key = headers.get("idempotency-key", "")
    given = headers.get("x-oxp-signature", "")
    if not timestamp.isdigit() or not key:
        return False
    if abs((now or time.time()) - int(timestamp)) > SIGNATURE_MAX_AGE_SECONDS:
        return False
    return hmac.compare_digest(given, sign(secret, timestamp, method, path, key, body))


class HttpVendor:
    """A real vendor over HTTP: JSON, HMAC-signed, idempotent per redemption id."""

    def __init__(
        self,
        url: str,
        secret: str,
        connect_timeout: float,
        read_timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/vouchers"
        self.path = urlsplit(self.endpoint).path
        self.secret = secret
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        # Connecting, sending the body (httpx's write timeout is the read
        # one), then waiting for the answer: each bounded by its timeout.
        self.call_seconds = connect_timeout + 2 * read_timeout
        self.transport = transport

    def issue(self, redemption: dict[str, Any]) -> str:
        key = str(redemption["id"])
        body = json.dumps(
            {"redemption_id": redemption["id"], "sku": redemption["sku"], "idempotency_key": key},
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-OXP-Timestamp": timestamp,
            "X-OXP-Signature": sign(self.secret, timestamp, "POST", self.path, key, body),
        }
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as http:
                response = http.post(self.endpoint, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Never sent: no connection was made.
            raise VendorUnavailable(f"vendor unreachable: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            # Sent, or partly: a read timeout, a connection lost mid-answer.
            raise VendorUnknown(f"no answer from the vendor: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            # After the request left (an answer whose body cannot be decoded,
            # or any other httpx failure): the voucher may exist. Never
            # VendorUnavailable, whose mark is taken back.
            raise VendorUnknown(
                f"no readable answer from the vendor: {type(exc).__name__}"
            ) from exc
        return self._outcome(response)

    @staticmethod
    def _outcome(response: httpx.Response) -> str:
        status = response.status_code
        try:
            answer = response.json()
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        if status in (200, 201):
            ref = answer.get("vendor_ref")
            if answer.get("status") == "issued" and isinstance(ref, str) and 0 < len(ref) <= 200:
                return ref
            # It said yes in a form we cannot read: the voucher may exist.
            raise VendorUnknown(f"vendor answered {status} without a reference")
        if status in (409, 422) and answer.get("status") == "refused":
            raise VendorRefused(str(answer.get("reason") or "refused by the vendor")[:300])
        if 400 <= status < 500:
            # Taken and turned away (credentials, throttling, a bad request):
            # retried after the backoff, the call's mark kept (it reached the
            # vendor; only the vendor's answer or an admin's resolve ends it).
            raise VendorRetryLater(f"vendor answered {status}")
        # A 5xx, or a 2xx or 3xx that is not the answer we know (202 Accepted:
        # it may issue later): the voucher may exist.
        raise VendorUnknown(f"vendor answered {status}")


def vendor_for(conn: psycopg.Connection, settings: Settings) -> Vendor:
    """The HTTP vendor when VENDOR_URL is set; else the simulated one, which
    refuses a production database (and ENV=production never gets here:
    Settings.require_real_vendor stops the worker at startup)."""
    if settings.vendor_url:
        if not settings.vendor_secret:
            raise VendorNotConfigured("VENDOR_SECRET is required with VENDOR_URL")
        return HttpVendor(
            settings.vendor_url,
            settings.vendor_secret,
            settings.vendor_connect_timeout_seconds,
            settings.vendor_read_timeout_seconds,
        )
    return SimulatedVendor(conn)
