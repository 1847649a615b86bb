from __future__ import annotations

import contextlib
from typing import Annotated

import typer
import uvicorn

from ox_sidecar import logs
from ox_sidecar.config import get_worker_settings
from ox_sidecar.worker import run_forever


def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Processes")] = 2,
) -> None:
    """Run the HTTP API."""
    uvicorn.run(
        "ox_sidecar.app:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        proxy_headers=False,
    )


def worker() -> None:
    """Run the job worker until interrupted (with no signing key: it needs none)."""
    settings = get_worker_settings()
    logs.configure(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        run_forever(settings.worker_url)
