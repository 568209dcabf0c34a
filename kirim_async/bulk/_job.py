"""A bulk job: workers sharing the input, one outcome per item, the stop rule."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, Literal, Protocol, TypeAlias, get_args

import attrs

from .._client import Exchange, KirimClient
from .._config import CallOptions
from .._validators import count, flag, function, number, one_of, positive, whole_number
from ..errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    DuplicateLabelError,
    InvalidParameterError,
    KirimError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    ProxyError,
    RateLimitError,
)
from ..models import CreateLabel, Label
from ..pacing import Pacer
from ._control import JobGate, JobStoppedError
from ._outcomes import BulkResult, ExistsReason, LabelOutcome, OutcomeStatus, SkipReason
from ._plan import Planner

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_RATE_LIMIT_WAIT",
    "bulk_create_labels",
    "iter_bulk_create_labels",
]

DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_RATE_LIMIT_WAIT = 300.0

Item: TypeAlias = "CreateLabel | Mapping[str, Any] | str"
Items: TypeAlias = "Iterable[Item] | AsyncIterable[Item]"
OnOutcome: TypeAlias = "Callable[[LabelOutcome], Awaitable[None] | None]"
OnDuplicate = Literal["exists", "error"]


@attrs.define
class _Source:
    """The input, taken one item at a time by the workers and numbered in input order."""

    items: Iterator[object] | None
    async_items: AsyncIterator[object] | None
    reading: asyncio.Lock = attrs.field(factory=asyncio.Lock)
    taken: int = 0
    """Items taken so far: the last one taken has index ``taken - 1``."""

    @classmethod
    def of(cls, items: Items) -> _Source:
        if isinstance(items, AsyncIterable):
            return cls(None, aiter(items))
        return cls(iter(items), None)

    async def take(self) -> object:
        """The next item of an async iterable, or ``_EXHAUSTED`` at the end."""
        assert self.async_items is not None  # noqa: S101 - only called for async iterables
        async with self.reading:  # an async generator cannot serve two anext() at once
            try:
                item = await anext(self.async_items)
            except StopAsyncIteration:
                return _EXHAUSTED
            self.taken += 1
            return item

    async def aclose(self) -> None:
        """End an async generator the job stopped reading early."""
        close = getattr(self.async_items, "aclose", None)
        if close is not None:
            await close()


@attrs.frozen
class _WorkerFailed:
    """A worker met an error that is not an item's outcome (the input raised, say)."""

    error: Exception


_EXHAUSTED = object()
_NO_LIMIT = math.inf  # per call: the job's own budget governs waiting out 429s
_WORKER_DONE = object()


def _is_success(error: MalformedResponseError) -> bool:
    """Whether *error* is about a 2xx answer: one whose label may well exist."""
    return 200 <= (error.status or 0) < 300


def _created(index: int, request: CreateLabel, label: Label, attempts: int) -> LabelOutcome:
    return LabelOutcome(
        index=index,
        request=request,
        status=OutcomeStatus.CREATED,
        label=label,
        attempts=attempts,
        request_id=label.request_id,
    )


class _Sink(Protocol):
    """Where workers hand finished items; each call returns something to await when full."""

    def outcome(self, outcome: LabelOutcome) -> Awaitable[None] | None:
        """Take an item's outcome."""

    def created(
        self, index: int, request: CreateLabel, label: Label, attempts: int
    ) -> Awaitable[None] | None:
        """Take a created item, as the parts of its outcome."""


@attrs.define
class _Handover:
    """:meth:`_Job.run`'s sink: each outcome into a bounded queue as it finishes."""

    finished: asyncio.Queue[object]

    def outcome(self, outcome: LabelOutcome) -> Awaitable[None] | None:
        if self.finished.full():
            return self.finished.put(outcome)
        self.finished.put_nowait(outcome)  # no coroutine per item when there is room
        return None

    def created(
        self, index: int, request: CreateLabel, label: Label, attempts: int
    ) -> Awaitable[None] | None:
        return self.outcome(_created(index, request, label, attempts))


