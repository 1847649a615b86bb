"""Delivery of alerts to people: a Slack-compatible JSON POST to every
ALERT_WEBHOOK_URL. SQL decides what is an alert and when it changes
(plpgsql/alerts.sql); this only carries each change out of the database."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

ICONS = {"opened": "🔴", "escalated": "🚨", "resolved": "✅"}


class DeliveryFailed(Exception):
    """Some webhooks did not take it: the job is retried for those only."""


def target_hash(url: str) -> str:
    """What the database keeps of a webhook: its URL is a secret (Slack's
    carries the token), so only this."""
    return hashlib.sha256(url.encode()).hexdigest()


def where(url: str) -> str:
    """A webhook named for logs and errors without its secret path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}"


def message(delivery: dict[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook shape: one `text`, readable without Slack too."""
    alert, transition = delivery["alert"], delivery["transition"]
    subject = f" {alert['subject']}" if alert["subject"] else ""
    head = (
        f"{ICONS.get(transition, '')} [{alert['severity'].upper()}] {alert['rule']}{subject}"
        f" {transition} (alert {alert['id']}, first seen {alert['first_seen']})"
    )
    if transition == "resolved":
        head += f": {alert['resolution']} by {alert['resolved_by']}"
    details = json.dumps(alert["details"], ensure_ascii=False, indent=1, default=str)
    return {"text": f"{head}\n```{details}```"}


def deliver(
    conn: psycopg.Connection,
    urls: list[str],
    alert_id: int,
    transition: str,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Post one transition to every webhook that does not have it yet, and
    record each success at once: a retry after a failure sends only what
    is left. How many were sent."""
    row = conn.execute("select crypto.alert_delivery(%s, %s)", (alert_id, transition)).fetchone()
    delivery = row[0] if row else None
    if delivery is None:
        return 0
    done = set(delivery["delivered"])
    body = message(delivery)
    sent, failed = 0, []
    with httpx.Client(timeout=timeout, transport=transport) as client:
        for url in urls:
            digest = target_hash(url)
            if digest in done:
                continue
            try:
                client.post(url, json=body).raise_for_status()
            except httpx.HTTPError as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                failed.append(f"{where(url)}: {status or type(exc).__name__}")
                continue
            conn.execute(
                "select crypto.alert_delivered(%s, %s, %s)", (alert_id, transition, digest)
            )
            done.add(digest)
            sent += 1
    if failed:
        raise DeliveryFailed("webhooks refused or unreachable: " + ", ".join(failed))
    return sent
