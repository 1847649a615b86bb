from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import psycopg
import typer
import uvicorn

from ox_sidecar import environment, logs
from ox_sidecar.config import Settings, VendorNotConfigured, get_settings, get_worker_settings
from ox_sidecar.worker import run_forever

from .common import fail


def _refuse_another_environment(settings: Settings, url: str, role: str | None = None) -> None:
    """Before any process starts: the database must be of this ENV. A
    database not reachable yet is checked again when the process reaches it."""
    try:
        with (
            psycopg.connect(url, autocommit=True, connect_timeout=5) as conn,
            conn.transaction(),
        ):
            # `set local`: behind PgBouncer (transaction mode) a session-wide
            # SET ROLE would stay on the server connection for the next client.
            if role:
                conn.execute(f"set local role {role}")
            found = environment.of_database(conn)
    except psycopg.OperationalError:
        return
    reason = environment.refusal(found, settings.env, settings.env_given)
    if reason:
        raise fail("ENVIRONMENT_MISMATCH", reason)


METRICS_PREFIX = "oxp-metrics."


def metrics_dir(base: Path | None = None) -> str:
    """A new directory for this start's counters, named by its pid; the ones
    of `oxp serve` processes that are gone are deleted first. The atexit
    clean-up alone left one behind at every stop: uvicorn, once shut down,
    raises the SIGTERM it caught again, and the process dies of it without
    running atexit (as it does of SIGKILL)."""
    base = base or Path(tempfile.gettempdir())
    for old in base.glob(f"{METRICS_PREFIX}*.*"):
        pid = old.name[len(METRICS_PREFIX) :].split(".")[0]
        try:  # another start may sweep it first
            mine = old.stat().st_uid == os.getuid()
        except OSError:
            continue
        # Our own pid is a process before us: in a container (init: true)
        # every restart of `oxp serve` gets the same small one.
        if pid.isdigit() and mine and (int(pid) == os.getpid() or not _alive(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}.", dir=base)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Processes")] = 2,
) -> None:
    """Run the HTTP API."""
    settings = get_settings()
    _require_real_vendor(settings)
    _refuse_another_environment(settings, settings.api_url, role="anon")
    # Prometheus counters shared by the worker processes, in a fresh
    # directory per start (set before any of them imports the client).
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir()
        atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], True)
    uvicorn.run(
        "ox_sidecar.app:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        proxy_headers=False,
        # uvicorn restarts a worker that does not answer its supervisor in
        # 5 s; on a busy machine a starting worker takes longer than that,
        # so with --workers > 1 none ever came up (each killed mid-import).
        timeout_worker_healthcheck=60,
    )


def worker() -> None:
    """Run the job worker until interrupted (with no signing key: it needs none)."""
    settings = get_worker_settings()
    if settings.worker_kinds is None or "reward.issue" in settings.worker_kinds:
        _require_real_vendor(settings)  # a backup-only worker (WORKER_KINDS) calls no vendor
    logs.configure(settings.log_level)
    _refuse_another_environment(settings, settings.worker_url)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            run_forever(
                settings.worker_url,
                settings.worker_poll_seconds,
                settings.replica_heartbeat_seconds,
                settings.worker_kinds,
            )
        except (VendorNotConfigured, ValueError) as exc:  # the simulated vendor in production,
            raise SystemExit(f"oxp worker: {exc}") from exc  # or an unknown WORKER_KINDS


def _require_real_vendor(settings: Settings) -> None:
    """Production starts only with a real reward vendor: one line and exit 1."""
    try:
        settings.require_real_vendor()
    except VendorNotConfigured as exc:
        raise SystemExit(f"refusing to start: {exc}") from exc
