"""A clock that moves only when slept on: rate-limit tests that never wait."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Virtual time for a client and a FakeKirimServer together.

    Give the same clock to both, and every wait the client makes (a backoff, a
    ``Retry-After``, the pacer's turn) moves time on at once instead of sleeping, while
    the server's rate limit sees that time pass::

        clock = FakeClock()
        async with (
            FakeKirimServer(rate=5, burst=1, clock=clock) as server,
            KirimClient(server.token, base_url=server.url, clock=clock, sleep=clock.sleep),
        ): ...

    ``clock()`` reads the monotonic time, ``clock.waits`` lists every sleep asked for,
    and ``clock.slept`` sums them: the time the code would have waited for real.

    Each sleep moves time on by its whole length, at once, even when several tasks
    sleep together (real sleeps would overlap). So it suits tests of what a job does
    (every item accounted for, a wait honoured), not of how fast a paced job would run:
    that is measured by ``benchmarks/``, in real time.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = float(start)
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r}, sleeps={len(self.waits)})"

    @property
    def slept(self) -> float:
        """Seconds slept in all, as the code under test would have waited them."""
        return sum(self.waits)

    def advance(self, seconds: float) -> None:
        """Move time on by *seconds* (>= 0)."""
        if not seconds >= 0:
            raise ValueError(f"seconds: must be a number >= 0 (got {seconds!r})")
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """An async sleep that moves time on instead of waiting (negative: no move)."""
        self.waits.append(seconds)
        self.now += max(0.0, seconds)
