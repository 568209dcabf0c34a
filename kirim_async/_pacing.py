"""The rate-limit gate that the bulk helper's requests share.

Every request waits its turn at the gate before it is sent. A 429 closes the gate until
its ``Retry-After`` deadline, so a rate limit pauses the whole job once instead of
waking N sleeping workers together. Between 429s the gate paces sends ahead of time:

- When answers carry ``X-RateLimit-Limit/Remaining/Reset``, the gate mirrors the
  server's token bucket: its rate is ``(Limit - Remaining) / Reset`` (tokens used over
  the time to refill them), its capacity ``Limit``. The headers are hints: a 429 always
  wins, and empties the mirror.
- Without them, it paces additively-increase/multiplicatively-decrease: the first 429
  caps the send rate at 70 % of the rate measured so far, each further 429 (at most one
  per closing of the gate) cuts it by 30 % again, and the rate grows back linearly
  (10 % of the cut rate per second) to probe for more.

A ``max_rate`` caps all of this: the gate then paces from the first send, evenly, at
that rate at most, so that a job leaves the rest of the organisation's quota alone.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from collections.abc import Awaitable, Callable, Generator, Mapping

import attrs
import backoff

from ._config import RetryPolicy
from .errors import RateLimitError

__all__ = ["RateGate"]

logger = logging.getLogger("kirim_async")

_DECREASE = 0.7
_PROBE_PER_SECOND = 0.1
_MIN_RATE = 0.5
_EPOCH_THRESHOLD = 1e8  # an X-RateLimit-Reset this large is a Unix time, not a delta
_HEADER_RATE_SAMPLES = 5


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


@attrs.define
class RateGate:
    """Paces and pauses the sends of one bulk job.

    Args:
        max_wait: Seconds the job may be held back by 429s: the gate's closings summed
            over the whole job, or one unbroken run of 429s (no other answer between),
            whichever reaches it first. Past that, :meth:`rate_limited` raises and
            every later turn fails at once.
        sleep: Awaited to wait (injectable for tests).
        clock: Monotonic seconds.
        wall_clock: Unix time, for an ``X-RateLimit-Reset`` given as a timestamp.
        policy: The client's retry policy, whose exponential waits a 429 without
            ``Retry-After`` closes the gate for.
        max_rate: Requests a second at most, evenly spaced, whatever the pacer learns;
            None for no cap of the job's own.
    """

    max_wait: float
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    max_rate: float | None = None

    sends: int = attrs.field(default=0, init=False)
    """Requests let through."""
    rate_limited_count: int = attrs.field(default=0, init=False)
    """429 answers met."""
    throttled_seconds: float = attrs.field(default=0.0, init=False)
    """Seconds the gate has been closed by 429s."""
    _run_since: float | None = attrs.field(init=False, default=None)
    """When the current run of 429s began (None when the last answer was not a 429)."""

    _lock: asyncio.Lock = attrs.field(init=False, factory=asyncio.Lock)
    _open_at: float = attrs.field(init=False, default=0.0)
    _halt: BaseException | None = attrs.field(init=False, default=None)
    # The pacer: a token bucket; rate None means "not pacing".
    _rate: float | None = attrs.field(init=False, default=None)
    _capacity: float = attrs.field(init=False, default=1.0)
    _tokens: float = attrs.field(init=False, default=0.0)
    _stamp: float = attrs.field(init=False, default=0.0)
    _from_headers: bool = attrs.field(init=False, default=False)
    _header_rates: list[float] = attrs.field(init=False, factory=list)
    # Additive increase (no headers): rate = cut_rate * (1 + probe * seconds since cut);
    # no cut yet while _cut_at is None.
    _cut_rate: float = attrs.field(init=False, default=0.0)
    _cut_at: float | None = attrs.field(init=False, default=None)
    # Send-rate measurement, for the first cut.
    _first_send_at: float | None = attrs.field(init=False, default=None)
    _answered: int = attrs.field(init=False, default=0)
    _waits: Generator[float, None, None] | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if self.max_rate is not None:  # paced from the start: one token, no burst
            self._rate = self.max_rate

    @property
    def is_halted(self) -> bool:
        """Whether the gate refuses every turn (budget spent, or the job stopping)."""
        return self._halt is not None

    @property
    def answered(self) -> int:
        """Answers the server has given so far, of any status."""
        return self._answered

    @property
    def is_limiting(self) -> bool:
        """Whether the server has shown its limit: a 429 met, or a pace from its hints."""
        return self.rate_limited_count > 0 or self._rate is not None

    @property
    def closed_for(self) -> float:
        """Seconds until a 429's pause ends (0 when the gate is open)."""
        return max(0.0, self._open_at - self.clock()) if self._open_at else 0.0

    @property
    def rate(self) -> float | None:
        """The current paced send rate (requests a second), or None when not pacing."""
        return self._current_rate(self.clock())

    def pass_now(self) -> bool:
        """Take a turn without waiting if the gate is open, unpaced and unqueued.

        Returns False when the caller must await :meth:`wait_turn` instead: the common
        case of an unthrottled job then costs no coroutine per request.
        """
        if self._halt is not None or self._rate is not None or self._lock.locked():
            return False
        if self._open_at and self.clock() < self._open_at:  # no clock read until a 429
            return False
        self._count_send()
        return True

    async def wait_turn(self) -> None:
        """Wait until a request may be sent, and count it as sent.

        Raises:
            RateLimitError: The job's rate-limit wait budget is spent.
            BaseException: Whatever :meth:`halt` was given.
        """
        if self._halt is not None:
            raise self._halted()
        if self.pass_now():
            return
        # One waiter at a time computes its slot and sleeps; the rest queue in order.
        async with self._lock:
            while True:
                if self._halt is not None:
                    raise self._halted()
                now = self.clock()
                delay = max(self._open_at - now, self._token_delay(now))
                if delay <= 0:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    self._count_send()
                    return
                await self.sleep(delay)

    def _count_send(self) -> None:
        self.sends += 1
        if self._first_send_at is None:  # read the clock once, not per send
            self._first_send_at = self.clock()

    def _current_rate(self, now: float) -> float | None:
        rate = self._rate
        if rate is None:
            return None
        if not self._from_headers and self._cut_at is not None:
            rate = self._cut_rate * (1.0 + _PROBE_PER_SECOND * (now - self._cut_at))
        return rate if self.max_rate is None else min(rate, self.max_rate)

    def _token_delay(self, now: float) -> float:
        rate = self._current_rate(now)
        if rate is None:
            return 0.0
        if now > self._stamp:  # the stamp is in the future while the gate is closed
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
        # A whole token, give or take float rounding (else a sub-nanosecond wait loops).
        return 0.0 if self._tokens >= 1.0 - 1e-9 else (1.0 - self._tokens) / rate

    def halt(self, error: BaseException) -> None:
        """Make every waiting and later turn raise *error*: the job is stopping."""
        if self._halt is None:
            self._halt = error

    def refuses_with(self, error: BaseException) -> bool:
        """Whether *error* is a turn this gate refused because the job is stopping."""
        return self._halt is not None and type(error) is type(self._halt)

    def _halted(self) -> BaseException:
        # Each refused turn raises its own copy: outcomes must not share one mutable
        # exception (the retrier sets attempts on it), and raising one instance again and
        # again would grow its traceback without end.
        assert self._halt is not None  # noqa: S101 - only called when halted
        return copy.copy(self._halt)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer: count it, and read any ``X-RateLimit-*`` hints."""
        self._answered += 1
        if status == 429:
            self.rate_limited_count += 1
        else:  # any other answer ends a run of 429s
            self._run_since = None
            self._waits = None
        if "X-RateLimit-Limit" not in headers:  # the common case without hints
            return
        limit = _header_float(headers, "X-RateLimit-Limit")
        if limit is None:
            return
        remaining = _header_float(headers, "X-RateLimit-Remaining")
        reset = _header_float(headers, "X-RateLimit-Reset")
        if remaining is None or reset is None or limit < 1:
            return
        if reset > _EPOCH_THRESHOLD:
            reset = max(0.0, reset - self.wall_clock())
        used = limit - remaining
        # Tokens used over the time to refill them; the headers are rounded, so only
        # answers with several tokens used give a usable estimate.
        if used < max(2.0, 0.1 * limit) or reset <= 0:
            return
        self._header_rates.append(used / (reset + 0.0005))
        del self._header_rates[:-_HEADER_RATE_SAMPLES]
        rate = sorted(self._header_rates)[len(self._header_rates) // 2]
        now = self.clock()
        # Under a max_rate, sends stay evenly spaced: no burst of the server's size.
        capacity = max(1.0, limit) if self.max_rate is None else 1.0
        if not self._from_headers:
            in_flight = max(0, self.sends - self._answered)
            self._tokens = min(capacity, max(0.0, remaining - in_flight))
            self._stamp = now
        else:
            self._token_delay(now)  # settle the bucket at the old rate first
        self._from_headers = True
        self._rate = rate
        self._capacity = capacity

    def rate_limited(self, error: RateLimitError) -> None:
        """Close the gate for a 429 and slow the pacer.

        Raises:
            RateLimitError: *error*, when the job's wait budget cannot cover the wait
                (or was spent before).
            BaseException: Whatever :meth:`halt` was given, once the job is stopping.
        """
        if self._halt is not None:
            raise error if isinstance(self._halt, RateLimitError) else self._halt
        now = self.clock()
        if self._run_since is None:
            self._run_since = now
        wait = error.retry_after if error.retry_after is not None else self._next_backoff()
        new_open_at = now + wait
        added = max(0.0, new_open_at - max(self._open_at, now))
        # The run counts too: a server that keeps answering 429 with "Retry-After: 0"
        # closes the gate for nothing, while the pacer's floor keeps the job going.
        if (
            self.throttled_seconds + added > self.max_wait
            or new_open_at - self._run_since > self.max_wait
        ):
            logger.debug(
                "rate limited (request_id=%s): waiting %.3fs more would pass the job's "
                "%gs budget (max_rate_limit_wait); the items not done fail",
                error.request_id,
                wait,
                self.max_wait,
            )
            self.halt(error)
            raise error
        already_closed = now < self._open_at
        if added:
            self.throttled_seconds += added
            self._open_at = new_open_at
        self._tokens = 0.0
        self._stamp = new_open_at
        if not self._from_headers and not already_closed:
            self._cut(now)
        logger.debug(
            "rate limited (request_id=%s): the job pauses for %.3fs, then sends at most "
            "%.1f requests/s; %.1fs of its %gs budget spent",
            error.request_id,
            self._open_at - now,
            self._current_rate(now) or 0.0,
            self.throttled_seconds,
            self.max_wait,
        )

    def _cut(self, now: float) -> None:
        current = self._current_rate(now)
        if current is None:
            elapsed = now - (self._first_send_at or now)
            current = self.sends / elapsed if elapsed > 0 else float(self.sends or 1)
        self._cut_rate = max(_MIN_RATE, current * _DECREASE)
        self._cut_at = now
        self._rate = self._cut_rate
        # Little burst, the server's being unknown; none under a max_rate.
        self._capacity = 2.0 if self.max_rate is None else 1.0

    def _next_backoff(self) -> float:
        # A 429 without Retry-After: the client's exponential waits, with full jitter.
        if self._waits is None:
            policy = self.policy
            self._waits = backoff.expo(
                base=2, factor=policy.initial_wait, max_value=policy.max_wait
            )
            next(self._waits)  # backoff's generators are primed with one next()
        return backoff.full_jitter(next(self._waits))
