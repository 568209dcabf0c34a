"""A pytest fixture for FakeKirimServer.

Enable it in your ``conftest.py``::

    pytest_plugins = ["kirim_async.testing.pytest_plugin"]

then ask for ``kirim_server`` in a test. The server runs on its own thread, so it works
with any async test runner (or none). Configure it per test with a marker::

    @pytest.mark.kirim_server(rate=20, burst=5, teams=["team_a", "team_b"])
    async def test_something(kirim_server): ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import FakeKirimServer

__all__ = ["kirim_server"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``kirim_server`` marker, so that ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers", "kirim_server(**options): keyword arguments for FakeKirimServer"
    )


@pytest.fixture
def kirim_server(request: pytest.FixtureRequest) -> Iterator[FakeKirimServer]:
    """A started FakeKirimServer; ``.url`` and ``.token`` are what a client needs."""
    marker = request.node.get_closest_marker("kirim_server")
    options = dict(marker.kwargs) if marker else {}
    with FakeKirimServer(**options).running_in_thread() as server:
        yield server