@attrs.define
class _Filing:
    """Outcomes filed at their item's index (items finish out of order), never full.

    A created item is filed as its parts and made a :class:`LabelOutcome` only by
    :meth:`results`: building a job's outcomes in one loop after its requests, rather
    than one amid each request's work, measured about 2 µs less per item at
    concurrency 64 (benchmarks/RESULTS.md).
    """

    size: int = 0
    """One past the highest index filed."""
    outcomes: list[LabelOutcome | None] = attrs.Factory(list)
    requests: list[CreateLabel | None] = attrs.Factory(list)
    labels: list[Label | None] = attrs.Factory(list)
    attempts: list[int] = attrs.Factory(list)

    def outcome(self, outcome: LabelOutcome) -> None:
        self._make_room(outcome.index)
        self.outcomes[outcome.index] = outcome

    def created(self, index: int, request: CreateLabel, label: Label, attempts: int) -> None:
        self._make_room(index)
        self.requests[index] = request
        self.labels[index] = label
        self.attempts[index] = attempts

    def _make_room(self, index: int) -> None:
        if index >= self.size:
            self.size = index + 1
            if index >= len(self.outcomes):  # doubling: no list growth per item
                more = max(index + 1, 2 * len(self.outcomes)) - len(self.outcomes)
                self.outcomes += [None] * more
                self.requests += [None] * more
                self.labels += [None] * more
                self.attempts += [0] * more

    def results(self) -> list[LabelOutcome | None]:
        """One entry per index up to the highest filed, in input order; None if missing."""
        results = self.outcomes[: self.size]
        for index, label in enumerate(self.labels[: self.size]):
            request = self.requests[index]
            if label is not None and request is not None:
                results[index] = _created(index, request, label, self.attempts[index])
        return results


async def _stop(workers: Sequence[asyncio.Future[None]], source: _Source) -> None:
    """End a job's workers, with their requests in flight, then its input."""
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    await source.aclose()


