"""Test support: a faithful fake Kirim server for your test suite and ours.

    async with FakeKirimServer(rate=50, burst=10) as server:
        async with KirimClient(server.token, base_url=server.url) as client:
            ...

See :class:`FakeKirimServer` for the knobs (rate limits, faults, latency, teams, the
answers' variants), :class:`FakeClock` for rate-limit tests that never wait, and
:mod:`kirim_async.testing.pytest_plugin` for ready pytest fixtures.
"""

from ._clock import FakeClock
from ._faults import Fault
from ._server import (
    FakeKirimServer,
    HintStyle,
    LimiterStyle,
    RetryAfterStyle,
    ServerStats,
    SuccessStatus,
    ValidationStatus,
)

__all__ = [
    "FakeClock",
    "FakeKirimServer",
    "Fault",
    "HintStyle",
    "LimiterStyle",
    "RetryAfterStyle",
    "ServerStats",
    "SuccessStatus",
    "ValidationStatus",
]
