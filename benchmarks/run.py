"""Benchmarks: kirim-async against raw aiohttp (and httpx) in the same run.

    python benchmarks/run.py [--quick] [--repeat N] [--only SCENARIO] [--shared]

The fake server and each client run in their own processes (pinned to different cores
when ``taskset`` exists), variants are interleaved (A B A B ...), and the table shows
medians and ratios, so the figures hold on a noisy machine. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"
TASKSET = shutil.which("taskset") if (os.cpu_count() or 1) >= 2 else None
# Variants that need an optional distribution (the `bench` extra); left out without it.
REQUIRES = {"httpx_gather": "httpx"}


@dataclass
class Scenario:
    key: str
    title: str
    variants: list[str]
    n: int
    concurrency: int
    server_args: list[str] = field(default_factory=list)
    memory_n: int | None = None  # scenario 4: a second, larger input for the same variant
    repeat_factor: int = 1  # runs per variant are multiplied by this (cheap, noisy scenarios)
    # Slow variants with no target: run --repeat times, without the repeat_factor.
    unrepeated: frozenset[str] = frozenset()


def pinned(core: int, command: list[str]) -> list[str]:
    return [TASKSET, "-c", str(core), *command] if TASKSET else command


class Server:
    """``python -m kirim_async.testing`` in its own process, on core 0."""

    def __init__(self, extra: Sequence[str]) -> None:
        command = [
            sys.executable,
            "-m",
            "kirim_async.testing",
            "--port",
            "0",
            "--token",
            TOKEN,
            *extra,
        ]
        self.proc = subprocess.Popen(pinned(0, command), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        match = re.search(r"(http://\S+)", self.proc.stdout.readline())
        if not match:
            self.stop()
            raise RuntimeError("the fake server did not start")
        self.url = match.group(1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_variant(
    variant: str,
    server_args: Sequence[str],
    n: int,
    concurrency: int,
    *,
    prefix: str = "bench",
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run *variant* against a fresh fake server started with *server_args*.

    Returns:
        What the variant printed, or ``{"wall": ..., "stopped": True}`` when it ran
        past *timeout* seconds.
    """
    server = Server(list(server_args))
    try:
        command = [sys.executable, str(HERE / "variants.py"), variant, "--url", server.url]
        command += ["--token", TOKEN, "--n", str(n), "--concurrency", str(concurrency)]
        command += ["--prefix", prefix]
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


def run_client(variant: str, scenario: Scenario, n: int, prefix: str) -> dict[str, Any]:
    return run_variant(variant, scenario.server_args, n, scenario.concurrency, prefix=prefix)


def scenarios(quick: bool) -> list[Scenario]:
    scale = 5 if quick else 1
    return [
        Scenario(
            "overhead",
            "1. Per-request overhead (concurrency 1)",
            ["kirim_sequential", "raw_sequential"],
            5_000 // scale,
            1,
            # CPU at concurrency 1 includes the loop's wake-ups around each round trip:
            # the noisiest ratio, and the cheapest runs, so it gets more of them.
            repeat_factor=3,
        ),
        Scenario(
            "throughput",
            "2. Concurrent throughput (concurrency 64)",
            ["kirim_bulk", "raw_gather", "httpx_gather", "kirim_iter"],
            2_000 if quick else 20_000,
            64,
            # One round's ratio moved between 0.61 and 1.05 on the reference machine:
            # three times the runs. httpx (about 48 s a run, no target) keeps --repeat.
            repeat_factor=3,
            unrepeated=frozenset({"httpx_gather"}),
        ),
        Scenario(
            "ratelimit",
            "3. Rate limit (500/s, burst 50, 5 ms latency, concurrency 64)",
            ["kirim_bulk", "backoff_retry_after", "backoff_full_jitter"],
            3_000 // scale,
            64,
            ["--rate", "500", "--burst", "50", "--latency", "0.005"],
        ),
        Scenario(
            "memory",
            "4. Memory (iter_bulk_create_labels over an async generator)",
            ["kirim_iter_memory"],
            20_000 // scale,
            32,
            memory_n=200_000 // scale,
        ),
    ]


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r.get(key, 0)) for r in runs)


