"""The retry policy, carried out by the ``backoff`` library.

A call makes its first attempt directly; only after a retryable failure does it enter
backoff's loop (the decorator costs a few microseconds even when nothing fails). backoff
decides whether to go on (``giveup``, tries) and how long to wait (the wait generator,
fed each error), and reports each retry (``on_backoff``). backoff 2.2's async loop
sleeps with a hard-wired ``asyncio.sleep``, so it is handed a zero wait and the real wait
is slept in ``on_backoff`` through the client's injectable ``sleep``: tests never wait.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, Protocol, TypeVar

import attrs
import backoff

from ._config import CallOptions, RetryPolicy
from ._events import RetryEvent
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    KirimError,
    ProxyError,
    RateLimitError,
    is_ambiguous,
)

__all__ = ["RETRYABLE_STATUSES", "Attempt", "Retrier", "TurnRefused", "is_retryable"]

logger = logging.getLogger("kirim_async")

T = TypeVar("T")
A = TypeVar("A")
T_co = TypeVar("T_co", covariant=True)
Sleep = Callable[[float], Awaitable[None]]


class Attempt(Protocol[A, T_co]):
    """What the retrier runs, in two steps per attempt: send, then read the answer.

    The retrier awaits what :meth:`send` returns itself, so the attempt adds no
    coroutine of its own to the path every answer travels back up (each level costs
    about a microsecond per request in a bulk job; see benchmarks/RESULTS.md).
    """

    def send(self, timeout: float) -> Awaitable[A]:
        """Start one attempt that may take *timeout* seconds; awaiting it gives the answer."""

    def finish(self, answer: A) -> T_co:
        """Read an attempt's answer: the call's result, or raise its error."""

    def describe(self) -> str:
        """Say what the call does, for log lines and errors (only when one is written)."""

    def rate_limited(self, error: RateLimitError) -> float | None:
        """Take a 429: the seconds to the next attempt's turn, or None (retried as any error).

        An attempt that waits out 429s itself (at its pacer) returns the seconds; raising
        ends the call with what it raised.
        """


class TurnRefused(Exception):  # noqa: N818 - a refusal, not an error of the call's
    """Raised by an attempt's ``send`` when it will not be sent (a bulk job stopping).

    When an earlier attempt of the call failed, the call ends with that attempt's error
    instead, which says what the earlier attempt may have done.
    """


RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_retryable(error: KirimError) -> bool:
    """Whether trying again may succeed: 429, 500, 502-504, connection errors, timeouts.

    A proxy's refusal with a 4xx (wrong credentials, a forbidden host) is not, nor is a
    call on a closed client.
    """
    if isinstance(error, APIConnectionError):
        if isinstance(error, ClientClosedError):
            return False
        return not (isinstance(error, ProxyError) and error.is_refusal)
    return isinstance(error, APIStatusError) and error.status in RETRYABLE_STATUSES


def retry_after_wait(retry_after: float) -> float:
    """``Retry-After`` plus a small upward jitter: never earlier than the server asked."""
    return retry_after + random.uniform(0.0, min(1.0, 0.1 * retry_after + 0.05))


@attrs.define
class _Call(Generic[A, T]):
    """The state of one call across its attempts; backoff's handlers are its methods."""

    attempt: Attempt[A, T]
    retrier: Retrier
    max_retries: int
    timeout: float
    deadline_at: float | None
    max_rate_limit_wait: float
    attempts: int = 0
    failed_attempts: int = 0
    ambiguous_attempts: int = 0
    """Attempts whose error leaves the request undecided (the server may have acted)."""
    failed: KirimError | None = None
    """An attempt's error not yet handled: the first attempt's, when the retrier made it."""
    _pending: KirimError | None = None
    last_failed: KirimError | None = None
    """The last failed attempt's error, to end with if a later turn is refused."""
    _next_wait: float = 0.0
    limited_since: float | None = None
    """When this call first met a 429 its attempt waited out."""
    final: bool = False
    """The call's rate-limit budget is spent, or its pacer refused: no retry either."""

    async def run_once(self) -> T:
        """One attempt, its timeout bounded by the call's deadline.

        A 429 that the attempt waits out itself (at its pacer) is attempted again once
        the turn comes, without spending the error-retry budget. If ``failed`` is set,
        that attempt was already made and its error is handled first.
        """
        while True:
            if self.failed is None:
                timeout = self.timeout
                if self.deadline_at is not None:
                    remaining = self.deadline_at - self.retrier.clock()
                    if remaining <= 0:  # this attempt is not made
                        raise APITimeoutError(
                            f"{self.attempt.describe()}: the call's deadline has passed",
                            request_may_have_been_sent=False,
                        )
                    timeout = min(timeout, remaining)
                self.attempts += 1
                try:
                    return self.attempt.finish(await self.attempt.send(timeout))
                except KirimError as error:
                    self.failed = error
                except TurnRefused:
                    earlier = self.last_failed
                    if earlier is None:
                        raise
                    # Refused before this retry was sent: end with the last attempt's
                    # error, which says whether it may have created the label, not with
                    # the refusal, which would report the item as never tried.
                    self.attempts -= 1
                    self.last_failed = None
                    self.final = True  # refused: no attempt after this one either
                    try:
                        raise earlier from None
                    finally:
                        del earlier  # no cycle through this frame (see below)
            met, self.failed = self.failed, None
            try:
                if isinstance(met, RateLimitError) and self._waits_out(met):
                    continue
                self.failed_attempts += 1
                if is_ambiguous(met):
                    self.ambiguous_attempts += 1
                self.last_failed = met
                raise met
            finally:
                # The traceback keeps this frame: a local holding the error would make a
                # cycle that only the garbage collector frees (a bulk job of duplicates
                # piled up megabytes of them between collections).
                del met

    def _waits_out(self, met: RateLimitError) -> bool:
        """Whether the attempt waits out *met* at its pacer; raise if past the budget."""
        named = met.named_wait
        if self.retrier.policy.refuses_wait(named):
            logger.debug(
                "%s: rate limited (request_id=%s): the %gs its %s names is above "
                "max_retry_after (%gs); the call fails",
                self.attempt.describe(),
                met.request_id,
                named,
                "Retry-After" if met.retry_after is not None else "rate-limit headers' reset",
                self.retrier.policy.max_retry_after,
            )
            return False  # given up on as an error: should_give_up says so
        try:
            pause = self.attempt.rate_limited(met)
        except BaseException:
            self.final = True
            raise
        if pause is None:
            return False
        self._within_rate_limit_budget(met, pause)
        self._report_retry(met, pause, met.request_id)
        return True

    def _within_rate_limit_budget(self, met: RateLimitError, pause: float) -> None:
        """Raise *met* if waiting *pause* more would pass this call's 429 budget.

        The budget is ``max_rate_limit_wait`` from the call's first 429, or the call's
        deadline, whichever comes first: a call waits out 429s without spending its
        retries, but not for ever.
        """
        now = self.retrier.clock()
        if self.limited_since is None:
            self.limited_since = now
        resume = now + pause
        budget = self.max_rate_limit_wait
        if (
            budget <= 0  # 0: a 429 is raised at once
            or resume - self.limited_since > budget
            or (self.deadline_at is not None and resume >= self.deadline_at)
        ):
            self.final = True  # not retried as an error either
            raise met

    async def replay_then_run(self) -> T:
        """As backoff's target: the first failure (already met) first, then real attempts."""
        if self._pending is not None:
            error, self._pending = self._pending, None
            try:
                raise error
            finally:
                del error  # no cycle through this frame (see run_once)
        return await self.run_once()

    def should_give_up(self, error: Exception) -> bool:
        """As backoff's ``giveup``: retry only retryable errors, within budget and caps."""
        if not isinstance(error, KirimError) or not is_retryable(error):
            return True
        if self.final:
            return True  # the rate-limit budget is spent, or the pacer refused
        if self.failed_attempts > self.max_retries:
            return True
        named = error.named_wait if isinstance(error, APIStatusError) else None
        return self.retrier.policy.refuses_wait(named)

    def waits(self) -> Generator[float, Any, None]:
        """As backoff's wait generator: it is sent each error and yields backoff's own wait.

        The real wait goes to :meth:`sleep_before_retry`; backoff gets 0 (see module doc).
        A wait that would end past the deadline stops the retries instead.
        """
        exponentials = self.retrier.exponential_waits()
        error = yield 0.0
        while True:
            exponential = next(exponentials)
            named = error.named_wait if isinstance(error, APIStatusError) else None
            wait = exponential if named is None else retry_after_wait(named)
            if self.deadline_at is not None and self.retrier.clock() + wait >= self.deadline_at:
                return
            self._next_wait = wait
            error = yield 0.0

    async def sleep_before_retry(self, details: Any) -> None:
        """As backoff's ``on_backoff``: log, tell the hook, then wait."""
        error: KirimError = details["exception"]
        request_id = error.request_id if isinstance(error, APIStatusError) else None
        logger.debug(
            "%s: attempt %d of %d failed (%s); retrying in %.3fs; request_id=%s",
            self.attempt.describe(),
            self.attempts,
            self.max_retries + 1,
            error,
            self._next_wait,
            request_id,
        )
        self._report_retry(error, self._next_wait, request_id)
        await self.retrier.sleep(self._next_wait)

    def _report_retry(self, error: KirimError, wait: float, request_id: str | None) -> None:
        """Tell the ``on_retry`` hook, if there is one."""
        on_retry = self.retrier.on_retry
        if on_retry is not None:
            on_retry(
                RetryEvent(attempt=self.attempts, wait=wait, error=error, request_id=request_id)
            )

    async def retry_after(self, first: KirimError) -> T:
        self._pending = first
        retrying = backoff.on_exception(
            self.waits,
            KirimError,
            giveup=self.should_give_up,
            on_backoff=self.sleep_before_retry,
            jitter=None,
            logger=None,
        )(self.replay_then_run)
        result: T = await retrying()
        return result


