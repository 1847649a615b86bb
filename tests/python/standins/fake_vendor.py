"""A small real HTTP reward vendor for tests (http.server in a thread): it
checks each request's HMAC signature, issues one voucher per idempotency key
(the same reference again for a key it has seen), and can be told, per key,
to misbehave on the next calls: answer late ("hang"), drop the connection
after issuing ("drop"), refuse ("refuse"), refuse even a key it issued a
voucher for, as some vendors answer a repeated request ("duplicate"),
fail ("500"), throttle ("429"), redirect ("302"), or take the request and
make the voucher without saying so in the answer ("202")."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ox_sidecar.vendor import signature_valid

SECRET = "test-vendor-secret-0123456789-abcdef"


@dataclass
class FakeVendor:
    secret: str = SECRET
    hang_seconds: float = 1.0
    url: str = ""
    # idempotency key -> the voucher issued for it (the vendor's truth)
    issued: dict[str, str] = field(default_factory=dict)
    # idempotency key -> what to do on its next calls, first first
    script: dict[str, list[str]] = field(default_factory=dict)
    calls: int = 0
    bad_signatures: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_behaviour(self, key: str) -> str:
        with self.lock:
            todo = self.script.get(key)
            return todo.pop(0) if todo else "ok"

    def issue(self, key: str) -> str:
        with self.lock:
            if key not in self.issued:
                self.issued[key] = f"VND-{secrets.token_hex(12)}"
            return self.issued[key]


def _handler(vendor: FakeVendor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with vendor.lock:
                vendor.calls += 1
            if self.path != "/api/vouchers":
                self.answer(404, {"error": "no such endpoint"})
                return
            if not signature_valid(vendor.secret, headers, "POST", self.path, body):
                with vendor.lock:
                    vendor.bad_signatures += 1
                self.answer(401, {"error": "bad signature"})
                return
            key = headers["idempotency-key"]
            payload = json.loads(body)
            with vendor.lock:
                vendor.bodies.append(payload)
            if str(payload.get("redemption_id")) != key:
                self.answer(400, {"error": "the key is the redemption id"})
                return
            behaviour = vendor.next_behaviour(key)
            if behaviour == "500":
                self.answer(503, {"error": "try later"})
                return
            if behaviour == "429":
                self.answer(429, {"error": "slow down"})
                return
            if behaviour == "302":
                self.send_response(302)
                self.send_header("Location", "/api/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if behaviour == "202":  # taken: it makes the voucher, and says so another way
                vendor.issue(key)
                self.answer(202, {"status": "accepted"})
                return
            if behaviour == "duplicate" and key in vendor.issued:
                self.answer(409, {"status": "refused", "reason": "duplicate request"})
                return
            if behaviour == "refuse" and key not in vendor.issued:
                self.answer(409, {"status": "refused", "reason": f"no {payload.get('sku')} left"})
                return
            ref = vendor.issue(key)
            if behaviour == "hang":
                time.sleep(vendor.hang_seconds)  # issued; the answer comes too late
            elif behaviour == "drop":
                self.close_connection = True  # issued; no answer at all
                return
            with contextlib.suppress(OSError):  # the client may have given up waiting
                self.answer(200, {"status": "issued", "vendor_ref": ref})

    return Handler


@contextmanager
def running_vendor(vendor: FakeVendor | None = None) -> Iterator[FakeVendor]:
    vendor = vendor or FakeVendor()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(vendor))
    server.daemon_threads = True
    vendor.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield vendor
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
