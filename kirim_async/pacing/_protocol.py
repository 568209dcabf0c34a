"""The pacer protocol: what every attempt of a call passes through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeAlias

from ..errors import RateLimitError

__all__ = ["Pacer", "Ticket"]

Ticket: TypeAlias = Any
"""What a pacer hands out with a turn and is given back with the answer to that send.

Opaque to callers: a pacer puts in it what it needs to learn from the answer (the
local gate: its congestion epoch, the send's number and time). Never None.
"""


class Pacer(Protocol):
    """Paces the sends of one client or one job against the server's rate limit.

    The request path calls it once per attempt: a turn before the send, then either
    :meth:`learn` with the answer or, for a 429, :meth:`learn` and :meth:`rate_limited`.
    What to do when waits grow too long (a call's budget, a job's, ``max_retry_after``)
    is the caller's; a pacer only says how long the next turn is away.

    A pacer may keep its state elsewhere (:class:`RedisPacer` keeps it in Redis):
    :meth:`turn` is a coroutine for that reason. :meth:`try_turn` lets one whose turn is
    often free skip it.
    """

    @property
    def rate(self) -> float | None:
        """The requests a second turns are paced at now, or None when not pacing."""

    def try_turn(self) -> Ticket | None:
        """A turn now, without waiting, or None when :meth:`turn` must be awaited."""

    async def turn(self) -> Ticket:
        """Wait for a turn to send one request; return its ticket."""

    def learn(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        """Learn from the answer to the request sent on *ticket*'s turn."""

    def rate_limited(self, ticket: Ticket, error: RateLimitError) -> float:
        """Take a 429 (already learned) for *ticket*'s send; return seconds to the next turn.

        A pacer that will give no more turns (a bulk job's, once it stops) raises instead.
        """
