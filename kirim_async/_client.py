"""KirimClient and its ``labels`` resource: config, sans-I/O core, retries and transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from ._config import (
    DEFAULT_CONNECTION_LIMIT,
    DEFAULT_MAX_RATE_LIMIT_WAIT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_TIMEOUT,
    CallOptions,
    ClientConfig,
    RetryPolicy,
    chosen_redis_url,
    masked,
    resolve_config,
)
from ._events import Hooks, RequestEvent, ResponseEvent
from ._retry import Retrier
from ._sansio import (
    CREATE_LABEL,
    Endpoint,
    OutgoingRequest,
    build_headers,
    error_from_response,
    user_agent,
)
from ._transport import AIOHTTP_VERSION, RawResponse, Transport
from .errors import InvalidParameterError, KirimError, RateLimitError, mask_secret
from .models import CreateLabel, Label, LabelColor
from .pacing import Pacer, RateGate, RedisPacer, Ticket, shared_key

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Exchange", "KirimClient", "LabelResponse", "Labels"]

_NO_HOOKS = Hooks()
_PACER_METHODS = ("try_turn", "turn", "learn", "rate_limited")

Req = TypeVar("Req")
Res = TypeVar("Res")


@attrs.frozen(kw_only=True)
class LabelResponse:
    """A created label with what the exchange that created it said.

    Attributes:
        label: The created label.
        status: The HTTP status of the successful answer.
        headers: The successful answer's headers.
        request_id: The server's id for the successful request.
        attempts: How many attempts the call took (1 when nothing was retried).
        elapsed: Seconds the whole call took, retries and waits included.
    """

    label: Label
    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    request_id: str | None
    attempts: int
    elapsed: float


class Labels:
    """The ``/labels`` resource, reached as ``client.labels``."""

    def __init__(self, client: KirimClient) -> None:
        self._client = client

    async def create(
        self,
        name: str | CreateLabel,
        *,
        color: LabelColor | str | None = None,
        team_id: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> Label:
        """Create a label.

        Args:
            name: The label's name, or a whole :class:`CreateLabel`.
            color: A :class:`LabelColor` or its value; gray when not given.
            team_id: The team; the client's ``team_id`` applies when not given.
            timeout: Seconds each attempt may take (default: the client's).
            max_retries: Retries after the first attempt (default: the client's).
            deadline: Seconds the whole call may take, retries included.

        Returns:
            The created :class:`Label`; its ``request_id`` is the server's request id.

        Raises:
            InvalidParameterError: A field breaks the API's rules; nothing was sent.
            DuplicateLabelError: The name is taken in the team. ``after_ambiguous_attempt``
                says an earlier attempt of this call may have taken it.
            RateLimitError: Still rate limited after the retries, or asked to wait
                longer than ``max_retry_after``.
            APIStatusError: Any other error answer (see :mod:`kirim_async.errors`).
            APIConnectionError: No usable answer (``APITimeoutError`` for timeouts).
            MalformedResponseError: The answer does not match the API contract.
        """
        request = self._request(name, color, team_id)
        options = self._client.call_options(
            timeout=timeout, max_retries=max_retries, deadline=deadline
        )
        _, creating = self.start_create(request, options)
        return await creating

    async def create_with_response(
        self,
        name: str | CreateLabel,
        *,
        color: LabelColor | str | None = None,
        team_id: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> LabelResponse:
        """Like :meth:`create`, but return the label with status, headers and attempts."""
        request = self._request(name, color, team_id)
        clock = self._client.clock
        started = clock()
        options = self._client.call_options(
            timeout=timeout, max_retries=max_retries, deadline=deadline
        )
        exchange, creating = self.start_create(request, options)
        label = await creating
        raw = exchange.last
        assert raw is not None  # noqa: S101 - the label came from an answer
        return LabelResponse(
            label=label,
            status=raw.status,
            headers=raw.headers,
            request_id=label.request_id,
            attempts=exchange.attempts,
            elapsed=clock() - started,
        )

    def start_create(
        self, request: CreateLabel, options: CallOptions | None = None, pacer: Pacer | None = None
    ) -> tuple[Exchange[CreateLabel, Label], Coroutine[Any, Any, Label]]:
        """Start creating *request*'s label: what :meth:`create` awaits, for the bulk helper.

        The request goes to the client's team when it names none. *options* (from
        :meth:`KirimClient.call_options`) and *pacer* are the client's when None.

        Returns:
            The exchange, which counts the attempts and keeps the last answer, and the
            call to await for the label.
        """
        team_id = request.team_in(self._client.team_id)
        if team_id != request.team_id:
            request = attrs.evolve(request, team_id=team_id)
        return self._client.start_call(CREATE_LABEL, request, options, pacer)

    def _request(
        self, name: str | CreateLabel, color: LabelColor | str | None, team_id: str | None
    ) -> CreateLabel:
        if isinstance(name, CreateLabel):
            if color is not None or team_id is not None:
                raise TypeError("pass either a CreateLabel or name/color/team_id, not both")
            return name
        if color is None:
            return CreateLabel(name=name, team_id=team_id)
        return CreateLabel(name=name, color=color, team_id=team_id)


class KirimClient:
    """An async client for the Kirim API.

    Use it as ``async with KirimClient() as client:`` or close it with
    :meth:`aclose`. It holds one aiohttp session with a connection pool, opened on first
    use; a caller's own ``session`` is used as is and never closed.

    Args:
        token: The API token; ``KIRIM_API_TOKEN`` when not given.
        base_url: The API's base URL; ``KIRIM_BASE_URL`` or ``https://api.kirim.chat/v1``.
            Plain ``http://`` is refused unless the host is loopback or
            ``allow_insecure_http`` is set.
        team_id: The team for calls that give none (multi-team organisations).
        timeout: Seconds each attempt may take.
        max_retries: Retries after a failed attempt; 0 disables retrying.
        max_retry_after: The longest wait a 429 names that is slept on (its
            ``Retry-After``, else the reset its rate-limit headers name when they show
            the quota spent); longer raises at once.
        max_rate_limit_wait: Seconds one call may spend waiting out 429s before it raises
            ``RateLimitError``. Concurrent calls share one rate-limit gate: a 429 pauses
            them all until its ``Retry-After``, and the gate paces them at the rate the
            server allows; waiting does not spend ``max_retries``.
        deadline: Seconds a whole call may take, retries and waits included.
        session: An aiohttp session of the caller's to send requests through.
        allow_insecure_http: Permit plain ``http://`` to a non-loopback host.
        proxy: An HTTP proxy to send every request through (``http://host:port``,
            credentials allowed and never shown); with ``session`` too. None: no proxy
            (or your session's own).
        hooks: Callbacks for request, response and retry events.
        trace_configs: aiohttp trace configs, for the session the client opens (not
            with ``session``: add them to your own session).
        connection_limit: Connections in the pool of the session the client opens (>= 1;
            not with ``session``).
        max_response_bytes: Answers with a longer body raise ``MalformedResponseError``.
        redis_url: Share one pacer with every process that uses this token, through
            Redis (``redis://``, ``rediss://`` or ``unix://``; needs the ``redis``
            extra); ``KIRIM_REDIS_URL`` when not given. The client closes it.
        pacer: A :class:`~kirim_async.pacing.Pacer` of your own for every call (one
            shared by several clients, say); not with ``redis_url``. Yours to close.
        sleep: Awaited to wait before a retry (tests pass a fake to never wait).
        clock: Monotonic clock for deadlines and elapsed times.
        wall_clock: Unix time, to read ``Retry-After`` dates.

    Raises:
        InvalidParameterError: A missing or malformed token (the error never shows it),
            a refused base URL or proxy, an out-of-range option, or an option for the client's
            own session given with ``session``.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        team_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        deadline: float | None = None,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        proxy: str | None = None,
        hooks: Hooks | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        redis_url: str | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config: ClientConfig = resolve_config(
            token=token,
            base_url=base_url,
            allow_insecure_http=allow_insecure_http,
            team_id=team_id,
            timeout=timeout,
            deadline=deadline,
            retry=RetryPolicy(
                max_retries=max_retries,
                max_retry_after=max_retry_after,
                max_rate_limit_wait=max_rate_limit_wait,
            ),
            max_response_bytes=max_response_bytes,
            proxy=proxy,
            connection_limit=connection_limit,
            hooks=_NO_HOOKS if hooks is None else hooks,
            sleep=sleep,
            clock=clock,
            wall_clock=wall_clock,
        )
        self._defaults = CallOptions(timeout=self._config.timeout, deadline=self._config.deadline)
        self._hooks = self._config.hooks
        self._clock = self._config.clock
        self._wall_clock = self._config.wall_clock
        self._transport = Transport(
            headers=build_headers(self._config.token, user_agent(AIOHTTP_VERSION)),
            callers_session=session,
            trace_configs=trace_configs,
            connection_limit=self._config.connection_limit,
            max_response_bytes=self._config.max_response_bytes,
            proxy=self._config.proxy,
        )
        self._retrier = Retrier(
            policy=self._config.retry,
            sleep=self._config.sleep,
            clock=self._clock,
            on_retry=self._hooks.on_retry,
        )
        # One pacer under every call of the client: single calls in a service and every
        # bulk job are paused and paced together. A call that has waited its
        # max_rate_limit_wait raises alone; a job's budget is the job's.
        self._redis_pacer: RedisPacer | None = None
        self._pacer: Pacer = self._choose_pacer(pacer, redis_url)
        self.labels = Labels(self)

    def _choose_pacer(self, pacer: Pacer | None, redis_url: str | None) -> Pacer:
        if pacer is not None:
            if redis_url is not None:
                raise InvalidParameterError("pacer", "give a pacer or a redis_url, not both", None)
            if not all(callable(getattr(pacer, name, None)) for name in _PACER_METHODS):
                raise InvalidParameterError(
                    "pacer", "must be a Pacer (try_turn, turn, learn, rate_limited)", None
                )
            return pacer
        url, field = chosen_redis_url(redis_url)
        if url is not None:
            self._redis_pacer = RedisPacer(
                url,
                shared_key(self._config.base_url, self._config.token),
                sleep=self._retrier.sleep,
                clock=self._clock,
                wall_clock=self._wall_clock,
                backoff=self._retrier.exponential_waits,
                field=field,
            )
            return self._redis_pacer
        return RateGate(
            sleep=self._retrier.sleep,
            clock=self._clock,
            wall_clock=self._wall_clock,
            backoff=self._retrier.exponential_waits,
        )

    def __repr__(self) -> str:
        config = self._config
        proxy = "" if config.proxy is None else f", proxy={masked(config.proxy)!r}"
        return f"KirimClient(base_url={config.base_url!r}, team_id={config.team_id!r}{proxy})"

    @property
    def base_url(self) -> str:
        """The API's base URL this client talks to."""
        return self._config.base_url

    @property
    def team_id(self) -> str | None:
        """The team applied to calls that give none."""
        return self._config.team_id

    @property
    def retry_policy(self) -> RetryPolicy:
        """The client's retry rules."""
        return self._config.retry

    @property
    def connection_limit(self) -> int | None:
        """Connections in the pool (None: a caller's session, whose pool is its own)."""
        return self._transport.pool_limit

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock the client times calls and waits by."""
        return self._clock

    @property
    def sleep(self) -> Callable[[float], Awaitable[None]]:
        """What the client awaits to wait (the ``sleep`` it was given)."""
        return self._retrier.sleep

    @property
    def pacer(self) -> Pacer:
        """The pacer every call of this client waits its turn at, bulk jobs' included."""
        return self._pacer

    @property
    def pace(self) -> float | None:
        """The requests a second the client paces its calls at now; None when unpaced."""
        return self._pacer.rate

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._transport.closed

    async def __aenter__(self) -> KirimClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pool (not a caller's session) and a Redis pacer it opened. Safe to repeat."""
        await self._transport.aclose()
        if self._redis_pacer is not None:
            await self._redis_pacer.aclose()

    def call_options(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
        max_rate_limit_wait: float | None = None,
    ) -> CallOptions:
        """A call's options: the client's, with those given here instead (validated).

        Raises:
            InvalidParameterError: An option is out of range.
        """
        defaults = self._defaults
        if (
            timeout is None
            and max_retries is None
            and deadline is None
            and max_rate_limit_wait is None
        ):
            return defaults
        return CallOptions(
            timeout=defaults.timeout if timeout is None else timeout,
            deadline=defaults.deadline if deadline is None else deadline,
            max_retries=max_retries,
            max_rate_limit_wait=max_rate_limit_wait,
        )

    def start_call(
        self,
        endpoint: Endpoint[Req, Res],
        request: Req,
        options: CallOptions | None = None,
        pacer: Pacer | None = None,
    ) -> tuple[Exchange[Req, Res], Coroutine[Any, Any, Res]]:
        """Start a call of *endpoint*: every attempt paced, retried under the policy.

        The one request path of the client; each resource method is a thin use of it.
        Not a coroutine itself: the caller awaits the retrier directly, one coroutine
        fewer on the path every answer travels.

        Args:
            endpoint: What to call.
            request: The call's request, as *endpoint* builds it.
            options: From :meth:`call_options`; the client's when None.
            pacer: Paces every attempt; the client's own when None.

        Returns:
            The exchange, which counts the attempts and keeps the last answer, and the
            call to await for the result.
        """
        exchange = Exchange(
            self,
            endpoint,
            request,
            endpoint.build(self._config.base_url, request),
            self._pacer if pacer is None else pacer,
        )
        calling = self._retrier.run(exchange, self._defaults if options is None else options)
        return exchange, calling


@attrs.define
class Exchange(Generic[Req, Res]):
    """The attempts of one call, which the retrier runs as its ``Attempt``.

    Per attempt, the retrier calls ``send``, awaits it and hands the answer to ``finish``;
    a 429 goes to ``rate_limited``, which the pacer waits out.

    One small object per call rather than a closure, which would cost a cell per
    captured name (they add up, and wake the garbage collector, in a bulk job).
    """

    client: KirimClient
    endpoint: Endpoint[Req, Res]
    request: Req
    outgoing: OutgoingRequest
    pacer: Pacer
    attempts: int = 0
    """Attempts sent: one waiting for its turn at the pacer counts once it goes out."""
    last: RawResponse | None = None
    ticket: Ticket = None
    """The pacer's ticket for the last attempt's turn."""
    sent_at: float = 0.0
    """When the last attempt was sent (read only for an ``on_response`` hook)."""

    def describe(self) -> str:
        """What the call does, for log lines and errors."""
        return self.endpoint.describe(self.request)

    def last_request_id(self) -> str | None:
        """The server's id for the last answer, if there was one; for failure paths."""
        raw = self.last
        if raw is None:
            return None
        return error_from_response(raw.status, raw.reason, raw.headers, raw.body, 0.0).request_id

    def send(self, timeout: float) -> Awaitable[RawResponse]:
        """Start one attempt: the transport's send, after the pacer's turn if it must wait."""
        ticket = self.pacer.try_turn()
        if ticket is None:
            return self._send_in_turn(timeout)
        return self._send_now(ticket, timeout)

    async def _send_in_turn(self, timeout: float) -> RawResponse:
        ticket = await self.pacer.turn()
        return await self._send_now(ticket, timeout)

    def _send_now(self, ticket: Ticket, timeout: float) -> Awaitable[RawResponse]:
        self.attempts += 1
        self.ticket = ticket
        client, outgoing = self.client, self.outgoing
        hooks = client._hooks
        if hooks.on_request is not None:
            hooks.on_request(
                RequestEvent(method=outgoing.method, url=outgoing.url, attempt=self.attempts)
            )
        if hooks.on_response is not None:
            self.sent_at = client._clock()
        return client._transport.send(outgoing, timeout=timeout)

    def finish(self, raw: RawResponse) -> Res:
        """Read an attempt's answer: tell the pacer and the hook, then decipher it."""
        self.last = raw
        client, outgoing = self.client, self.outgoing
        hooks = client._hooks
        self.pacer.learn(self.ticket, raw.status, raw.headers)
        if hooks.on_response is not None:
            hooks.on_response(
                ResponseEvent(
                    method=outgoing.method,
                    url=outgoing.url,
                    attempt=self.attempts,
                    status=raw.status,
                    request_id=raw.headers.get("X-Request-Id"),
                    elapsed=client._clock() - self.sent_at,
                )
            )
        try:
            return self.endpoint.decipher(
                raw.status, raw.reason, raw.headers, raw.body, client._wall_clock()
            )
        except KirimError as error:  # what the server sent is shown; the token never is
            mask_secret(error, client._config.token)
            raise

    def rate_limited(self, error: RateLimitError) -> float:
        """A 429: the pacer closes for it; the seconds until the next attempt's turn."""
        return self.pacer.rate_limited(self.ticket, error)
