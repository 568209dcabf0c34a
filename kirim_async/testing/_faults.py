"""Faults the fake server can inject, by probability or by script."""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterable, Mapping

import attrs


class Fault(str, enum.Enum):
    """One misbehaviour of the server for one request."""

    SERVER_ERROR = "500"
    """Answer 500 with a JSON error body; nothing is stored."""
    BAD_GATEWAY = "502"
    """Answer 502 with an HTML body, as a proxy would; nothing is stored."""
    UNAVAILABLE = "503"
    """Answer 503 with an empty body; nothing is stored."""
    LATENCY = "latency"
    """Wait ``fault_latency`` seconds, then handle the request normally."""
    STORE_THEN_DROP = "store-then-drop"
    """Handle the request (a label may be stored), then drop the connection unanswered."""
    STORE_THEN_TRUNCATE = "store-then-truncate"
    """Handle the request, then send only half of the answer's body and close."""
    STORE_THEN_DELAY = "store-then-delay"
    """Handle the request, then wait ``answer_delay`` seconds before answering."""


@attrs.define
class FaultPlan:
    """Chooses the fault, if any, for each request.

    A scripted fault (see :meth:`script`) wins over the random draw, so that a test
    can say exactly what the next requests meet. ``None`` in a script means "no fault".
    """

    probabilities: Mapping[Fault, float] = attrs.field(factory=dict)
    seed: int | None = None
    _script: deque[Fault | None] = attrs.field(init=False, factory=deque)
    _rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        total = sum(self.probabilities.values())
        if any(p < 0 for p in self.probabilities.values()) or total > 1:
            msg = f"fault probabilities must be >= 0 and add up to at most 1, got {total}"
            raise ValueError(msg)
        self._rng = random.Random(self.seed)

    def script(self, faults: Iterable[Fault | None]) -> None:
        """Queue faults for the next requests, one each, in order."""
        self._script.extend(faults)

    def next_fault(self) -> Fault | None:
        """Return the fault for the request being handled now."""
        if self._script:
            return self._script.popleft()
        if not self.probabilities:
            return None
        draw = self._rng.random()
        for fault, probability in self.probabilities.items():
            if draw < probability:
                return fault
            draw -= probability
        return None
