"""One benchmark client run, in its own process: ``python benchmarks/variants.py NAME ...``.

Prints one JSON line: wall seconds, client CPU seconds, peak RSS, requests, 429s met,
and the collections Python's cyclic garbage collector ran, by generation.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import backoff

try:
    import orjson

    dumps: Callable[[Any], bytes] = orjson.dumps
    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # the benchmark still runs, with the stdlib's JSON for everyone
    dumps = lambda obj: json.dumps(obj).encode()  # noqa: E731
    loads = json.loads

from kirim_async import (
    Hooks,
    KirimClient,
    ResponseEvent,
    bulk_create_labels,
    iter_bulk_create_labels,
)


class RateLimitedError(Exception):
    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:07d}" for i in range(count)]


async def kirim_sequential(args: argparse.Namespace) -> dict[str, Any]:
    async with KirimClient(args.token, base_url=args.url) as client:
        for name in names(args.prefix, args.n):
            await client.labels.create(name)
    return {}


async def raw_sequential(args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for name in names(args.prefix, args.n):
            body = dumps({"name": name, "color": "gray"})
            async with session.post(f"{args.url}/labels", data=body, headers=headers) as resp:
                payload = loads(await resp.read())
                assert resp.status == 201, payload
    return {}


async def kirim_bulk(args: argparse.Namespace) -> dict[str, Any]:
    async with KirimClient(args.token, base_url=args.url) as client:
        result = await bulk_create_labels(
            client, names(args.prefix, args.n), concurrency=args.concurrency
        )
    assert len(result.created) == args.n, result.counts
    return {"rate_limited": result.rate_limited}


async def kirim_paced(args: argparse.Namespace) -> dict[str, Any]:
    """A bulk job against a rate limit of some style (benchmarks/ratelimit.py)."""
    async with KirimClient(args.token, base_url=args.url, max_retries=8) as client:
        result = await bulk_create_labels(
            client, names(args.prefix, args.n), concurrency=args.concurrency
        )
    return {
        "rate_limited": result.rate_limited,
        "requests": result.requests_sent,
        "done": len(result.created) + len(result.existing),
    }


async def kirim_shared(args: argparse.Namespace) -> dict[str, Any]:
    """One of several processes sharing a token (benchmarks/shared.py), Redis or not.

    Starts after ``--delay`` seconds; reports its Unix start and end, so that the
    coordinator measures the whole job from the first start to the last end.
    """
    await asyncio.sleep(args.delay)
    started = time.time()
    async with KirimClient(
        args.token, base_url=args.url, max_retries=8, redis_url=args.redis
    ) as client:
        result = await bulk_create_labels(
            client, names(args.prefix, args.n), concurrency=args.concurrency
        )
        shared = getattr(client.pacer, "is_shared", False)
    return {
        "rate_limited": result.rate_limited,
        "requests": result.requests_sent,
        "done": len(result.created) + len(result.existing),
        "began": started,
        "ended": time.time(),
        "shared_at_end": shared,
    }


BIN = 0.25  # seconds: kirim_timeline's resolution


async def kirim_timeline(args: argparse.Namespace) -> dict[str, Any]:
    """kirim_paced, with when each answer came: admitted answers per bin, the last 429.

    For the recovery cell of benchmarks/ratelimit.py: how fast throughput comes back
    once 429s that the pace did not cause stop.
    """
    started = time.perf_counter()
    bins: list[int] = []
    last_429: list[float] = []

    def on_response(event: ResponseEvent) -> None:
        at = time.perf_counter() - started
        if event.status == 429:
            last_429[:] = [at]
            return
        slot = int(at / BIN)
        if slot >= len(bins):
            bins.extend([0] * (slot + 1 - len(bins)))
        bins[slot] += 1

    hooks = Hooks(on_response=on_response)
    async with KirimClient(args.token, base_url=args.url, max_retries=8, hooks=hooks) as client:
        result = await bulk_create_labels(
            client, names(args.prefix, args.n), concurrency=args.concurrency
        )
    return {
        "rate_limited": result.rate_limited,
        "done": len(result.created) + len(result.existing),
        "bin": BIN,
        "bins": bins,
        "last_429": last_429[0] if last_429 else None,
    }


async def kirim_service(args: argparse.Namespace) -> dict[str, Any]:
    """Concurrent single calls on one client, as a service under load makes them."""
    async with KirimClient(args.token, base_url=args.url) as client:
        outcomes = await asyncio.gather(
            *(client.labels.create(name) for name in names(args.prefix, args.n)),
            return_exceptions=True,
        )
    errors = [type(o).__name__ for o in outcomes if isinstance(o, BaseException)]
    return {
        "done": len(outcomes) - len(errors),
        "rate_limit_errors": errors.count("RateLimitError"),
        "other_errors": len(errors) - errors.count("RateLimitError"),
    }


async def kirim_iter(args: argparse.Namespace) -> dict[str, Any]:
    """The bulk job through iter_bulk_create_labels, keeping no outcome (a diagnostic)."""
    created = 0
    async with KirimClient(args.token, base_url=args.url) as client:
        async for outcome in iter_bulk_create_labels(
            client, names(args.prefix, args.n), concurrency=args.concurrency
        ):
            created += outcome.label is not None
    assert created == args.n
    return {}


async def raw_gather(args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    semaphore = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def create(name: str) -> None:
            async with semaphore:
                body = dumps({"name": name, "color": "gray"})
                async with session.post(f"{args.url}/labels", data=body, headers=headers) as resp:
                    payload = loads(await resp.read())
                    assert resp.status == 201, payload

        await asyncio.gather(*(create(n) for n in names(args.prefix, args.n)))
    return {}


async def httpx_gather(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    semaphore = asyncio.Semaphore(args.concurrency)
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def create(name: str) -> None:
            async with semaphore:
                body = dumps({"name": name, "color": "gray"})
                resp = await client.post(f"{args.url}/labels", content=body, headers=headers)
                payload = loads(resp.content)
                assert resp.status_code == 201, payload

        await asyncio.gather(*(create(n) for n in names(args.prefix, args.n)))
    return {}


def _per_request_backoff(
    wait_gen: Any, jitter: Any, **wait_kwargs: Any
) -> Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]:
    """Raw aiohttp under a semaphore, each request retried on 429 by its own decorator."""

    async def run(args: argparse.Namespace) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
        semaphore = asyncio.Semaphore(args.concurrency)
        met = 0
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            @backoff.on_exception(
                wait_gen, RateLimitedError, jitter=jitter, logger=None, **wait_kwargs
            )
            async def post(body: bytes) -> None:
                nonlocal met
                async with session.post(f"{args.url}/labels", data=body, headers=headers) as resp:
                    payload = loads(await resp.read())
                    if resp.status == 429:
                        met += 1
                        value = resp.headers.get("Retry-After")
                        raise RateLimitedError(float(value) if value else None)
                    assert resp.status == 201, payload

            async def create(name: str) -> None:
                async with semaphore:
                    await post(dumps({"name": name, "color": "gray"}))

            await asyncio.gather(*(create(n) for n in names(args.prefix, args.n)))
        return {"rate_limited": met}

    return run


backoff_retry_after = _per_request_backoff(
    backoff.runtime, None, value=lambda e: e.retry_after or 0.5
)
backoff_full_jitter = _per_request_backoff(backoff.expo, backoff.full_jitter, factor=0.05)


async def kirim_iter_memory(args: argparse.Namespace) -> dict[str, Any]:
    async def generated() -> AsyncIterator[str]:
        for i in range(args.n):
            yield f"{args.prefix}-{i:07d}"

    count = 0
    async with KirimClient(args.token, base_url=args.url) as client:
        async for _ in iter_bulk_create_labels(
            client, generated(), concurrency=args.concurrency, dedupe=False
        ):
            count += 1
    assert count == args.n
    return {}


VARIANTS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]] = {
    "kirim_sequential": kirim_sequential,
    "raw_sequential": raw_sequential,
    "kirim_bulk": kirim_bulk,
    "kirim_iter": kirim_iter,
    "raw_gather": raw_gather,
    "httpx_gather": httpx_gather,
    "backoff_retry_after": backoff_retry_after,
    "backoff_full_jitter": backoff_full_jitter,
    "kirim_iter_memory": kirim_iter_memory,
    "kirim_paced": kirim_paced,
    "kirim_service": kirim_service,
    "kirim_timeline": kirim_timeline,
    "kirim_shared": kirim_shared,
}


def _same_allocator_state() -> None:
    """Start every variant with glibc's mmap threshold raised, as the raw gather raises it.

    asyncio reads each socket into a fresh 256 KiB buffer. Under glibc's default, blocks
    that large are mmap'd and unmapped again per read (three system calls and a page
    fault), until the process frees a large block once, which raises the threshold
    for good. The raw gather does so by accident, growing its 20,000-task containers up
    front; the other variants would pay per read. One 1 MiB block, freed, puts every
    variant in the same state, whatever it allocates.
    """
    block = bytearray(1 << 20)
    del block


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--redis", help="kirim_shared: share the pacer through this Redis")
    parser.add_argument("--delay", type=float, default=0.0, help="kirim_shared: start late")
    args = parser.parse_args()
    _same_allocator_state()
    collections_before = [generation["collections"] for generation in gc.get_stats()]
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    extra = asyncio.run(VARIANTS[args.variant](args))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    collections = [
        generation["collections"] - earlier
        for generation, earlier in zip(gc.get_stats(), collections_before, strict=True)
    ]
    result = {
        "wall": wall,
        "cpu": cpu,
        "rss_kb": after.ru_maxrss,
        "n": args.n,
        "gc": collections,
        **extra,
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
