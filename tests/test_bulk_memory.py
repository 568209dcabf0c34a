"""The bulk helper's memory does not grow with the length of its input."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator

import pytest

from kirim_async import KirimClient, iter_bulk_create_labels

pytestmark = pytest.mark.slow


async def peak_bytes(url: str, count: int, *, dedupe: bool) -> int:
    """tracemalloc's peak while streaming *count* generated items through the helper."""

    async def names() -> AsyncIterator[str]:
        for i in range(count):
            yield f"label-{i:07d}"

    async with KirimClient("tok", base_url=url) as client:
        seen = 0
        tracemalloc.start()
        try:
            async for _ in iter_bulk_create_labels(client, names(), concurrency=32, dedupe=dedupe):
                seen += 1
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert seen == count
    return peak


async def test_flat_memory_over_200000_items(standalone_server: str) -> None:
    small = await peak_bytes(standalone_server, 20_000, dedupe=False)
    large = await peak_bytes(standalone_server, 200_000, dedupe=False)
    assert large <= small + 1_000_000, (small, large)


async def test_dedupe_costs_a_bounded_amount_per_distinct_name(standalone_server: str) -> None:
    small = await peak_bytes(standalone_server, 10_000, dedupe=True)
    large = await peak_bytes(standalone_server, 30_000, dedupe=True)
    per_name = (large - small) / 20_000
    assert per_name <= 300, per_name
