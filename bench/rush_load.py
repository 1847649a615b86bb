"""The load of bench/rush, run by bench/rush.py in a process of its own
(locust patches the standard library for gevent on import; the cluster and
API setup stays out of that). Reads a JSON spec, runs one phase with
locust's library API, writes per-route figures as JSON.

Players: each takes one token (logged in beforehand) and its own client
address (X-Forwarded-For, the API trusts the bench host as its proxy),
waits a random moment within the rush window, then reads the session and
the universe and places its 3 predictions, once. Flood (optional): one
address at full speed, and a pool of addresses used in turn, both on the
anonymous GET /v1/session/today."""

from __future__ import annotations

import gevent.monkey

gevent.monkey.patch_all()

import itertools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from locust import FastHttpUser, constant, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402

SPEC: dict[str, Any] = json.loads(open(sys.argv[1]).read())  # noqa: SIM115
PLAYERS = iter(SPEC["players"])
STATUSES: dict[str, Counter[int]] = defaultdict(Counter)
DONE: list[bool] = []  # one entry per player who placed all 3
FLOOD_IPS = itertools.cycle(SPEC.get("rotate_ips") or ["192.0.2.1"])


@events.request.add_listener
def _count(name: str, response: Any = None, **_: Any) -> None:
    STATUSES[name][getattr(response, "status_code", 0) or 0] += 1


class Player(FastHttpUser):
    fixed_count = len(SPEC["players"])
    wait_time = constant(1)

    @task
    def rush(self) -> None:
        token, ip = next(PLAYERS)
        gevent.sleep(random.uniform(0, SPEC["rush_seconds"]))
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": ip}
        self.client.get("/v1/session/today", headers=headers, name="GET /v1/session/today")
        with self.client.get(
            "/v1/universe/today",
            headers=headers,
            name="GET /v1/universe/today",
            catch_response=True,
        ) as r:
            symbols = [s["symbol"] for s in r.json()["symbols"]] if r.status_code == 200 else []
        placed = 0
        for symbol in random.sample(symbols or SPEC["symbols"], 3):
            with self.client.post(
                f"/v1/predictions/{symbol}",
                json={"choice": random.choice(["UP", "DOWN"])},
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                name="POST /v1/predictions/{symbol}",
                catch_response=True,
            ) as r:
                placed += r.status_code == 201
        DONE.append(placed == 3)
        while True:  # once: this player is done for the session
            gevent.sleep(3600)


class OneIpFlood(FastHttpUser):
    fixed_count = SPEC.get("flood_users", 0)
    wait_time = constant(0)

    @task
    def flood(self) -> None:
        with self.client.get(
            "/v1/session/today",
            headers={"X-Forwarded-For": SPEC["flood_ip"]},
            name="flood, one IP: GET /v1/session/today",
            catch_response=True,
        ) as r:
            if r.status_code == 429:
                r.success()  # refused is what this flood is for


class RotatingFlood(FastHttpUser):
    fixed_count = SPEC.get("rotate_users", 0)
    wait_time = constant(0)

    @task
    def flood(self) -> None:
        with self.client.get(
            "/v1/session/today",
            headers={"X-Forwarded-For": next(FLOOD_IPS)},
            name=f"flood, {len(SPEC.get('rotate_ips') or [])} IPs: GET /v1/session/today",
            catch_response=True,
        ) as r:
            if r.status_code == 429:
                r.success()


def main() -> None:
    classes = [Player]
    if SPEC.get("flood_users"):
        classes.append(OneIpFlood)
    if SPEC.get("rotate_users"):
        classes.append(RotatingFlood)
    total = sum(c.fixed_count for c in classes)
    env = Environment(user_classes=classes, host=SPEC["base"], events=events)
    runner = env.create_local_runner()
    started = time.monotonic()
    runner.start(total, spawn_rate=100)  # locust warns above 100/s
    deadline = started + SPEC["rush_seconds"] + SPEC.get("grace_seconds", 60)
    while len(DONE) < len(SPEC["players"]) and time.monotonic() < deadline:
        gevent.sleep(0.2)
    elapsed = time.monotonic() - started
    runner.quit()
    routes = {}
    for (name, _method), entry in env.stats.entries.items():
        routes[name] = {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "rps": entry.num_requests / elapsed,
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p99_ms": entry.get_response_time_percentile(0.99),
            "max_ms": entry.max_response_time,
            "statuses": {str(k): v for k, v in sorted(STATUSES[name].items())},
        }
    errors = [
        {"route": e.name, "error": str(e.error)[:200], "count": e.occurrences}
        for e in env.stats.errors.values()
    ]
    out = {
        "elapsed_s": elapsed,
        "players": len(SPEC["players"]),
        "players_done": len(DONE),
        "players_all_3": sum(DONE),
        "routes": routes,
        "errors": errors,
    }
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


main()