@attrs.define
class Retrier:
    """Runs attempts of a call under a :class:`RetryPolicy`.

    Args:
        policy: The retry rules.
        sleep: Awaited with the seconds to wait before each retry.
        clock: A monotonic clock, for deadlines.
        on_retry: Called once per retry, before the wait.
    """

    policy: RetryPolicy
    sleep: Sleep
    clock: Callable[[], float]
    on_retry: Callable[[RetryEvent], None] | None = None

    def exponential_waits(self) -> Iterator[float]:
        """The policy's waits between retries, in order: exponential, with full jitter.

        The one home of the schedule: a pacer closes for these too when a 429 names no
        ``Retry-After``.
        """
        policy = self.policy
        expo = backoff.expo(base=2, factor=policy.initial_wait, max_value=policy.max_wait)
        next(expo)  # backoff's generators are primed with one next()
        return (backoff.full_jitter(wait) for wait in expo)

    async def run(self, attempt: Attempt[A, T], options: CallOptions) -> T:
        """Run *attempt* until it succeeds or the policy gives up.

        Args:
            attempt: Sends one attempt per ``send`` call (so it can count them), given
                its timeout in seconds, and reads each answer with ``finish``.
            options: The call's timeout per attempt and deadline for the whole call,
                and its overrides of the policy's ``max_retries`` and
                ``max_rate_limit_wait`` (``inf``: a bulk job's budget governs instead).

        Returns:
            The successful attempt's result.

        Raises:
            KirimError: The last error, with ``attempts`` set, and
                ``after_ambiguous_attempt`` when an earlier attempt was ambiguous.
        """
        timeout, deadline = options.timeout, options.deadline
        first_failure = None
        if deadline is None:
            # The common case, kept lean: no call state is built unless an attempt fails.
            try:
                return attempt.finish(await attempt.send(timeout))
            except KirimError as error:
                first_failure = error
        deadline_at = None if deadline is None else self.clock() + deadline
        policy = self.policy
        call = _Call(
            attempt,
            self,
            policy.max_retries if options.max_retries is None else options.max_retries,
            timeout,
            deadline_at,
            policy.max_rate_limit_wait
            if options.max_rate_limit_wait is None
            else options.max_rate_limit_wait,
        )
        if first_failure is not None:
            call.attempts, call.failed = 1, first_failure
            first_failure = None  # held by the call only: no cycle through this frame
        try:
            try:
                result = await call.run_once()
            except KirimError as first:
                if call.should_give_up(first):  # non-retryable, or max_retries spent
                    raise
                return await call.retry_after(first)
            return result
        except KirimError as error:
            error.attempts = call.attempts
            own = 1 if is_ambiguous(error) else 0
            if call.ambiguous_attempts > own:
                error.after_ambiguous_attempt = True
            raise
        finally:
            call.last_failed = None  # its traceback holds the call: no cycle left
