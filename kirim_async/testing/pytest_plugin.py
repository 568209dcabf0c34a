"""pytest fixtures for FakeKirimServer: ``kirim_server``, ``kirim_client``, ``kirim_clock``.

Enable them in your ``conftest.py``::

    pytest_plugins = ["kirim_async.testing.pytest_plugin"]

``kirim_server`` is a started FakeKirimServer. It runs on its own thread, so it works
with any async test runner (or none). Configure it per test with a marker::

    @pytest.mark.kirim_server(rate=20, burst=5, teams=["team_a", "team_b"])
    async def test_something(kirim_server): ...

``kirim_client`` is a ``KirimClient`` for that server, opened in the test's event loop
and closed after it (it needs pytest-asyncio). Ask for ``kirim_clock`` as well, and the
server and the client share a :class:`~kirim_async.testing.FakeClock`: the client's
waits (backoff, ``Retry-After``, pacing) move time on at once, so a rate-limit test
takes milliseconds, and ``kirim_clock.slept`` says how long it would have waited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

from ._clock import FakeClock
from ._server import FakeKirimServer

if TYPE_CHECKING:
    from kirim_async import KirimClient

__all__ = ["kirim_client", "kirim_clock", "kirim_server"]

_F = TypeVar("_F", bound=Callable[..., Any])


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``kirim_server`` marker, so that ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers", "kirim_server(**options): keyword arguments for FakeKirimServer"
    )


def _shared_clock(request: pytest.FixtureRequest) -> FakeClock | None:
    """The test's ``kirim_clock``, if it asked for one (directly or through a fixture)."""
    if "kirim_clock" not in request.fixturenames:
        return None
    clock: FakeClock = request.getfixturevalue("kirim_clock")
    return clock


@pytest.fixture
def kirim_clock() -> FakeClock:
    """A FakeClock that ``kirim_server`` and ``kirim_client`` use when a test asks for it."""
    return FakeClock()


@pytest.fixture
def kirim_server(request: pytest.FixtureRequest) -> Iterator[FakeKirimServer]:
    """A started FakeKirimServer; ``.url`` and ``.token`` are what a client needs."""
    marker = request.node.get_closest_marker("kirim_server")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    clock = _shared_clock(request)
    if clock is not None:
        options.setdefault("clock", clock)
    with FakeKirimServer(**options).running_in_thread() as server:
        yield server


def _async_fixture() -> Callable[[_F], _F]:
    """pytest-asyncio's fixture decorator; without it, pytest says a plugin is needed."""
    try:
        import pytest_asyncio  # noqa: PLC0415 - optional: any async runner works
    except ImportError:  # pragma: no cover - pytest-asyncio is in the test extra
        return cast("Callable[[_F], _F]", pytest.fixture)
    return cast("Callable[[_F], _F]", pytest_asyncio.fixture)


@_async_fixture()
async def kirim_client(
    request: pytest.FixtureRequest, kirim_server: FakeKirimServer
) -> AsyncIterator[KirimClient]:
    """A KirimClient for ``kirim_server``, opened in the test's loop and closed after it."""
    from kirim_async import KirimClient  # noqa: PLC0415 - testing never imports the client

    clock = _shared_clock(request)
    timing: dict[str, Any] = {} if clock is None else {"clock": clock, "sleep": clock.sleep}
    async with KirimClient(kirim_server.token, base_url=kirim_server.url, **timing) as client:
        yield client
