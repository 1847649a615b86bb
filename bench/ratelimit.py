"""bench/ratelimit: the limiter's cost per request. First api.rate_limit on its
own (sequential calls, one connection), then GET /v1/points/balance (two limited
buckets: the IP and the user's point reads) under wrk with the limiter on and
off: once as ONE player on every connection (the worst case: the gate holds the
player's exact count through the call, so that player's requests queue behind
each other), once as --players players in turn (what a crowd costs). One IP
sends everything either way. Limits are raised so that nothing is refused:
this measures the counting."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from pathlib import Path

import psycopg

from ox_sidecar.config import Settings
from ox_sidecar.migrate import migrate
from ox_sidecar.tokens import TokenService
from throwaway import running_api, throwaway_cluster

ROOT = Path(__file__).resolve().parents[1]


def wrk(url: str, tokens: Path, clients: int, seconds: int) -> tuple[float, float]:
    """Requests/s and p50 (ms), each request with the next token of the file."""
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(clients),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "predict.lua"),  # a line of one token: a GET as that player
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "REQUESTS_FILE": str(tokens), "WRK_THREADS": "2"},
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise SystemExit(f"refused or failed requests during the run:\n{out}")
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert p50 is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return rps, float(p50.group(1)) * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--players", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="off/on runs; medians quoted")
    args = parser.parse_args()
    with throwaway_cluster() as (work, port):
        url = f"postgresql://postgres@127.0.0.1:{port}/oxp"
        migrate(url, "development")
        with psycopg.connect(url, autocommit=True) as conn:
            for key in ("ratelimit.ip_per_minute", "ratelimit.point_reads_per_minute"):
                conn.execute(
                    "update crypto.settings set value = '1000000000' where key = %s", (key,)
                )
            user = conn.execute(
                "select (api.signup('bench@example.com', '$argon2id$bench') ->> 'id')::uuid"
            ).fetchone()[0]  # type: ignore[index]
            conn.execute("set role auth_service")
            started = time.perf_counter()
            for _ in range(args.calls):
                conn.execute(
                    "select api.rate_limit('127.0.0.1', %s, array['point_reads'])", (user,)
                )
            per_call_us = (time.perf_counter() - started) / args.calls * 1e6
            conn.execute("reset role")
            conn.execute(
                "select api.signup('bench' || i || '@example.com', '$argon2id$bench')"
                " from generate_series(2, %s) as i",
                (args.players,),
            )
            crowd = [
                r[0]
                for r in conn.execute(
                    "select id from crypto.users where email like 'bench%@example.com' order by email"
                )
            ]
        tokens = TokenService(Settings(database_url=url, jwt_private_key_file=work / "jwt.pem"))

        def token_file(name: str, ids: list[object]) -> Path:
            path = work / name
            path.write_text(
                "".join(
                    tokens.issue({"id": str(i), "email": "bench@example.com", "role": "user"})[
                        "access_token"
                    ]
                    + "\n"
                    for i in ids
                )
            )
            return path

        one, many = token_file("one.txt", [user]), token_file("many.txt", crowd)
        runs: dict[tuple[str, bool], list[tuple[float, float]]] = {}
        # Off and on in turn, --rounds times: this machine's load drifts by
        # tens of percent within a minute; the median of each is quoted.
        for _ in range(args.rounds):
            for enabled in (False, True):
                flag = "true" if enabled else "false"
                with running_api(url, work, API_POOL_SIZE="8", RATE_LIMITS_ENABLED=flag) as base:
                    for who, path in (("one", one), ("many", many)):
                        runs.setdefault((who, enabled), []).append(
                            wrk(f"{base}/v1/points/balance", path, args.clients, args.seconds)
                        )
        results = {key: sorted(found)[len(found) // 2] for key, found in runs.items()}
    print(
        f"bench/ratelimit on {os.cpu_count()} cores, {args.clients} connections, {args.seconds} s"
        f" each, median of {args.rounds} rounds"
    )
    print(f"  api.rate_limit alone (IP + user bucket, commit):  {per_call_us:7.0f} us per call")
    for who, label in (("one", "1 player"), ("many", f"{len(crowd)} players")):
        (off_rps, off_p50), (on_rps, on_p50) = results[who, False], results[who, True]
        print(
            f"  GET /v1/points/balance, {label}, limiter off:  {off_rps:8.0f} req/s   p50 {off_p50:6.2f} ms"
        )
        print(
            f"  GET /v1/points/balance, {label}, limiter on:   {on_rps:8.0f} req/s   p50 {on_p50:6.2f} ms"
        )
        print(
            f"    cost: {100 * (1 - on_rps / off_rps):.1f} % of throughput,"
            f" {1e6 / on_rps - 1e6 / off_rps:.0f} us of service time per request"
        )


if __name__ == "__main__":
    main()
