"""Many processes, one token: the pacer shared through Redis against each process's own.

    python benchmarks/shared.py [--quick] [--n N] [--repeat R]

Four processes share one token against one standalone fake server: a token bucket of
300 requests/s (burst 30) answering 429s with an integer ``Retry-After``, 5 ms latency,
with its default ``X-RateLimit-*`` hint headers or none. The creates (6,000 in all) are
split evenly; each process runs a bulk job at concurrency 8. Cases: every process on
the Redis pacer (issue 30's target: <= 1.10x the ideal 6,000 / 300 = 20 s, <= 2 % of
requests answered 429), with hints and without; every process on its own local pacer,
for comparison; Redis with one process started 2 s late; Redis stopped a quarter into
the job and started again a second later. Then the Redis pacer, without hints, against
the styles issue 29 names: a fractional ``Retry-After``, none, a fixed and a sliding
window of 300 a second, and one process alone at concurrency 32. Time is from the
first process's start to the last one's end; with ``--repeat``, the median of the runs
(and their range). Needs ``redis-server`` on the PATH and the redis extra.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the tests' redis-server
from run import HERE, TOKEN, Server, environment

from tests.redis_server import RedisServer

RATE, BURST, LATENCY, PROCESSES, CONCURRENCY = 300, 30, 0.005, 4, 8


@dataclass
class Case:
    name: str
    shared: bool
    hints: bool = True  # the fake server's default X-RateLimit-* headers, or none
    late: float = 0.0  # seconds the last process starts late
    restart_at: float | None = None  # share of the ideal time when Redis stops (1 s down)
    has_target: bool = False
    limiter: str = "token-bucket"  # a window's limit is the rate's worth a second
    retry_after: str = "integer"
    processes: int = PROCESSES
    concurrency: int = CONCURRENCY

    def server_args(self) -> list[str]:
        args = ["--rate", str(RATE), "--limiter", self.limiter, "--latency", str(LATENCY)]
        args += ["--retry-after", self.retry_after]
        args += ["--burst", str(BURST)] if self.limiter == "token-bucket" else []
        return args + ([] if self.hints else ["--no-rate-limit-headers"])


CASES = [
    Case("Redis pacer, X-RateLimit hints", shared=True, has_target=True),
    Case("each process's local pacer, X-RateLimit hints", shared=False),
    Case("Redis pacer, no hints", shared=True, hints=False, has_target=True),
    Case("each process's local pacer, no hints", shared=False, hints=False),
    Case("Redis pacer, hints, one process 2 s late", shared=True, late=2.0),
    Case("Redis pacer, hints, Redis restarted mid-job", shared=True, restart_at=0.25),
    Case("Redis pacer, fractional Retry-After", shared=True, hints=False, retry_after="seconds"),
    Case("Redis pacer, no Retry-After", shared=True, hints=False, retry_after="none"),
    Case("Redis pacer, fixed window", shared=True, hints=False, limiter="fixed-window"),
    Case("Redis pacer, sliding window", shared=True, hints=False, limiter="sliding-window"),
    Case(
        "Redis pacer, one process at concurrency 32",
        shared=True,
        hints=False,
        processes=1,
        concurrency=PROCESSES * CONCURRENCY,
    ),
]


def run_case(case: Case, n: int, redis: RedisServer, timeout: float) -> dict[str, Any]:
    """Run *case*'s processes against a fresh fake server; their results summed."""
    server = Server(case.server_args())
    env = {k: v for k, v in os.environ.items() if k != "KIRIM_REDIS_URL"}
    try:
        redis.stop()  # a fresh Redis a case: nothing learned is carried over
        redis.start()
        procs = []
        for index in range(case.processes):
            command = [sys.executable, str(HERE / "variants.py"), "kirim_shared"]
            command += ["--url", server.url, "--token", TOKEN, "--n", str(n // case.processes)]
            command += ["--concurrency", str(case.concurrency), "--prefix", f"p{index}"]
            if case.shared:
                command += ["--redis", redis.url]
            if index == case.processes - 1 and case.late:
                command += ["--delay", str(case.late)]
            procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env))
        restarter = None
        if case.restart_at is not None:
            restarter = threading.Timer(case.restart_at * n / RATE, _restart, (redis,))
            restarter.start()
        results = []
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for other in procs:
                    other.kill()
                    other.communicate()
                return {"stopped": True}
            if proc.returncode:
                raise RuntimeError(f"a process of {case.name!r} failed")
            results.append(json.loads(out.strip().splitlines()[-1]))
        if restarter is not None:
            restarter.join()
        return {
            "wall": max(r["ended"] for r in results) - min(r["began"] for r in results),
            "requests": sum(r["requests"] for r in results),
            "rate_limited": sum(r["rate_limited"] for r in results),
            "done": sum(r["done"] for r in results),
            "shared_at_end": all(r["shared_at_end"] for r in results),
        }
    finally:
        server.stop()


def _restart(redis: RedisServer) -> None:
    redis.stop()
    time.sleep(1.0)  # down for a second, as a restart takes
    redis.start()


def report(n: int, repeat: int = 1) -> list[str]:
    """The table of every case, with the target's verdict (on the median of *repeat* runs)."""
    ideal = n / RATE
    lines = [
        f"{PROCESSES} processes x {n // PROCESSES:,} creates (concurrency {CONCURRENCY} each), "
        f"one token; token bucket {RATE}/s (burst {BURST}), integer Retry-After, "
        f"{LATENCY * 1000:.0f} ms latency, unless the case says otherwise; ideal {ideal:g} s",
        "",
        "| pacer | time / ideal | 429s / requests | target (<= 1.10x, <= 2 %) |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as directory:
        redis = RedisServer(Path(directory))
        redis.start()
        try:
            for case in CASES:
                runs = [run_case(case, n, redis, timeout=3 * ideal + 10) for _ in range(repeat)]
                # The median run by time: one congestion event more or less is 5 %.
                runs.sort(key=lambda result: float(result.get("wall", math.inf)))
                result = runs[len(runs) // 2]
                if result.get("stopped"):
                    lines.append(f"| {case.name} | > 3 (stopped) | | |")
                    continue
                ratio = result["wall"] / ideal
                share = result["rate_limited"] / max(1, result["requests"])
                verdict = "reported"
                if case.has_target:
                    ok = ratio <= 1.10 and share <= 0.02 and result["done"] == n
                    verdict = "met" if ok else "missed"
                elif result["done"] != n:
                    verdict = f"{n - result['done']} not done"
                shown = f"{ratio:.3f}"
                if repeat > 1:
                    spread = [float(r.get("wall", math.inf)) / ideal for r in runs]
                    last = "> 3, stopped" if math.isinf(spread[-1]) else f"{spread[-1]:.3f}"
                    shown += f" ({spread[0]:.3f}-{last})"
                lines.append(f"| {case.name} | {shown} | {share:.1%} | {verdict} |")
                print(lines[-1], file=sys.stderr, flush=True)
        finally:
            redis.stop()
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,500 creates in all, not 6,000")
    parser.add_argument("--n", type=int, help="creates in all (a test runs it tiny)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs a case; the median is shown (default 1)"
    )
    args = parser.parse_args(argv)
    n = args.n or (1_500 if args.quick else 6_000)
    print("\n".join([*environment(), "", *report(n, args.repeat)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
