"""What the bulk helper reports: one LabelOutcome per input item, and the BulkResult."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import BulkError, KirimError, is_ambiguous
from ..models import CreateLabel, Label

__all__ = ["BulkResult", "ExistsReason", "LabelOutcome", "OutcomeStatus", "SkipReason"]


class OutcomeStatus(str, enum.Enum):
    """What became of one input item."""

    CREATED = "created"
    """The label was created."""
    EXISTS = "exists"
    """The name was taken (see ``exists_reason``)."""
    INVALID = "invalid"
    """The item failed client-side validation; nothing was sent."""
    FAILED = "failed"
    """An error remained after the retries (see ``error``)."""
    SKIPPED = "skipped"
    """Not sent (see ``skip_reason``)."""

    def __str__(self) -> str:
        return self.value


class ExistsReason(str, enum.Enum):
    """Why an item's name was already taken."""

    PRE_EXISTING = "pre-existing"
    """The label existed before this job."""
    EARLIER_ATTEMPT = "earlier-attempt"
    """An earlier attempt of this item timed out or lost its answer after creating it."""

    def __str__(self) -> str:
        return self.value


class SkipReason(str, enum.Enum):
    """Why an item was not sent."""

    REPEAT = "repeat"
    """An earlier item of the input has the same (team, name); see ``first_index``."""
    STOPPED = "stopped"
    """The job stopped before sending it: an authentication or permission failure, or
    an API never reached (a connection that could not be made before any answer)."""

    def __str__(self) -> str:
        return self.value


@attrs.frozen(kw_only=True)
class LabelOutcome:
    """The outcome of one input item.

    Attributes:
        index: The item's position in the input, from 0.
        request: The validated :class:`CreateLabel`, or the raw item when invalid.
        status: What became of it.
        label: The created label (``created`` only).
        error: The error behind ``invalid``, ``failed``, an ``exists`` or a ``skipped``
            for a stopped job.
        attempts: Requests sent for the item (0 when nothing was sent).
        request_id: The server's id for the last answer, when there was one.
        exists_reason: For ``exists``: pre-existing, or created by an earlier attempt.
        skip_reason: For ``skipped``: a repeat, or the job stopped.
        first_index: For a repeat: the index of the first item with that (team, name).
    """

    index: int
    request: CreateLabel | Any
    status: OutcomeStatus
    label: Label | None = None
    error: KirimError | None = None
    attempts: int = 0
    request_id: str | None = None
    exists_reason: ExistsReason | None = None
    skip_reason: SkipReason | None = None
    first_index: int | None = None

    @property
    def may_exist(self) -> bool:
        """For ``failed``: whether the label may exist anyway.

        True when an attempt of the item may have created it: it timed out, lost its
        connection after sending, met a 5xx, or had a success answer that could not be
        read. Sending the item again may then meet ``exists``.
        """
        error = self.error
        return (
            self.status is OutcomeStatus.FAILED
            and error is not None
            and (error.after_ambiguous_attempt or is_ambiguous(error))
        )

    @property
    def is_ok(self) -> bool:
        """Whether the label is there as asked (created, existing, or a repeat of one)."""
        return self.status in (OutcomeStatus.CREATED, OutcomeStatus.EXISTS) or (
            self.skip_reason is SkipReason.REPEAT
        )


def _count_outcomes(outcomes: tuple[LabelOutcome, ...]) -> str:
    # A job's outcomes may number millions: a repr (a log line, a REPL) counts them.
    counted = Counter(o.status for o in outcomes)
    counts = ", ".join(f"{counted[status]} {status}" for status in OutcomeStatus if counted[status])
    noun = "outcome" if len(outcomes) == 1 else "outcomes"
    return f"<{len(outcomes)} {noun}{': ' if counts else ''}{counts}>"


@attrs.frozen(kw_only=True)
class BulkResult:
    """Every outcome of a bulk job, in input order, with the job's figures.

    Attributes:
        outcomes: One :class:`LabelOutcome` per input item, in input order.
        elapsed: Seconds the job took.
        requests_sent: Requests sent, retries and rate-limited ones included.
        rate_limited: 429 answers met.
    """

    outcomes: tuple[LabelOutcome, ...] = attrs.field(repr=_count_outcomes)
    elapsed: float
    requests_sent: int
    rate_limited: int

    @property
    def counts(self) -> Mapping[OutcomeStatus, int]:
        """How many outcomes of each status (every status present, zero or not)."""
        counted = Counter(o.status for o in self.outcomes)
        return {status: counted[status] for status in OutcomeStatus}

    def _with(self, status: OutcomeStatus) -> tuple[LabelOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status is status)

    @property
    def created(self) -> tuple[LabelOutcome, ...]:
        """The outcomes whose label was created."""
        return self._with(OutcomeStatus.CREATED)

    @property
    def existing(self) -> tuple[LabelOutcome, ...]:
        """The outcomes whose name was already taken."""
        return self._with(OutcomeStatus.EXISTS)

    @property
    def failed(self) -> tuple[LabelOutcome, ...]:
        """The outcomes that failed after retries."""
        return self._with(OutcomeStatus.FAILED)

    @property
    def invalid(self) -> tuple[LabelOutcome, ...]:
        """The outcomes that failed client-side validation."""
        return self._with(OutcomeStatus.INVALID)

    @property
    def skipped(self) -> tuple[LabelOutcome, ...]:
        """The outcomes not sent (repeats, or after the job stopped)."""
        return self._with(OutcomeStatus.SKIPPED)

    @property
    def ok(self) -> bool:
        """Whether every item's label is there: created, existing, or a repeat of one."""
        return all(o.is_ok for o in self.outcomes)

    def raise_for_failures(self) -> None:
        """Raise :class:`BulkError` unless :attr:`ok`."""
        if not self.ok:
            raise BulkError(self)
