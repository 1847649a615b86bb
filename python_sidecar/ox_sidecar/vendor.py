"""Reward vendors: who turns a redemption into a real voucher. The adapter is
the only part that talks to the outside; the database decides everything else."""

from __future__ import annotations

import random
from typing import Any, Protocol

import psycopg


class VendorRefused(Exception):
    """A final no from the vendor: the redemption fails and is refunded.
    Any other exception is transient, and the job is retried."""


class Vendor(Protocol):
    def issue(self, redemption: dict[str, Any]) -> str:
        """Issue one unit; returns the vendor's reference. Must be idempotent per
        redemption id: a worker that dies mid-call retries with the same id."""
        ...


class SimulatedVendor:
    """Issues instantly; refuses a share of requests given by the database
    setting `rewards.vendor_failure_rate`, so demos and tests can make it fail."""

    def __init__(self, conn: psycopg.Connection, rng: random.Random | None = None) -> None:
        row = conn.execute(
            "select (value #>> '{}')::float8 from crypto.settings"
            " where key = 'rewards.vendor_failure_rate'"
        ).fetchone()
        self.failure_rate = float(row[0]) if row else 0.0
        self.rng = rng or random.Random()  # noqa: S311 - a simulation, not a secret

    def issue(self, redemption: dict[str, Any]) -> str:
        if self.rng.random() < self.failure_rate:
            raise VendorRefused("the simulated vendor refused this request")
        return f"sim-{redemption['id']}"


def vendor_for(conn: psycopg.Connection) -> Vendor:
    return SimulatedVendor(conn)
