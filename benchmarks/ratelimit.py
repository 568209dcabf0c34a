"""Rate limits as real APIs send them: one bulk job against each style, and a service.

    python benchmarks/ratelimit.py [--quick] [--all]

Each cell runs ``kirim-async``'s bulk job (6,000 creates, concurrency 32) against the
standalone fake server limiting to 300 requests/s (burst 30) with 5 ms latency, in one
style: a limiter (token bucket, fixed or sliding window) x a ``Retry-After`` style x a
hint style; plus one with 5 % of answers a 500 that spends quota, one with 1 % of
answers a 429 of another caller's (no limit at all), and a service: 500 concurrent
``labels.create`` calls on one client against 100/s. It prints, per cell, the time over
the ideal (items / rate; attempts / rate when faults spend quota) and the share of
requests answered 429, against issue 29's targets: <= 1.10x and <= 2 %. A cell still
running at 3x its ideal is stopped and shown as such. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import HERE, TOKEN, Server, environment, pinned

RATE, BURST, LATENCY, CONCURRENCY = 300, 30, 0.005, 32  # windows: 300 per 1 s window


@dataclass
class Cell:
    limiter: str
    retry_after: str
    hints: str
    faults: Sequence[str] = ()
    rate: float | None = RATE

    @property
    def name(self) -> str:
        if self.rate is None:
            return "no limit, " + " ".join(self.faults)
        name = f"{self.limiter}, Retry-After {self.retry_after}, hints {self.hints}"
        return name + (", " + " ".join(self.faults) if self.faults else "")

    def server_args(self) -> list[str]:
        args = ["--latency", str(LATENCY), "--retry-after", self.retry_after]
        if self.rate is not None:
            args += ["--rate", str(self.rate), "--limiter", self.limiter]
            # A bucket holds BURST; a window of 1 s admits the rate's worth in it.
            args += ["--burst", str(BURST)] if self.limiter == "token-bucket" else []
        if self.hints == "none":
            args.append("--no-rate-limit-headers")
        else:
            args += ["--hints", self.hints]
        for fault in self.faults:
            args += ["--fault", fault]
        return args


def cells(everything: bool) -> list[Cell]:
    limiters = ["token-bucket", "fixed-window", "sliding-window"]
    styles = ["seconds", "integer", "http-date", "none"]
    hints = ["none", "x-ratelimit", "github", "ietf"]
    if everything:
        grid = [Cell(lim, ra, h) for lim in limiters for ra in styles for h in hints]
    else:
        grid = [Cell("token-bucket", ra, "none") for ra in styles]
        grid += [Cell("token-bucket", "integer", h) for h in hints[1:]]
        grid += [Cell(lim, "integer", "none") for lim in limiters[1:]]
        grid += [Cell("fixed-window", "integer", "github")]
    grid.append(Cell("token-bucket", "integer", "none", faults=["500=0.05"]))
    return grid


def run(variant: str, server_args: list[str], n: int, timeout: float) -> dict[str, Any]:
    server = Server(server_args)
    try:
        command = [sys.executable, str(HERE / "variants.py"), variant, "--url", server.url]
        command += ["--token", TOKEN, "--n", str(n), "--concurrency", str(CONCURRENCY)]
        started = time.perf_counter()
        try:
            out = subprocess.run(
                pinned(1, command), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"wall": time.perf_counter() - started, "stopped": True}
        if out.returncode:
            raise RuntimeError(f"{variant} failed:\n{out.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,500 items a cell, not 6,000")
    parser.add_argument("--all", action="store_true", help="every limiter x style x hints")
    parser.add_argument("--n", type=int, help="creates a cell (a test runs it tiny)")
    args = parser.parse_args(argv)
    n = args.n or (1_500 if args.quick else 6_000)
    print("\n".join(environment()))
    print(f"\n{n:,} creates a cell, {RATE}/s (burst {BURST}), {LATENCY * 1000:.0f} ms latency")
    print(f"concurrency {CONCURRENCY}; target: <= 1.10x ideal, <= 2 % of requests 429\n")
    print("| server | time / ideal | 429s / requests | target |")
    print("|---|---|---|---|")
    met = 0
    grid = cells(args.all)
    for cell in grid:
        ideal = n / RATE
        result = run("kirim_paced", cell.server_args(), n, timeout=3 * ideal + 10)
        if result.get("stopped"):
            print(f"| {cell.name} | > 3 (stopped) | | missed |", flush=True)
            continue
        attempts = result["requests"] - result["rate_limited"]  # what spent quota
        ideal = max(n, attempts) / RATE
        ratio = result["wall"] / ideal
        share = result["rate_limited"] / max(1, result["requests"])
        ok = ratio <= 1.10 and share <= 0.02 and result["done"] == n
        met += ok
        verdict = "met" if ok else "missed"
        print(f"| {cell.name} | {ratio:.2f} | {share:.1%} | {verdict} |", flush=True)
    print(f"\n{met} of {len(grid)} cells meet the target.")

    # 429s that come whatever the pace: throughput against the same job without them.
    free = run("kirim_paced", ["--latency", str(LATENCY)], n, timeout=600)
    noisy_cell = Cell("", "seconds", "none", faults=["429=0.01"], rate=None)
    noisy = run("kirim_paced", noisy_cell.server_args(), n, timeout=600)
    ratio = free["wall"] / noisy["wall"] if not noisy.get("stopped") else 0.0
    print(
        f"\n1 % of answers a 429 (Retry-After 0.1) whatever the pace, no limit: "
        f"throughput {ratio:.0%} of the same job without them "
        f"({free['wall']:.1f} s vs {noisy['wall']:.1f} s)"
    )

    # A service: many concurrent single calls on one client.
    calls = min(500, n)
    service = run("kirim_service", ["--rate", "100", "--latency", str(LATENCY)], calls, 120)
    print(
        f"\nservice: {calls} concurrent labels.create on one client, 100/s: "
        f"{service.get('rate_limit_errors', '?')} RateLimitError, "
        f"{service.get('wall', 0) / (calls / 100):.2f}x ideal (target: 0, <= 1.10x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
