from __future__ import annotations

import contextlib
from typing import Annotated

import typer
import uvicorn

from ox_sidecar import logs
from ox_sidecar.config import VendorNotConfigured, get_settings
from ox_sidecar.worker import run_forever


def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Processes")] = 2,
) -> None:
    """Run the HTTP API."""
    _require_real_vendor()
    uvicorn.run(
        "ox_sidecar.app:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        proxy_headers=False,
    )


def worker() -> None:
    """Run the job worker until interrupted."""
    settings = get_settings()
    _require_real_vendor()
    logs.configure(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            run_forever(settings.worker_url)
        except VendorNotConfigured as exc:  # the simulated vendor on a production database
            raise SystemExit(f"oxp worker: {exc}") from exc


def _require_real_vendor() -> None:
    """Production starts only with a real reward vendor: one line and exit 1."""
    try:
        get_settings().require_real_vendor()
    except VendorNotConfigured as exc:
        raise SystemExit(f"refusing to start: {exc}") from exc
