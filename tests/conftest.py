"""Shared fixtures: fake servers and a raw aiohttp session to talk to them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from kirim_async.testing import FakeKirimServer

pytest_plugins = ["kirim_async.testing.pytest_plugin"]


@pytest.fixture
async def server() -> AsyncIterator[FakeKirimServer]:
    """A FakeKirimServer on this test's event loop, every knob off."""
    async with FakeKirimServer(token="tok_test") as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session, for speaking to servers without the client."""
    async with aiohttp.ClientSession() as session:
        yield session


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A clock for the code's own time hooks, so that no test really waits."""
    return FakeClock()
