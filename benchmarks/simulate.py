"""The local pacer in virtual time: limiters x Retry-After styles x rates x clients.

    python benchmarks/simulate.py [--seeds 8] [--rates 50,300,1000] [--clients 1,2,4]

``benchmarks/ratelimit.py`` runs the real thing (sockets, the fake server, one style
at one rate); a run takes minutes. This runs ``RateGate`` alone, on an event loop whose
clock is virtual (a sleep moves it on, a little late, as a real loop wakes), against
the fake server's limiters: a cell takes a fraction of a second, so a change to the
pacer can be judged across rates it was not tuned at, and across several clients that
each pace on their own and share one limit (replicas without Redis). Each client runs
a bulk job's shape: its share of the workers, each sending its items one at a time,
waiting out 429s at the gate; a request costs 0.25 ms of the client's CPU and 5 ms of
latency. A job is 20 s of the limit's work. It prints, per cell, the mean and the
worst time over the ideal across seeds (where the job starts within a window, the
latency's jitter, the backoff's), and the share of requests answered 429. The numbers
are a model's: use them to compare two versions of the pacer, and
``benchmarks/ratelimit.py`` for the figures the targets are about.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import selectors
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kirim_async.errors import RateLimitError
from kirim_async.pacing import RateGate
from kirim_async.testing._ratelimit import (
    FixedWindow,
    Limiter,
    RetryAfterStyle,
    SlidingWindow,
    TokenBucket,
    retry_after_seconds,
)

LIMITERS = ("token-bucket", "fixed-window", "sliding-window")
STYLES: tuple[RetryAfterStyle, ...] = ("integer", "seconds", "none")
BURST, LATENCY, CPU, CONCURRENCY, LATE = 30, 0.005, 0.00025, 32, 0.0003


class _Idle(selectors.DefaultSelector):
    """A selector with nothing to wait for: a timeout moves the virtual clock on."""

    def __init__(self, moved: Callable[[float], None]) -> None:
        super().__init__()
        self._moved = moved

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout:
            self._moved(timeout)
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: sleeping takes no time, only wakes late by up to
    *late* seconds, as a real loop does (a pacer that needs exact wake-ups fails here)."""

    def __init__(self, late: float, rng: random.Random) -> None:
        self.now = 1000.0
        super().__init__(_Idle(self._move))
        self._late, self._rng = late, rng

    def _move(self, seconds: float) -> None:
        self.now += seconds + self._rng.random() * self._late

    def time(self) -> float:
        return self.now


@dataclass
class Cell:
    limiter: str
    style: RetryAfterStyle
    rate: float
    clients: int

    def make_limiter(self, clock: Callable[[], float]) -> Limiter:
        if self.limiter == "token-bucket":
            return TokenBucket(self.rate, BURST, clock)
        window = FixedWindow if self.limiter == "fixed-window" else SlidingWindow
        return window(int(self.rate), 1.0, clock)


def run(cell: Cell, seed: int) -> tuple[float, float]:
    """One job per client against one limiter; (time / ideal, share of 429s)."""
    rng = random.Random(seed)
    loop = VirtualLoop(LATE, random.Random(seed + 1))
    loop.now += rng.random()  # where in a window the job starts
    limiter = cell.make_limiter(loop.time)
    items = int(20 * cell.rate)
    counts = {"requests": 0, "limited": 0}
    cpu = asyncio.Lock()

    def backoff() -> Iterator[float]:  # the client's: exponential, full jitter
        wait = 0.5
        while True:
            yield wait * rng.random()
            wait = min(2 * wait, 8.0)

    async def worker(gate: RateGate, todo: list[int]) -> None:
        while todo:
            todo.pop()
            while True:
                ticket = gate.try_turn() or await gate.turn()
                async with cpu:
                    await asyncio.sleep(CPU)
                await asyncio.sleep(LATENCY / 2 * (0.8 + 0.4 * rng.random()))
                counts["requests"] += 1
                admitted = limiter.try_take()
                wait = limiter.seconds_until_token
                await asyncio.sleep(LATENCY / 2 * (0.8 + 0.4 * rng.random()))
                gate.learn(ticket, 201 if admitted else 429, {})
                if admitted:
                    break
                counts["limited"] += 1
                named = retry_after_seconds(cell.style, wait)
                error = RateLimitError(status=429, message="", retry_after=named)
                await asyncio.sleep(gate.rate_limited(ticket, error))

    async def client() -> None:
        gate = RateGate(
            sleep=asyncio.sleep,
            clock=loop.time,
            wall_clock=lambda: loop.time() + 1.7e9,
            backoff=backoff,
        )
        todo = list(range(items // cell.clients))
        await asyncio.gather(*(worker(gate, todo) for _ in range(CONCURRENCY // cell.clients)))

    async def main() -> float:
        start = loop.time()
        await asyncio.gather(*(client() for _ in range(cell.clients)))
        return loop.time() - start

    try:
        elapsed = loop.run_until_complete(main())
    finally:
        loop.close()
    return elapsed / (items / cell.rate), counts["limited"] / counts["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="runs a cell (default 8)")
    parser.add_argument("--rates", default="50,300,1000", help="requests/s, comma-separated")
    parser.add_argument("--clients", default="1,4", help="clients sharing the limit")
    args = parser.parse_args()
    print(f"{args.seeds} seeds a cell; a job is 20 s of the limit's work, concurrency 32")
    print("in all; each client paces alone. time / ideal: mean (worst); 429s: mean\n")
    print("| limiter | Retry-After | rate | clients | time / ideal | 429s |")
    print("|---|---|---|---|---|---|")
    for rate in (float(each) for each in args.rates.split(",")):
        for clients in (int(each) for each in args.clients.split(",")):
            for limiter in LIMITERS:
                for style in STYLES:
                    cell = Cell(limiter, style, rate, clients)
                    runs = [run(cell, seed) for seed in range(args.seeds)]
                    times = [ratio for ratio, _ in runs]
                    limited = statistics.mean(share for _, share in runs)
                    print(
                        f"| {limiter} | {style} | {rate:g} | {clients} | "
                        f"{statistics.mean(times):.2f} ({max(times):.2f}) | {limited:.1%} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
