"""The fake server's rate limiters: the styles real APIs use.

- :class:`TokenBucket` (GCRA behaves the same): ``rate`` tokens a second, at most
  ``burst`` stored, one per request. A 429's true wait is one token's time at most.
- :class:`FixedWindow`: ``limit`` requests per window of ``window`` seconds; the count
  resets at once when a window ends (GitHub's hourly quota, many gateways).
- :class:`SlidingWindow`: at most ``limit`` requests in any ``window`` seconds (a
  sliding log, as Redis-backed limiters keep).

Each answers the same questions, so the server can send any style of headers from any
of them: may this request pass, how many are left, when may the next one pass, and
when is the quota whole again. :func:`retry_after_seconds` says what a 429's
``Retry-After`` names for that wait in each style the server plays.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Literal

import attrs

__all__ = [
    "FixedWindow",
    "Limiter",
    "RetryAfterStyle",
    "SlidingWindow",
    "TokenBucket",
    "retry_after_seconds",
]

RetryAfterStyle = Literal["seconds", "integer", "http-date", "none"]


def retry_after_seconds(style: RetryAfterStyle, wait: float) -> float | None:
    """The seconds a 429's ``Retry-After`` names for a true *wait*, in *style*.

    ``seconds``: fractional, rounded up to the millisecond; ``integer`` and
    ``http-date``: whole seconds, rounded up (at least 1), as most servers send them;
    ``none``: no header.
    """
    if style == "seconds":
        return math.ceil(wait * 1000) / 1000
    if style == "none":
        return None
    return float(max(1, math.ceil(wait)))


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

    @property
    def limit(self) -> int:
        """The most requests that may pass at once."""
        return self.burst

    @property
    def window(self) -> float:
        """Seconds to refill an empty bucket: the policy's window."""
        return self.burst / self.rate

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


@attrs.define
class FixedWindow:
    """``limit`` requests per ``window`` seconds, the count reset when a window ends.

    Windows are aligned on the clock (``floor(now / window)``), as servers align them on
    the wall clock's minutes and hours.
    """

    limit: int
    window: float
    clock: Callable[[], float]
    _index: int = attrs.field(init=False, default=-1)
    _used: int = attrs.field(init=False, default=0)

    def _roll(self) -> float:
        now = self.clock()
        index = math.floor(now / self.window)
        if index != self._index:
            self._index, self._used = index, 0
        return now

    def try_take(self) -> bool:
        """Count a request in this window if it has room; return whether it had."""
        self._roll()
        if self._used < self.limit:
            self._used += 1
            return True
        return False

    @property
    def remaining(self) -> int:
        """Requests left in this window."""
        self._roll()
        return self.limit - self._used

    @property
    def seconds_until_full(self) -> float:
        """Seconds until this window ends (and the count resets)."""
        now = self._roll()
        return max(0.0, (self._index + 1) * self.window - now)

    @property
    def seconds_until_token(self) -> float:
        """Seconds until a request may pass: 0 with room left, else the window's end."""
        return 0.0 if self.remaining > 0 else self.seconds_until_full


@attrs.define
class SlidingWindow:
    """At most ``limit`` requests in any ``window`` seconds (a log of the recent ones)."""

    limit: int
    window: float
    clock: Callable[[], float]
    _log: deque[float] = attrs.field(init=False, factory=deque)

    def _expire(self) -> float:
        now = self.clock()
        log = self._log
        while log and log[0] <= now - self.window:
            log.popleft()
        return now

    def try_take(self) -> bool:
        """Log a request if fewer than ``limit`` passed in the last window."""
        now = self._expire()
        if len(self._log) < self.limit:
            self._log.append(now)
            return True
        return False

    @property
    def remaining(self) -> int:
        """Requests that may pass now."""
        self._expire()
        return self.limit - len(self._log)

    @property
    def seconds_until_token(self) -> float:
        """Seconds until the oldest logged request leaves the window (0 with room)."""
        now = self._expire()
        if len(self._log) < self.limit:
            return 0.0
        return max(0.0, self._log[0] + self.window - now)

    @property
    def seconds_until_full(self) -> float:
        """Seconds until every logged request has left the window."""
        now = self._expire()
        return max(0.0, self._log[-1] + self.window - now) if self._log else 0.0


Limiter = TokenBucket | FixedWindow | SlidingWindow
"""Any of the server's limiters."""
