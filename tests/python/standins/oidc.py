"""A local OpenID Connect provider standing in for Google: tests/oidc/server.js
(oauth2-mock-server) run by node on a free port of 127.0.0.1.

    with run_oidc_server(tmp_path) as idp:
        idp.issuer                        # "http://127.0.0.1:<port>"
        idp.set_claims(email_verified=False)   # applies to the next ID tokens
        idp.reset_claims()
        location = follow_authorize(authorize_url)   # our callback URL, with code and state
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

OIDC_DIR = Path(__file__).resolve().parents[2] / "oidc"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class OidcServer:
    issuer: str
    overrides_path: Path

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def set_claims(self, **overrides: Any) -> None:
        """Claims of the next ID tokens (and /userinfo) replaced by these; None removes one.
        Replaces any earlier overrides."""
        tmp = self.overrides_path.with_name(self.overrides_path.name + ".tmp")
        tmp.write_text(json.dumps(overrides))
        tmp.replace(self.overrides_path)

    def reset_claims(self) -> None:
        """Back to the defaults: sub google-sub-1, email oidc-user@example.com, verified."""
        self.overrides_path.unlink(missing_ok=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_node_modules() -> None:
    if (OIDC_DIR / "node_modules" / "oauth2-mock-server").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: install nodejs and npm (scripts/bootstrap.sh)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=OIDC_DIR, check=True
    )


@contextmanager
def run_oidc_server(tmp_dir: Path | str) -> Iterator[OidcServer]:
    """Start the mock provider, wait until its discovery document answers, stop it on exit."""
    _ensure_node_modules()
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise RuntimeError("node not found: install nodejs (scripts/bootstrap.sh)")
    tmp = Path(tmp_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = OidcServer(issuer=f"http://127.0.0.1:{port}", overrides_path=tmp / "oidc-claims.json")
    server.reset_claims()
    log_path = tmp / "oidc-server.log"
    env = {"OIDC_PORT": str(port), "OIDC_OVERRIDES": str(server.overrides_path)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [node, str(OIDC_DIR / "server.js")],
            cwd=OIDC_DIR,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, server.discovery_url, log_path)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"OIDC server exited with {proc.returncode}:\n{log_path.read_text()}"
                )
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"OIDC server not ready after {START_TIMEOUT:.0f} s:\n{log_path.read_text()}"
                )
            time.sleep(0.1)


def follow_authorize(url: str) -> str:
    """GET the provider's authorize URL; return the Location of its redirect (not followed):
    the redirect_uri with code and state."""
    response = httpx.get(url, follow_redirects=False, trust_env=False, timeout=10.0)
    if not response.is_redirect:
        raise AssertionError(f"authorize answered {response.status_code}: {response.text}")
    return response.headers["location"]
