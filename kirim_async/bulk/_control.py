"""Job control: a bulk job's turn at its pacer, its wait budget, its stop and figures."""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

import attrs

from .._retry import TurnRefused
from ..errors import RateLimitError
from ..pacing import Pacer, Ticket

__all__ = ["JobGate", "JobStoppedError"]

logger = logging.getLogger("kirim_async")

P = TypeVar("P", bound=Pacer)


class JobStoppedError(TurnRefused):
    """The job stopped before this item was sent."""


@attrs.define
class JobGate(Generic[P]):
    """A bulk job's pacer: its own learning pacer, with the job's control around it.

    It passes every turn, answer and 429 to *pacer*, and adds what only the job knows:
    the budget for waiting out 429s, the stop (every later turn refused), and the
    figures the job reports.

    Args:
        pacer: The pacer that paces the job's sends: its client's, which every call of
            the client shares.
        max_wait: Seconds the job may be held back by 429s: the closings summed over
            the whole job, or one unbroken run of 429s (no other answer between),
            whichever reaches it first. Past that, :meth:`rate_limited` raises the 429
            and every later turn raises it too.
        clock: Monotonic seconds.
        sleep: Awaited to wait, for ``max_rate``.
        max_rate: The job's own cap, requests a second, evenly spaced (retries
            included), whatever its pacer would allow; None for none.
    """

    pacer: P
    max_wait: float
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]
    max_rate: float | None = None
    sends: int = 0
    """Requests let through."""
    answered: int = 0
    """Answers the server has given, of any status."""
    rate_limited_count: int = 0
    """429 answers met."""
    throttled_seconds: float = 0.0
    """Seconds the job has been held back by 429s."""
    _halt: BaseException | None = None
    _open_at: float = 0.0
    _run_since: float | None = None
    """When the current run of 429s began (None when the last answer was not a 429)."""
    _next_slot: float = 0.0
    """Under a ``max_rate``: the earliest time the next turn may start."""

    @property
    def is_limiting(self) -> bool:
        """Whether sends are limited: a 429 met, or a pace (the pacer's, the job's cap)."""
        return self.rate_limited_count > 0 or self.rate is not None

    @property
    def is_halted(self) -> bool:
        """Whether every turn is refused (budget spent, or the job stopping)."""
        return self._halt is not None

    def halt(self, error: BaseException) -> None:
        """Make every later turn raise *error*: the job is stopping."""
        if self._halt is None:
            self._halt = error

    def _halted(self) -> BaseException:
        # Each refused turn raises its own copy: outcomes must not share one mutable
        # exception (the retrier sets attempts on it), and raising one instance again and
        # again would grow its traceback without end.
        assert self._halt is not None  # noqa: S101 - only called when halted
        return copy.copy(self._halt)

    def try_turn(self) -> Ticket | None:
        """A turn now, if the job goes on and its pacer has one free."""
        if self._halt is not None or self.max_rate is not None:
            return None
        ticket = self.pacer.try_turn()
        if ticket is not None:
            self.sends += 1
        return ticket

    async def turn(self) -> Ticket:
        """Wait for the pacer's turn; raise the stop's error once the job is stopping."""
        if self._halt is not None:
            raise self._halted()
        if self.max_rate is not None:
            await self._space()
        ticket = self.pacer.try_turn()
        if ticket is None:
            ticket = await self.pacer.turn()
            if self._halt is not None:  # stopped while this turn waited
                raise self._halted()
        self.sends += 1
        return ticket

    async def _space(self) -> None:
        """Wait for this turn's slot under the job's ``max_rate``: evenly, no burst."""
        assert self.max_rate is not None  # noqa: S101 - only called under a max_rate
        now = self.clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.max_rate  # taken before the wait: in order
        if slot > now:
            await self.sleep(slot - now)
            if self._halt is not None:
                raise self._halted()

    @property
    def rate(self) -> float | None:
        """The pace of the job's sends: its pacer's, under the job's ``max_rate``."""
        rate = self.pacer.rate
        if self.max_rate is None:
            return rate
        return self.max_rate if rate is None else min(rate, self.max_rate)

    def learn(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        """Count the answer, and pass it to the pacer."""
        self.answered += 1
        if status == 429:
            self.rate_limited_count += 1
        else:  # any other answer ends a run of 429s
            self._run_since = None
        self.pacer.learn(ticket, status, headers)

    def rate_limited(self, ticket: Ticket, error: RateLimitError) -> float:
        """Pass a 429 to the pacer, and raise it when the job's budget cannot cover it."""
        if self._halt is not None:
            raise error if isinstance(self._halt, RateLimitError) else self._halted()
        now = self.clock()
        if self._run_since is None:
            self._run_since = now
        # Checked before the pacer hears of it when the 429 names its wait: a job that
        # stops here does not cut its pace for nothing.
        if error.named_wait is not None:
            self._within_budget(now, error.named_wait, error)
        pause = self.pacer.rate_limited(ticket, error)
        added = self._within_budget(now, pause, error)
        if added:
            self.throttled_seconds += added
            self._open_at = now + pause
        logger.debug(
            "rate limited (request_id=%s): the job pauses for %.3fs; %.1fs of its %gs budget spent",
            error.request_id,
            pause,
            self.throttled_seconds,
            self.max_wait,
        )
        return pause

    def _within_budget(self, now: float, pause: float, error: RateLimitError) -> float:
        """The seconds *pause* adds to the job's closings; stop the job if over budget."""
        assert self._run_since is not None  # noqa: S101 - set by rate_limited first
        resume = now + pause
        added = max(0.0, resume - max(self._open_at, now))
        # The run counts too: a server that keeps answering 429 with "Retry-After: 0"
        # closes nothing, while the pacer's floor keeps the job going.
        if (
            self.throttled_seconds + added > self.max_wait
            or resume - self._run_since > self.max_wait
        ):
            logger.debug(
                "rate limited (request_id=%s): waiting %.3fs more would pass the job's "
                "%gs budget (max_rate_limit_wait); the items not done fail",
                error.request_id,
                pause,
                self.max_wait,
            )
            self.halt(error)
            raise error
        return added