def measure(scenario: Scenario, repeat: int) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    plan = [(v, scenario.n) for v in scenario.variants if available(v)]
    if scenario.memory_n:
        plan.append((f"{scenario.variants[0]}@{scenario.memory_n}", scenario.memory_n))
    for round_ in range(repeat * scenario.repeat_factor):
        for label, n in plan:  # interleaved: A B A B ...
            variant = label.split("@")[0]
            runs = results.setdefault(label, [])
            if variant in scenario.unrepeated and len(runs) >= repeat:
                continue
            runs.append(run_client(variant, scenario, n, f"r{round_}"))
            print(f"  {label} run {round_ + 1}: {runs[-1]['wall']:.2f}s", file=sys.stderr)
    return results


def row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(scenario: Scenario, results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        f"### {scenario.title}",
        "",
        row(
            [
                "variant",
                "requests",
                "runs",
                "wall s",
                "req/s",
                "client CPU µs/req",
                "peak RSS MB",
                "429s",
                "GC runs (gen 0/1/2)",
            ]
        ),
        row(["---"] * 9),
    ]
    for label, runs in results.items():
        n = runs[0]["n"]
        wall = median(runs, "wall")
        lines.append(
            row(
                [
                    label,
                    n,
                    len(runs),
                    f"{wall:.2f}",
                    f"{n / wall:,.0f}",
                    f"{median(runs, 'cpu') / n * 1e6:.0f}",
                    f"{median(runs, 'rss_kb') / 1024:.1f}",
                    f"{median(runs, 'rate_limited'):.0f}",
                    "/".join(
                        f"{statistics.median(r['gc'][g] for r in runs):.0f}" for g in range(3)
                    ),
                ]
            )
        )
    lines += ["", *verdicts(scenario, results), ""]
    return lines


def check(name: str, value: float, target: str, ok: bool) -> str:
    return f"- {name}: **{value:.3f}** (target {target}) {'✅ met' if ok else '❌ missed'}"


def by_round(ratios: list[float], meets: Callable[[float], bool]) -> str:
    """How the ratio moved from round to round, and in how many rounds it met its target.

    Each round pairs a kirim run with the raw run next to it, so this shows how far one
    run's verdict can be trusted on the machine it ran on.
    """
    met = sum(map(meets, ratios))
    if len(ratios) < 2:
        return f"- round by round: one round, {'met' if met else 'missed'}"
    low, _, high = statistics.quantiles(ratios, n=4)
    return (
        f"- round by round (each kirim run against the raw run of its round): median "
        f"{statistics.median(ratios):.3f}, middle half {low:.3f} to {high:.3f}, all "
        f"{min(ratios):.3f} to {max(ratios):.3f}; met in {met} of {len(ratios)} rounds"
    )


