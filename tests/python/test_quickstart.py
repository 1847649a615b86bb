"""docs/quickstart.md works: its `sh` blocks, run in order by bash against a
real API process (uvicorn) and `oxp` on a throwaway database."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from support import running_api

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("calendar")


def test_every_step_of_the_quickstart_runs(env: None, db: psycopg.Connection) -> None:
    text = (ROOT / "docs" / "quickstart.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) >= 6
    script = "set -euo pipefail\n" + "\n".join(blocks)
    with running_api() as base:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env={**os.environ, "API": base},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    # What the page says happens, happened.
    assert db.execute(
        "select phase::text from crypto.session_control where trading_day = '2027-01-13'"
    ).fetchone() == ("SETTLED",)
    assert db.execute(
        "select a.balance, u.role::text from crypto.users as u"
        " join crypto.ledger_accounts as a on a.user_id = u.id where u.email = 'me@example.com'"
    ).fetchone() == (100, "admin")
    assert db.execute(
        "select outcome::text from crypto.settlements"
        " where trading_day = '2027-01-13' and symbol = 'NVDA'"
    ).fetchone() == ("VOID",)
    assert re.search(r'"balance"\s*:\s*100\b', done.stdout)
    assert re.search(r'"database"\s*:\s*\{\s*"ok"\s*:\s*true', done.stdout)  # /admin/health
    assert db.execute("select crypto.setting('clock.offset_seconds')").fetchone() == (0,)
