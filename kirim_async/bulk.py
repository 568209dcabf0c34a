"""The bulk helper: many labels, bounded concurrency, one shared rate-limit gate.

Every input item gets exactly one :class:`LabelOutcome`::

    result = await bulk_create_labels(client, names, concurrency=16)
    result.raise_for_failures()
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from typing import Any, Literal, TypeAlias

import attrs

from ._client import KirimClient
from ._outcomes import (
    BulkError,
    BulkResult,
    ExistsReason,
    LabelOutcome,
    OutcomeStatus,
    SkipReason,
)
from ._pacing import RateGate
from ._validators import count, positive
from .errors import (
    AuthenticationError,
    DuplicateLabelError,
    InvalidParameterError,
    KirimError,
    PermissionDeniedError,
)
from .models import CreateLabel

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_RATE_LIMIT_WAIT",
    "BulkError",
    "BulkResult",
    "ExistsReason",
    "LabelOutcome",
    "OutcomeStatus",
    "SkipReason",
    "bulk_create_labels",
    "iter_bulk_create_labels",
]

DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_RATE_LIMIT_WAIT = 300.0

Item: TypeAlias = "CreateLabel | Mapping[str, Any] | str"
Items: TypeAlias = "Iterable[Item] | AsyncIterable[Item]"
OnOutcome: TypeAlias = "Callable[[LabelOutcome], Awaitable[None] | None]"
OnDuplicate = Literal["exists", "error"]

_FIELDS = frozenset(field.name for field in attrs.fields(CreateLabel))


class _JobStoppedError(Exception):
    """The job stopped before this item was sent."""


def _to_request(item: object) -> CreateLabel:
    if isinstance(item, CreateLabel):
        return item
    if isinstance(item, str):
        return CreateLabel(name=item)
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - _FIELDS, key=str)
        if unknown:
            raise InvalidParameterError(
                str(unknown[0]), "is not a field of a label (name, color, team_id)", item
            )
        if "name" not in item:
            raise InvalidParameterError("name", "is required", item)
        return CreateLabel(**{key: value for key, value in item.items() if value is not None})
    raise InvalidParameterError(
        "item", "must be a CreateLabel, a mapping of its fields, or a name", item
    )


@attrs.define
class _Planner:
    """Validates items and spots repeats: what a job would send, with no I/O.

    Args:
        default_team_id: The team of items that name none (the client's).
        dedupe: Whether to skip repeats of an earlier item's (team, name).
    """

    default_team_id: str | None
    dedupe: bool
    first_seen: dict[tuple[str | None, str], int] = attrs.field(factory=dict)

    def prepare(self, index: int, item: object) -> CreateLabel | LabelOutcome:
        """The request to send for *item*, or its outcome when nothing is to be sent."""
        try:
            request = _to_request(item)
        except InvalidParameterError as error:
            return LabelOutcome(
                index=index, request=item, status=OutcomeStatus.INVALID, error=error
            )
        if self.dedupe:
            key = (request.team_id or self.default_team_id, request.name)
            first = self.first_seen.setdefault(key, index)
            if first != index:
                return LabelOutcome(
                    index=index,
                    request=request,
                    status=OutcomeStatus.SKIPPED,
                    skip_reason=SkipReason.REPEAT,
                    first_index=first,
                )
        return request


@attrs.define
class _Job:
    """The state of one bulk job; the generator below drives it."""

    client: KirimClient
    gate: RateGate
    concurrency: int
    on_duplicate: OnDuplicate
    max_retries: int | None
    planner: _Planner
    stop_error: KirimError | None = None
    in_flight: set[asyncio.Task[LabelOutcome]] = attrs.field(factory=set)
    finished: asyncio.Queue[LabelOutcome] = attrs.field(factory=asyncio.Queue)
    slots: asyncio.Semaphore = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.concurrency)

    def prepare(self, index: int, item: object) -> CreateLabel | LabelOutcome:
        """Validate and de-duplicate an item: the request to send, or its outcome now."""
        prepared = self.planner.prepare(index, item)
        if self.stop_error is not None and isinstance(prepared, CreateLabel):
            return self._stopped(index, prepared)
        return prepared

    def _stopped(self, index: int, request: CreateLabel) -> LabelOutcome:
        return LabelOutcome(
            index=index,
            request=request,
            status=OutcomeStatus.SKIPPED,
            skip_reason=SkipReason.STOPPED,
            error=self.stop_error,
        )

    async def dispatch(self, index: int, request: CreateLabel) -> None:
        """Start sending *request* once a slot is free."""
        await self.slots.acquire()
        task = asyncio.ensure_future(self._send(index, request))
        self.in_flight.add(task)
        task.add_done_callback(self._collect)

    def _collect(self, task: asyncio.Task[LabelOutcome]) -> None:
        self.in_flight.discard(task)
        self.slots.release()
        if not task.cancelled():
            self.finished.put_nowait(task.result())

    async def _send(  # noqa: PLR0911 - one return per kind of outcome
        self, index: int, request: CreateLabel
    ) -> LabelOutcome:
        if self.stop_error is not None:
            return self._stopped(index, request)
        try:
            label, _, attempts = await self.client._create(
                request, timeout=None, max_retries=self.max_retries, deadline=None, gate=self.gate
            )
        except _JobStoppedError:
            return self._stopped(index, request)
        except DuplicateLabelError as error:
            earlier = error.after_ambiguous_attempt
            if self.on_duplicate == "error" and not earlier:
                return self._failed(index, request, error)
            return LabelOutcome(
                index=index,
                request=request,
                status=OutcomeStatus.EXISTS,
                error=error,
                attempts=error.attempts,
                request_id=error.request_id,
                exists_reason=ExistsReason.EARLIER_ATTEMPT
                if earlier
                else ExistsReason.PRE_EXISTING,
            )
        except (AuthenticationError, PermissionDeniedError) as error:
            if self.stop_error is None:
                self.stop_error = error
                self.gate.halt(_JobStoppedError())
            return self._failed(index, request, error)
        except KirimError as error:
            return self._failed(index, request, error)
        return LabelOutcome(
            index=index,
            request=request,
            status=OutcomeStatus.CREATED,
            label=label,
            attempts=attempts,
            request_id=label.request_id,
        )

    @staticmethod
    def _failed(index: int, request: CreateLabel, error: KirimError) -> LabelOutcome:
        return LabelOutcome(
            index=index,
            request=request,
            status=OutcomeStatus.FAILED,
            error=error,
            attempts=error.attempts,
            request_id=getattr(error, "request_id", None),
        )

    async def cancel(self) -> None:
        """Cancel the requests in flight and wait until they have ended."""
        tasks = list(self.in_flight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(
        self, items: Items, on_outcome: OnOutcome | None
    ) -> AsyncGenerator[LabelOutcome, None]:
        """Yield one outcome per item, in completion order."""
        # Plain iterables are read with next(): no await (and no loop turn) per item.
        sync_source = None if isinstance(items, AsyncIterable) else iter(items)
        async_source = aiter(items) if isinstance(items, AsyncIterable) else None
        index = 0
        exhausted = False
        try:
            while True:
                # Read ahead only while there is room: O(concurrency) items pending at most.
                while (
                    not exhausted
                    and not self.slots.locked()
                    and self.finished.qsize() < self.concurrency
                ):
                    try:
                        if sync_source is not None:
                            item = next(sync_source)
                        else:
                            assert async_source is not None  # noqa: S101 - one of the two
                            item = await anext(async_source)
                    except (StopIteration, StopAsyncIteration):
                        exhausted = True
                        break
                    prepared = self.prepare(index, item)
                    if isinstance(prepared, LabelOutcome):
                        self.finished.put_nowait(prepared)
                    else:
                        await self.dispatch(index, prepared)
                    index += 1
                if exhausted and not self.in_flight and self.finished.empty():
                    return
                outcome = await self.finished.get()
                if on_outcome is not None:
                    reported = on_outcome(outcome)
                    if inspect.isawaitable(reported):
                        await reported
                yield outcome
        finally:
            await self.cancel()
            close = getattr(async_source, "aclose", None)
            if close is not None:  # an async generator the job consumed: end it now
                await close()


def _one_of_on_duplicate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in ("exists", "error"):
        raise InvalidParameterError(attribute.name, "must be 'exists' or 'error'", value)


def _wait_budget(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Unlike the client's durations, an infinite budget is fine: never give up.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidParameterError(attribute.name, "must be a number >= 0", value)


@attrs.frozen(kw_only=True)
class _JobOptions:
    """A bulk job's options, checked by attrs validators before anything starts."""

    concurrency: int = attrs.field(validator=attrs.validators.and_(count, positive))
    on_duplicate: OnDuplicate = attrs.field(validator=_one_of_on_duplicate)
    max_retries: int | None = attrs.field(validator=attrs.validators.optional(count))
    max_rate_limit_wait: float = attrs.field(validator=_wait_budget)


def _new_job(
    client: KirimClient,
    *,
    concurrency: int,
    on_duplicate: OnDuplicate,
    max_retries: int | None,
    max_rate_limit_wait: float,
    dedupe: bool,
) -> _Job:
    options = _JobOptions(
        concurrency=concurrency,
        on_duplicate=on_duplicate,
        max_retries=max_retries,
        max_rate_limit_wait=max_rate_limit_wait,
    )
    return _Job(
        client=client,
        gate=client._new_gate(options.max_rate_limit_wait),
        concurrency=options.concurrency,
        on_duplicate=options.on_duplicate,
        max_retries=options.max_retries,
        planner=_Planner(default_team_id=client.team_id, dedupe=dedupe),
    )


async def iter_bulk_create_labels(
    client: KirimClient,
    items: Items,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_duplicate: OnDuplicate = "exists",
    max_retries: int | None = None,
    max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
    dedupe: bool = True,
    on_outcome: OnOutcome | None = None,
) -> AsyncGenerator[LabelOutcome, None]:
    """Create a label per item, yielding each outcome as it completes.

    Items are read lazily: at most ``concurrency`` requests are in flight and at most
    ``concurrency`` finished outcomes wait to be yielded, however long the input.
    Close the iterator (``contextlib.aclosing``) if you stop early; cancelling the task
    that iterates cancels the requests in flight.

    Args:
        client: The client to send with.
        items: :class:`CreateLabel` objects, mappings of its fields, or names; an
            iterable or an async iterable.
        concurrency: Requests in flight at most.
        on_duplicate: ``"exists"`` reports names already taken as ``exists``;
            ``"error"`` reports pre-existing ones as ``failed``.
        max_retries: Error retries per item (default: the client's). Waiting out rate
            limits does not spend them.
        max_rate_limit_wait: Seconds the job may spend held back by 429s in all; after
            that, every remaining item fails with the ``RateLimitError``.
        dedupe: Skip items repeating an earlier item's (team, name). This remembers each
            distinct (team, name) seen; pass False for constant memory on input known to
            be unique (a repeat is then sent and reported as ``exists``).
        on_outcome: Called (or awaited) with each outcome before it is yielded.

    Yields:
        One :class:`LabelOutcome` per item, in completion order (``index`` says which).

    Raises:
        InvalidParameterError: An option is out of range.
    """
    job = _new_job(
        client,
        concurrency=concurrency,
        on_duplicate=on_duplicate,
        max_retries=max_retries,
        max_rate_limit_wait=max_rate_limit_wait,
        dedupe=dedupe,
    )
    outcomes = job.run(items, on_outcome)
    async with contextlib.aclosing(outcomes):
        async for outcome in outcomes:
            yield outcome


async def bulk_create_labels(
    client: KirimClient,
    items: Items,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_duplicate: OnDuplicate = "exists",
    max_retries: int | None = None,
    max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
    dedupe: bool = True,
    on_outcome: OnOutcome | None = None,
) -> BulkResult:
    """Create a label per item and return every outcome, in input order.

    Takes the same arguments as :func:`iter_bulk_create_labels`.

    Returns:
        A :class:`BulkResult`: one outcome per item, counts, views and figures.

    Raises:
        InvalidParameterError: An option is out of range.
    """
    job = _new_job(
        client,
        concurrency=concurrency,
        on_duplicate=on_duplicate,
        max_retries=max_retries,
        max_rate_limit_wait=max_rate_limit_wait,
        dedupe=dedupe,
    )
    clock = job.gate.clock
    started = clock()
    outcomes: list[LabelOutcome | None] = []
    stream = job.run(items, on_outcome)
    async with contextlib.aclosing(stream):
        async for outcome in stream:
            if outcome.index >= len(outcomes):
                outcomes.extend([None] * (outcome.index + 1 - len(outcomes)))
            outcomes[outcome.index] = outcome
    complete = tuple(o for o in outcomes if o is not None)
    assert len(complete) == len(outcomes), "every item has exactly one outcome"  # noqa: S101
    return BulkResult(
        outcomes=complete,
        elapsed=clock() - started,
        requests_sent=job.gate.sends,
        rate_limited=job.gate.rate_limited_count,
    )