@attrs.define
class _Job:
    """The state of one bulk job: ``concurrency`` workers that share the input.

    Each worker takes an item, sends it and hands its outcome over, one item at a time,
    so the pool's size is the bound on requests in flight. Workers that live for the
    whole job cost less per item than a task per item under a semaphore (see
    benchmarks/RESULTS.md), and keep at most ``concurrency`` items taken and not yet
    finished.
    """

    client: KirimClient
    gate: JobGate[Pacer]
    concurrency: int
    on_duplicate: OnDuplicate
    options: CallOptions
    """Each call's: the client's, with the job's ``max_retries`` and no 429 budget of
    its own (the job's governs)."""
    planner: Planner
    stop_error: KirimError | None = None

    def _stopped(
        self, index: int, request: CreateLabel, exchange: Exchange[CreateLabel, Label] | None = None
    ) -> LabelOutcome:
        """The outcome of an item the job stopped before it was done.

        Its *exchange*, if it started, may have sent attempts that created nothing (a
        429 it was waiting out): they count.
        """
        return LabelOutcome(
            index=index,
            request=request,
            status=OutcomeStatus.SKIPPED,
            skip_reason=SkipReason.STOPPED,
            error=self.stop_error,
            attempts=0 if exchange is None else exchange.attempts,
            request_id=None if exchange is None else exchange.last_request_id(),
        )

    async def _work(self, source: _Source, sink: _Sink) -> None:
        """One worker: take, send and hand over items until the input is exhausted."""
        # Looked up once: this loop runs once per item, and every step of it counts.
        items = source.items
        plan, create = self.planner.prepare, self.client.labels.start_create
        gate, options = self.gate, self.options
        while True:
            if items is not None:  # a plain iterable, read with next(): no loop turn
                item = next(items, _EXHAUSTED)
                if item is _EXHAUSTED:
                    return
                source.taken += 1
            else:
                item = await source.take()
                if item is _EXHAUSTED:
                    return
            index = source.taken - 1  # nothing else ran since the take: no await between
            prepared = plan(index, item)
            if self.stop_error is not None and isinstance(prepared, CreateLabel):
                prepared = self._stopped(index, prepared)
            if isinstance(prepared, LabelOutcome):
                waiting = sink.outcome(prepared)
            else:
                request = prepared
                if gate.is_limiting:
                    # Let the answers that came in since this worker's last one reach
                    # the gate (a 429 among them closes it) before sending. Not before
                    # the first sign of a limit: each yield holds the answers a loop
                    # turn longer, which wakes the garbage collector.
                    await asyncio.sleep(0)
                # Awaited here, not in a helper coroutine: one level fewer for every
                # answer to travel back up (see benchmarks/RESULTS.md).
                exchange, creating = create(request, options, gate)
                try:
                    label = await creating
                except (KirimError, JobStoppedError) as error:
                    waiting = sink.outcome(
                        await self._confirm(index, request, error)
                        if isinstance(error, MalformedResponseError) and _is_success(error)
                        else self._unsuccessful(index, request, error, exchange)
                    )
                else:
                    waiting = sink.created(index, request, label, exchange.attempts)
            if waiting is not None:
                await waiting

    async def _feed(self, source: _Source, finished: asyncio.Queue[object]) -> None:
        """A worker of :meth:`run`: its outcomes, then its end, go into *finished*."""
        try:
            await self._work(source, _Handover(finished))
        except Exception as error:  # re-raised by run(), in the caller's task
            await finished.put(_WorkerFailed(error))
        else:
            await finished.put(_WORKER_DONE)

    async def collect(self, items: Items) -> list[LabelOutcome | None]:
        """Run the job to its end, the workers filing each outcome at its index.

        What :func:`bulk_create_labels` uses when no hook needs the outcomes one at a
        time: no queue and no consumer task between the workers and the list.
        """
        source = _Source.of(items)
        filing = _Filing()
        workers = [
            asyncio.ensure_future(self._work(source, filing)) for _ in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        finally:  # a worker failed (the input raised), or the caller was cancelled
            await _stop(workers, source)
        return filing.results()

    async def _confirm(
        self, index: int, request: CreateLabel, unreadable: MalformedResponseError
    ) -> LabelOutcome:
        """Send an item again whose success answer could not be read, to learn its fate.

        A 2xx whose body is cut or garbled most likely created the label, but says
        nothing of it. The same request again answers for it: a duplicate proves the
        earlier attempt created it (``exists``, ``earlier-attempt``); a readable 2xx
        means it had not, and has now; anything else fails the item, flagged as one
        that may exist.
        """
        earlier = unreadable.attempts
        exchange, creating = self.client.labels.start_create(request, self.options, self.gate)
        try:
            label = await creating
        except (KirimError, JobStoppedError) as error:
            if isinstance(error, KirimError):
                error.attempts += earlier
                error.after_ambiguous_attempt = True
            return self._unsuccessful(index, request, error, exchange)
        return _created(index, request, label, earlier + exchange.attempts)

    def _unsuccessful(
        self,
        index: int,
        request: CreateLabel,
        error: KirimError | JobStoppedError,
        exchange: Exchange[CreateLabel, Label],
    ) -> LabelOutcome:
        """The outcome of an item whose call, made through *exchange*, raised *error*."""
        if isinstance(error, JobStoppedError):
            return self._stopped(index, request, exchange)
        if isinstance(error, DuplicateLabelError):
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
        if isinstance(error, RateLimitError) and self.client.retry_policy.refuses_wait(
            error.named_wait
        ):
            # Every item would be asked the same: they all fail with it, as they do when
            # the job's wait budget is spent (a job never sleeps until the year 9999).
            self.gate.halt(error)
        elif self.stop_error is None and self._stops_the_job(error):
            self.stop_error = error
            self.gate.halt(JobStoppedError())
        return self._failed(index, request, error)

    def _stops_the_job(self, error: KirimError) -> bool:
        """Whether *error* means the items not yet sent must fail too."""
        if isinstance(error, (AuthenticationError, PermissionDeniedError)):
            return True
        if isinstance(error, NotFoundError) and error.code is None:
            return True  # not the API's error: the base URL has no /labels (no /v1, say)
        if isinstance(error, ProxyError) and error.is_refusal:
            return True  # the proxy's credentials or policy: every item would meet it
        if isinstance(error, APIStatusError) and error.status == 407:
            return True  # the same, from a proxy forwarding plain http:// (not a tunnel)
        # A connection never made (a wrong base URL, a name that does not resolve, a
        # refused port, a bad certificate) before the API ever answered: trying each
        # item with all its retries would take minutes to tell the same. Once the API
        # has answered, a failure to connect is taken as a passing fault of one item.
        return (
            isinstance(error, APIConnectionError)
            and not error.request_may_have_been_sent
            and self.gate.answered == 0
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

    async def run(
        self, items: Items, on_outcome: OnOutcome | None
    ) -> AsyncGenerator[LabelOutcome, None]:
        """Yield one outcome per item, in completion order."""
        source = _Source.of(items)
        # Bounded: a slow consumer holds the workers back, so the input is read no faster.
        finished: asyncio.Queue[object] = asyncio.Queue(maxsize=self.concurrency)
        workers = [
            asyncio.ensure_future(self._feed(source, finished)) for _ in range(self.concurrency)
        ]
        running = len(workers)
        try:
            while running:
                outcome = finished.get_nowait() if finished.qsize() else await finished.get()
                if outcome is _WORKER_DONE:
                    running -= 1
                    continue
                if isinstance(outcome, _WorkerFailed):
                    raise outcome.error
                assert isinstance(outcome, LabelOutcome)  # noqa: S101 - nothing else is queued
                if on_outcome is not None:
                    reported = on_outcome(outcome)
                    if inspect.isawaitable(reported):
                        await reported
                yield outcome
        finally:  # done, or stopped early: cancelled, closed, or the input failed
            await _stop(workers, source)


def _many_items(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # One item where a job takes many: a name would be read one letter at a time.
    if isinstance(value, (str, bytes, bytearray, Mapping, CreateLabel)):
        raise InvalidParameterError(
            attribute.name,
            "must be an iterable of items, not a single item: wrap it in a list",
            value,
        )
    if not isinstance(value, (Iterable, AsyncIterable)):
        raise InvalidParameterError(attribute.name, "must be an iterable or async iterable", value)


def _fits_pool(instance: _JobOptions, attribute: attrs.Attribute[Any], value: int) -> None:
    # Workers beyond the pool would wait for a connection inside aiohttp, where the wait
    # counts against each request's timeout: a smaller job in disguise.
    if instance.pool is not None and value > instance.pool:
        raise InvalidParameterError(
            attribute.name,
            f"must be at most the client's {instance.pool} connections "
            "(KirimClient(connection_limit=...))",
            value,
        )


@attrs.frozen(kw_only=True)
class _JobOptions:
    """A bulk job's options, checked by attrs validators before anything starts.

    ``pool`` is the client's connection limit (None: no limit), which ``concurrency``
    must fit; attrs runs the validators in this order, items first.
    """

    items: object = attrs.field(validator=_many_items)
    pool: int | None
    concurrency: int = attrs.field(validator=attrs.validators.and_(whole_number(1), _fits_pool))
    on_duplicate: OnDuplicate = attrs.field(validator=one_of(get_args(OnDuplicate)))
    max_retries: int | None = attrs.field(validator=attrs.validators.optional(count))
    # Unlike the client's durations, an infinite budget is fine: never give up.
    max_rate_limit_wait: float = attrs.field(validator=number(finite=False))
    max_rate: float | None = attrs.field(validator=attrs.validators.optional(positive))
    dedupe: bool = attrs.field(validator=flag)
    on_outcome: object = attrs.field(validator=attrs.validators.optional(function))


def _new_job(
    client: KirimClient,
    items: object,
    *,
    concurrency: int,
    on_duplicate: OnDuplicate,
    max_retries: int | None,
    max_rate_limit_wait: float,
    max_rate: float | None,
    dedupe: bool,
    on_outcome: OnOutcome | None,
) -> _Job:
    options = _JobOptions(
        items=items,
        pool=client.connection_limit,
        concurrency=concurrency,
        on_duplicate=on_duplicate,
        max_retries=max_retries,
        max_rate_limit_wait=max_rate_limit_wait,
        max_rate=max_rate,
        dedupe=dedupe,
        on_outcome=on_outcome,
    )
    return _Job(
        client=client,
        gate=JobGate(
            client.pacer,
            max_wait=options.max_rate_limit_wait,
            clock=client.clock,
            sleep=client.sleep,
            max_rate=options.max_rate,
        ),
        concurrency=options.concurrency,
        on_duplicate=options.on_duplicate,
        options=client.call_options(max_retries=options.max_retries, max_rate_limit_wait=_NO_LIMIT),
        planner=Planner(default_team_id=client.team_id, dedupe=options.dedupe),
    )


async def iter_bulk_create_labels(
    client: KirimClient,
    items: Items,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_duplicate: OnDuplicate = "exists",
    max_retries: int | None = None,
    max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
    max_rate: float | None = None,
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
        max_rate_limit_wait: Seconds the job may spend held back by 429s in all (the
            gate's closings summed, or one unbroken run of 429s, whichever comes
            first); after that, every remaining item fails with the ``RateLimitError``.
        max_rate: Requests a second at most, evenly spaced (retries included), to leave
            the rest of the organisation's rate limit to other callers; None: as fast
            as the API allows.
        dedupe: Skip items repeating an earlier item's (team, name). This remembers each
            distinct (team, name) seen; pass False for constant memory on input known to
            be unique (a repeat is then sent and reported as ``exists``).
        on_outcome: Called (or awaited) with each outcome before it is yielded.

    Yields:
        One :class:`LabelOutcome` per item, in completion order (``index`` says which).

    Raises:
        InvalidParameterError: An option is out of range (``concurrency`` above the
            client's ``connection_limit`` included), or *items* is a single item (a
            name, a mapping, a :class:`CreateLabel`) rather than an iterable of them.
    """
    job = _new_job(
        client,
        items,
        concurrency=concurrency,
        on_duplicate=on_duplicate,
        max_retries=max_retries,
        max_rate_limit_wait=max_rate_limit_wait,
        max_rate=max_rate,
        dedupe=dedupe,
        on_outcome=on_outcome,
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
    max_rate: float | None = None,
    dedupe: bool = True,
    on_outcome: OnOutcome | None = None,
) -> BulkResult:
    """Create a label per item and return every outcome, in input order.

    Takes the same arguments as :func:`iter_bulk_create_labels`.

    Returns:
        A :class:`BulkResult`: one outcome per item, counts, views and figures.

    Raises:
        InvalidParameterError: An option is out of range (``concurrency`` above the
            client's ``connection_limit`` included), or *items* is a single item (a
            name, a mapping, a :class:`CreateLabel`) rather than an iterable of them.
    """
    job = _new_job(
        client,
        items,
        concurrency=concurrency,
        on_duplicate=on_duplicate,
        max_retries=max_retries,
        max_rate_limit_wait=max_rate_limit_wait,
        max_rate=max_rate,
        dedupe=dedupe,
        on_outcome=on_outcome,
    )
    clock = job.gate.clock
    started = clock()
    if on_outcome is None:
        outcomes = await job.collect(items)
    else:  # the hook sees outcomes one at a time, in completion order
        filing = _Filing()
        stream = job.run(items, on_outcome)
        async with contextlib.aclosing(stream):
            async for outcome in stream:
                filing.outcome(outcome)
        outcomes = filing.results()
    complete = tuple(o for o in outcomes if o is not None)
    assert len(complete) == len(outcomes), "every item has exactly one outcome"  # noqa: S101
    return BulkResult(
        outcomes=complete,
        elapsed=clock() - started,
        requests_sent=job.gate.sends,
        rate_limited=job.gate.rate_limited_count,
    )
