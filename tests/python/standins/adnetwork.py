"""A local ad network for the SSV tests: ECDSA P-256 key pairs, a key server
publishing the public halves in AdMob's JSON shape on a free port of
127.0.0.1, and callbacks signed as AdMob signs them (the query string up to
`&signature=`, DER signature in URL-safe base64, then `key_id`).

    with run_ad_network() as network:
        network.keys_url                  # for AD_SSV_KEYS_URL
        query = network.callback(custom_data=..., user_id=..., transaction_id=..., timestamp=...)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class AdNetwork:
    def __init__(self) -> None:
        self.private: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.down = False
        self.keys_url = ""

    def new_key(self, key_id: str, publish: bool = True) -> None:
        self.private[key_id] = ec.generate_private_key(ec.SECP256R1())
        if publish:
            self.published.append(key_id)

    def key_list(self) -> dict[str, Any]:
        keys = []
        for key_id in self.published:
            public = self.private[key_id].public_key()
            pem = public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode()
            der = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            keys.append(
                {"keyId": int(key_id), "pem": pem, "base64": base64.b64encode(der).decode()}
            )
        return {"keys": keys}

    def signed_content(
        self,
        *,
        custom_data: str,
        user_id: str,
        transaction_id: str,
        timestamp: dt.datetime,
        reward_amount: str = "1",
        ad_unit: str = "1234567890",
    ) -> str:
        """The parameters before the signature, in AdMob's (alphabetical) order."""
        return urlencode(
            [
                ("ad_network", "5450213213286189855"),
                ("ad_unit", ad_unit),
                ("custom_data", custom_data),
                ("reward_amount", reward_amount),
                ("reward_item", "points"),
                ("timestamp", str(int(timestamp.timestamp() * 1000))),
                ("transaction_id", transaction_id),
                ("user_id", user_id),
            ]
        )

    def sign(self, content: str, key_id: str) -> str:
        signature = self.private[key_id].sign(content.encode(), ec.ECDSA(hashes.SHA256()))
        return f"{content}&signature={_b64url(signature)}&key_id={key_id}"

    def callback(self, key_id: str = "1001", **params: Any) -> str:
        return self.sign(self.signed_content(**params), key_id)


@contextmanager
def run_ad_network() -> Iterator[AdNetwork]:
    network = AdNetwork()
    network.new_key("1001")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            network.fetches += 1
            if network.down:
                self.send_response(500)
                self.end_headers()
                return
            body = json.dumps(network.key_list()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    network.keys_url = f"http://127.0.0.1:{server.server_address[1]}/verifier-keys.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield network
    finally:
        server.shutdown()
        server.server_close()
