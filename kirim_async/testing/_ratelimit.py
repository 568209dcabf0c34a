"""The fake server's token bucket."""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs


@attrs.define
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` stored; a request takes one.

    Args:
        rate: Tokens added per second.
        burst: Capacity; the bucket starts full.
        clock: A monotonic clock in seconds (injectable for tests).
    """

    rate: float
    burst: int
    clock: Callable[[], float]
    _tokens: float = attrs.field(init=False)
    _stamp: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._stamp = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_take(self) -> bool:
        """Take a token if one is there; return whether it was."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def remaining(self) -> int:
        """Whole tokens left now."""
        self._refill()
        return math.floor(self._tokens)

    @property
    def seconds_until_token(self) -> float:
        """Seconds until the next whole token is there (0 when one is)."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.rate)

    @property
    def seconds_until_full(self) -> float:
        """Seconds until the bucket is full again."""
        self._refill()
        return max(0.0, (self.burst - self._tokens) / self.rate)
