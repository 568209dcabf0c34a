"""The bulk helper: many labels, bounded concurrency, one shared rate-limit gate.

Every input item gets exactly one :class:`LabelOutcome`::

    result = await bulk_create_labels(client, names, concurrency=16)
    result.raise_for_failures()
"""

from __future__ import annotations

from ..errors import BulkError
from ._job import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RATE_LIMIT_WAIT,
    bulk_create_labels,
    iter_bulk_create_labels,
)
from ._outcomes import BulkResult, ExistsReason, LabelOutcome, OutcomeStatus, SkipReason
from ._plan import Planner

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_RATE_LIMIT_WAIT",
    "BulkError",
    "BulkResult",
    "ExistsReason",
    "LabelOutcome",
    "OutcomeStatus",
    "Planner",
    "SkipReason",
    "bulk_create_labels",
    "iter_bulk_create_labels",
]
