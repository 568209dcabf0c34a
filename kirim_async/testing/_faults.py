"""Faults the fake server can inject, by probability or by script."""

from __future__ import annotations

import enum
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TypeAlias

import attrs

from ..errors import InvalidParameterError


class Fault(str, enum.Enum):
    """One misbehaviour of the server for one request."""

    SERVER_ERROR = "500"
    """Answer 500 with a JSON error body; nothing is stored."""
    BAD_GATEWAY = "502"
    """Answer 502 with an HTML body, as a proxy would; nothing is stored."""
    UNAVAILABLE = "503"
    """Answer 503 with an empty body; nothing is stored."""
    RATE_LIMITED = "429"
    """Answer 429 with a ``Retry-After`` of 0.1 s (in the server's style), whatever the
    rate: another caller spent the organisation's quota. Nothing is stored."""
    LATENCY = "latency"
    """Wait ``fault_latency`` seconds, then handle the request normally."""
    DROP = "drop"
    """Drop the connection unanswered without handling the request; nothing is stored.
    A client cannot tell it from ``STORE_THEN_DROP``: only a retry shows which it was."""
    STORE_THEN_DROP = "store-then-drop"
    """Handle the request (a label may be stored), then drop the connection unanswered."""
    STORE_THEN_TRUNCATE = "store-then-truncate"
    """Handle the request, then send only half of the answer's body and close."""
    STORE_THEN_DELAY = "store-then-delay"
    """Handle the request, then wait ``answer_delay`` seconds before answering."""
    STORE_THEN_GARBLE = "store-then-garble"
    """Handle the request, then send a complete answer whose body is only the first half
    of its JSON document (as a proxy that cut the body, but not the length, would)."""
    STORE_THEN_MALFORM = "store-then-malform"
    """Handle the request, then answer a success with the body of the vendor page's
    example: ``data`` with only ``id``, ``object`` and ``color``, and no ``request_id``.
    An error answer is sent as it is."""


_KINDS = ", ".join(fault.value for fault in Fault)
_PROBABILITIES_RULE = "must map Fault kinds to probabilities 0-1 that add up to at most 1"


# A union of mappings, not one mapping of a union: Mapping is invariant in its key, so
# ``dict[Fault, float]`` would not type-check as ``Mapping[Fault | str, float]``.
FaultProbabilities: TypeAlias = (
    Mapping[Fault, float] | Mapping[str, float] | Mapping[Fault | str, float]
)
"""Fault kinds (members or their values, such as ``"500"``) to probabilities."""


def fault_probabilities(value: FaultProbabilities | None) -> dict[Fault, float]:
    """Check and copy a fault-probability mapping; kinds may be given by value (``"500"``).

    Raises:
        InvalidParameterError: A kind that is not a :class:`Fault`, or probabilities
            that are not numbers 0-1 adding up to at most 1.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidParameterError("faults", _PROBABILITIES_RULE, value)
    checked: dict[Fault, float] = {}
    for kind, probability in value.items():
        try:
            fault = Fault(kind)
        except ValueError:
            raise InvalidParameterError("faults", f"keys must be one of {_KINDS}", kind) from None
        if (
            isinstance(probability, bool)
            or not isinstance(probability, (int, float))
            or not 0 <= probability <= 1
        ):
            raise InvalidParameterError("faults", _PROBABILITIES_RULE, probability)
        checked[fault] = probability
    if sum(checked.values()) > 1:
        raise InvalidParameterError("faults", _PROBABILITIES_RULE, sum(checked.values()))
    return checked


@attrs.define
class FaultPlan:
    """Chooses the fault, if any, for each request.

    A scripted fault (see :meth:`script`) wins over the random draw, so that a test
    can say exactly what the next requests meet. ``None`` in a script means "no fault".
    """

    probabilities: dict[Fault, float] = attrs.field(factory=dict)
    seed: int | None = None
    lasts: float | None = None
    """Seconds from the first draw during which faults are drawn (None: always)."""
    clock: Callable[[], float] = time.monotonic
    _script: deque[Fault | None] = attrs.field(init=False, factory=deque)
    _first_draw: float | None = attrs.field(init=False, default=None)
    _rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
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
        if self.lasts is not None:
            now = self.clock()
            if self._first_draw is None:
                self._first_draw = now
            elif now - self._first_draw >= self.lasts:
                return None
        draw = self._rng.random()
        for fault, probability in self.probabilities.items():
            if draw < probability:
                return fault
            draw -= probability
        return None