def verdicts(scenario: Scenario, results: dict[str, list[dict[str, Any]]]) -> list[str]:
    def per_request_cpu(label: str) -> float:
        return median(results[label], "cpu") / float(results[label][0]["n"])

    def throughput(label: str) -> float:
        return float(results[label][0]["n"]) / median(results[label], "wall")

    def paired(over: str, under: str, key: str) -> list[float]:
        """*key* of *over*'s runs divided by *under*'s, round by round."""
        return [a[key] / b[key] for a, b in zip(results[over], results[under], strict=True)]

    if scenario.key == "overhead":
        ratio = per_request_cpu("kirim_sequential") / per_request_cpu("raw_sequential")
        return [
            check("client CPU per request, kirim / raw aiohttp", ratio, "≤ 1.10", ratio <= 1.10),
            by_round(paired("kirim_sequential", "raw_sequential", "cpu"), lambda r: r <= 1.10),
        ]
    if scenario.key == "throughput":
        ratio = throughput("kirim_bulk") / throughput("raw_gather")
        # Throughput is the inverse of wall time: raw's time over kirim's.
        rounds = paired("raw_gather", "kirim_bulk", "wall")
        httpx = "not run: httpx is not installed (the `bench` extra)"
        if "httpx_gather" in results:
            times = throughput("raw_gather") / throughput("httpx_gather")
            httpx = f"**{times:.1f}x** (reported, no target)"
        return [
            check(
                "throughput, bulk_create_labels / raw aiohttp gather",
                ratio,
                "≥ 0.93",
                ratio >= 0.93,
            ),
            by_round(rounds, lambda r: r >= 0.93),
            f"- raw aiohttp / httpx throughput: {httpx}",
            f"- throughput, iter_bulk_create_labels keeping no outcome / raw aiohttp gather: "
            f"**{throughput('kirim_iter') / throughput('raw_gather'):.3f}** (a diagnostic:"
            f" the same job without the {scenario.n:,} outcomes a BulkResult holds)",
        ]
    if scenario.key == "ratelimit":
        ideal = (scenario.n - 50) / 500
        lines = []
        for label, runs in results.items():
            wall = median(runs, "wall")
            limited = median(runs, "rate_limited")
            lines.append(
                f"- {label}: {wall / ideal:.3f}x the ideal {ideal:.2f}s, "
                f"{limited / scenario.n:.1%} of N answered 429 "
                f"({limited / scenario.n:.2f} per label)"
            )
        bulk = median(results["kirim_bulk"], "wall") / ideal
        share = median(results["kirim_bulk"], "rate_limited") / scenario.n
        return [
            check("bulk_create_labels time / ideal", bulk, "≤ 1.10", bulk <= 1.10),
            check("429 answers / N", share, "< 0.05", share < 0.05),
            *lines,
        ]
    big = f"{scenario.variants[0]}@{scenario.memory_n}"
    growth = median(results[big], "rss_kb") - median(results[scenario.variants[0]], "rss_kb")
    return [
        check(
            f"peak RSS growth from {scenario.n:,} to {scenario.memory_n:,} items, MB",
            growth / 1024,
            "≤ 10",
            growth / 1024 <= 10,
        )
    ]


def environment() -> list[str]:
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("kirim-async", "aiohttp", "attrs", "cattrs", "backoff", "orjson", "httpx")
        if _installed(name)
    )
    return [
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {versions}",
        f"- pinned with taskset: {'yes' if TASKSET else 'no'}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]


def available(variant: str) -> bool:
    """Whether what *variant* needs beyond the library is installed."""
    required = REQUIRES.get(variant)
    return required is None or _installed(required)


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    parser.add_argument("--repeat", type=int, help="runs per variant (default 3, quick 1)")
    parser.add_argument("--only", choices=[s.key for s in scenarios(False)], action="append")
    parser.add_argument(
        "--shared",
        action="store_true",
        help="also 4 processes sharing one token, Redis pacer or not (shared.py; redis-server)",
    )
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    chosen: Callable[[Scenario], bool] = lambda s: not args.only or s.key in args.only  # noqa: E731
    lines = [
        "## Benchmark results" + (" (quick)" if args.quick else ""),
        "",
        *environment(),
        "- each table shows the median of its runs (the runs column)",
        "",
    ]
    for scenario in filter(chosen, scenarios(args.quick)):
        print(f"{scenario.title} ...", file=sys.stderr)
        lines += table(scenario, measure(scenario, repeat))
    if args.shared:
        import shared  # here: it needs the redis extra and redis-server

        print("Many processes, one token ...", file=sys.stderr)
        lines += ["", "### Many processes, one token (shared.py)", ""]
        lines += shared.report(1_500 if args.quick else 6_000, repeat)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
