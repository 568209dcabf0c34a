"""The HTTP transport: the only module that imports aiohttp's client.

It sends an :class:`~kirim_async._sansio.OutgoingRequest` and returns the raw answer,
turning every aiohttp failure into an :class:`~kirim_async.errors.APIConnectionError`
that says whether the request may have reached the server.
"""

from __future__ import annotations

import asyncio
import collections.abc
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from ._config import DEFAULT_CONNECTION_LIMIT, DEFAULT_MAX_RESPONSE_BYTES
from ._sansio import OutgoingRequest
from ._validators import instance_of
from .errors import (
    PROXY_CREDENTIALS_HINT,
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    InvalidParameterError,
    KirimError,
    MalformedResponseError,
    PoolTimeoutError,
    ProxyError,
)

__all__ = ["AIOHTTP_VERSION", "BoundedBody", "PoolSlots", "RawResponse", "Transport", "scrubbed"]

AIOHTTP_VERSION = aiohttp.__version__

_CONTENT_ENCODING = "Content-Encoding"

# Connecting failed, so nothing can have reached the server: plainly safe to retry.
_NOT_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)


_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
_REDACTED = "<redacted>"


def scrubbed(error: BaseException) -> BaseException:
    """*error* with the credentials taken out of every ``request_info`` in its chain.

    aiohttp's errors (a protocol error, a bad status line, a header over its size limit)
    carry the request's headers, the ``Authorization`` header among them, in
    ``request_info`` and in ``args``: chained under a :class:`KirimError`, they would
    hand the token to whoever logs the traceback's causes.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        info = getattr(current, "request_info", None)
        if isinstance(info, aiohttp.RequestInfo):
            headers = CIMultiDict(
                (key, _REDACTED if key.lower() in _SECRET_HEADERS else value)
                for key, value in info.headers.items()
            )
            clean = aiohttp.RequestInfo(
                info.url, info.method, CIMultiDictProxy(headers), info.real_url
            )
            current.request_info = clean  # type: ignore[attr-defined]
            current.args = tuple(clean if arg is info else arg for arg in current.args)
        current = current.__cause__ or current.__context__
    return error


# What Accept-Encoding offers (build_headers), and how zlib reads each: gzip's header,
# or zlib's (a raw deflate stream, which some servers send as "deflate", is sniffed).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_MAX_MEMBERS = 100  # gzip members one after another: a body of many is no API's answer


@attrs.define
class BoundedBody:
    """A response body collected as it arrives, decoded, and refused past *cap* bytes.

    The cap holds on the decoded size: zlib is asked for at most what is left of it, so
    a compression bomb (a few hundred KiB inflating to gigabytes) costs about *cap*
    bytes of memory before it is refused. aiohttp's own decoding is off for this
    client's requests (before 3.14 it inflates a whole network read at once).

    Raises (from :meth:`feed` and :meth:`finish`):
        MalformedResponseError: Longer than *cap* decoded; an encoding that was not
            offered; bytes that do not decode; a compressed stream cut short.
    """

    cap: int
    status: int
    encoding: str | None
    _parts: list[bytes] = attrs.field(init=False, factory=list)
    _size: int = attrs.field(init=False, default=0)
    _decoder: Any = attrs.field(init=False, default=None)
    _members: int = attrs.field(init=False, default=0)
    _wbits: int | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        name = (self.encoding or "identity").strip().lower()
        if name != "identity":
            self._wbits = _WBITS.get(name)
            if self._wbits is None:
                self._refuse(f"has Content-Encoding {self.encoding!r}, which was not offered")

    def feed(self, data: bytes) -> None:
        """Take the next bytes off the wire."""
        if self._wbits is None:
            self._keep(data)
            return
        try:
            while data:
                if self._decoder is None:
                    self._decoder = self._new_decoder(data)
                decoder = self._decoder
                self._keep(decoder.decompress(data, self.cap + 1 - self._size))
                data = decoder.unconsumed_tail  # empty unless the cap stopped zlib
                if decoder.eof:  # another gzip member may follow
                    data, self._decoder = decoder.unused_data + data, None
        except zlib.error as exc:
            self._refuse(f"is not valid {self.encoding} ({exc})")

    def finish(self) -> bytes:
        """The whole decoded body, once the wire has nothing more."""
        if self._decoder is not None and not self._decoder.eof:
            self._refuse(f"was cut short: its {self.encoding} stream does not end")
        return b"".join(self._parts)

    def _new_decoder(self, data: bytes) -> Any:
        self._members += 1
        if self._members > _MAX_MEMBERS:
            self._refuse(f"has more than {_MAX_MEMBERS} {self.encoding} members")
        wbits = self._wbits or zlib.MAX_WBITS  # set whenever there is decoding to do
        if wbits == zlib.MAX_WBITS and data[0] & 0x0F != 8:  # no zlib header: raw deflate
            wbits = -zlib.MAX_WBITS
        return zlib.decompressobj(wbits)

    def _keep(self, piece: bytes) -> None:
        self._size += len(piece)
        if self._size > self.cap:
            decoded = " once decoded" if self._wbits is not None else ""
            self._refuse(f"exceeds the {self.cap}-byte limit{decoded}")
        if piece:
            self._parts.append(piece)

    def _refuse(self, why: str) -> NoReturn:
        raise MalformedResponseError(f"response body {why}", status=self.status)


@attrs.define
class PoolSlots:
    """The pool's connections, each held by a request from before it is sent to its answer.

    aiohttp waits for a free connection inside the request, where the wait counts
    against the request's timeout and a timeout cannot be told from one in flight. Here
    the wait comes first, so that running out of time while waiting is a
    :class:`PoolTimeoutError` (nothing sent). Not :class:`asyncio.Semaphore`: closing
    the client must fail every waiter at once with :class:`ClientClosedError`, not
    leave them waiting or cancel them. Waiters are served in order.
    """

    free: int
    _waiters: deque[asyncio.Future[None]] = attrs.field(init=False, factory=deque)

    def take_now(self) -> bool:
        """Take a slot if one is free and nobody waits before this caller."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self, timeout: float) -> None:
        """Wait up to *timeout* seconds for a slot.

        Raises:
            asyncio.TimeoutError: No slot came free in time.
            ClientClosedError: The transport was closed while waiting.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except BaseException:
            # Given a slot in the same turn as the timeout or a cancellation: pass it on.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.give_back()
            raise

    def give_back(self) -> None:
        """Return a slot: to the first caller still waiting, else to the free ones."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # one that timed out or was cancelled is skipped
                waiter.set_result(None)
                return
        self.free += 1

    def fail_waiters(self, error: Callable[[], BaseException]) -> None:
        """Wake every waiter with its own copy of *error*."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error())


@attrs.define  # not frozen, for speed: see _sansio.OutgoingRequest
class RawResponse:
    """An answer as it came off the wire; nothing changes it once it is built."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


def _only_for_own_session(instance: Transport, attribute: attrs.Attribute[Any], value: Any) -> None:
    # A caller's session has its own pool and tracing: quietly ignoring these would
    # leave the caller believing they apply. (An empty list asks for no tracing.)
    if instance.callers_session is not None and value and value != attribute.default:
        raise InvalidParameterError(
            attribute.name,
            "applies only to the session the client opens; configure your session instead",
            value,
        )


def _usable_session(
    _instance: Transport, _attribute: attrs.Attribute[Any], value: aiohttp.ClientSession | None
) -> None:
    # Named "session", as KirimClient takes it. Each of these would fail every request
    # with aiohttp's bare AttributeError, RuntimeError or ValueError.
    if value is None:
        return
    if not isinstance(value, aiohttp.ClientSession):
        raise InvalidParameterError("session", "must be an aiohttp.ClientSession", value)
    if value.closed:
        raise InvalidParameterError("session", "is closed", value)
    if value.auth is not None:
        raise InvalidParameterError(
            "session",
            "has a default auth, which aiohttp refuses to send beside the client's "
            "Authorization header: pass a session without auth",
            value,
        )


@attrs.define(kw_only=True, eq=False)
class Transport:
    """Sends requests over one pooled aiohttp session.

    Args:
        headers: Headers every request carries. The session this transport opens holds
            them as its defaults, so that aiohttp does not merge them per request; a
            caller's session gets them with each request.
        callers_session: A session of the caller's, used as is and never closed here.
        trace_configs: aiohttp trace configs for the session this transport opens.
        connection_limit: The pool's size, for the session this transport opens.
        max_response_bytes: Answers with a longer body are refused unread.
        proxy: An HTTP proxy's URL to send every request through, over any session
            (None: the session's own choice, which is no proxy for the one opened here).

    Raises:
        InvalidParameterError: ``trace_configs`` or a ``connection_limit`` given with a
            caller's session, which they would not apply to; a caller's session that is
            closed or has a default ``auth``.
    """

    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)  # it holds the token
    callers_session: aiohttp.ClientSession | None = attrs.field(
        default=None, validator=_usable_session
    )
    trace_configs: Sequence[aiohttp.TraceConfig] = attrs.field(
        default=(),
        validator=[
            _only_for_own_session,
            attrs.validators.deep_iterable(
                instance_of(aiohttp.TraceConfig), instance_of(collections.abc.Sequence)
            ),
        ],
    )
    connection_limit: int = attrs.field(
        default=DEFAULT_CONNECTION_LIMIT, validator=_only_for_own_session
    )
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    proxy: str | None = attrs.field(default=None, repr=False)  # it may hold a password
    _session: aiohttp.ClientSession | None = attrs.field(init=False)
    _owns_session: bool = attrs.field(init=False)
    _closed: bool = attrs.field(init=False, default=False)
    _last_timeout: aiohttp.ClientTimeout = attrs.field(
        init=False, factory=lambda: aiohttp.ClientTimeout(total=None)
    )
    _loop: asyncio.AbstractEventLoop | None = attrs.field(init=False, default=None)
    _slots: PoolSlots | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._session = self.callers_session
        self._owns_session = self.callers_session is None
        if self._owns_session:
            self._slots = PoolSlots(self.connection_limit)

    @property
    def pool_limit(self) -> int | None:
        """Connections the pool holds at most; None when it has no limit (or no connector)."""
        if self._owns_session:
            return self.connection_limit
        connector = self._session.connector if self._session is not None else None
        return (connector.limit or None) if connector is not None else None  # 0: no limit

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def _open(self) -> aiohttp.ClientSession:
        # Opened lazily, inside a running loop: aiohttp warns about sessions made outside.
        if self._closed:
            raise ClientClosedError(
                "the client is closed: make a new KirimClient", request_may_have_been_sent=False
            )
        if self._session is None:
            self._loop = asyncio.get_running_loop()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connection_limit),
                headers=self.headers,
                trace_configs=list(self.trace_configs) or None,
                auto_decompress=True,
                # An API client keeps no cookies: a server setting one per answer would
                # otherwise grow every later request's Cookie header.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(self, request: OutgoingRequest, *, timeout: float) -> RawResponse:
        """Send *request* and read the whole answer within *timeout* seconds.

        With the pool this transport opened, the wait for a free connection comes first
        and counts against *timeout*.

        Raises:
            PoolTimeoutError: No connection of the pool came free within *timeout*.
            APITimeoutError: No complete answer within *timeout*.
            APIConnectionError: The connection failed or broke.
            ClientClosedError: The transport is closed, or was closed during the call.
            MalformedResponseError: The body, decoded, is longer than the configured cap.
        """
        session = self._session if self._session is not None else self._open()
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise RuntimeError(
                "this client's connection pool belongs to the event loop it first sent "
                "in; make a client inside each asyncio.run() (or keep to one loop)"
            )
        slots = self._slots
        if slots is not None and not slots.take_now():
            timeout = await self._wait_for_slot(slots, request, timeout)
        try:
            return await self._exchange(session, request, timeout)
        finally:
            if slots is not None:
                slots.give_back()

    async def _wait_for_slot(
        self, slots: PoolSlots, request: OutgoingRequest, timeout: float
    ) -> float:
        """Wait for a connection of the pool; return the seconds left of *timeout*."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await slots.take(timeout)
        except asyncio.TimeoutError:
            raise PoolTimeoutError(
                f"{request.method} {request.url} was not sent: all {self.connection_limit} "
                f"connections of the pool stayed busy for {timeout:g}s "
                "(raise connection_limit, or send fewer requests at once)",
                request_may_have_been_sent=False,
            ) from None
        # What is left of the attempt's time, with a floor: a request given no time at
        # all would be sent only to be abandoned.
        return max(timeout - (loop.time() - started), min(timeout, 0.001))

    async def _exchange(
        self, session: aiohttp.ClientSession, request: OutgoingRequest, timeout: float
    ) -> RawResponse:
        """One request and its whole answer, every failure turned into a typed error."""
        if self._last_timeout.total != timeout:
            self._last_timeout = aiohttp.ClientTimeout(total=timeout)
        headers = request.headers
        if not self._owns_session:  # a caller's session lacks this transport's headers
            headers = {**self.headers, **headers} if headers else self.headers
        try:
            # Awaited, not entered with ``async with``: aiohttp's context manager adds a
            # coroutine to the path of every step of the request and three more to leave
            # it. The ``finally`` releases the connection as leaving it would.
            response = await session.request(
                request.method,
                request.url,
                data=request.body,
                headers=headers or None,
                allow_redirects=False,  # the Authorization header must not follow a redirect
                timeout=self._last_timeout,  # most calls share the client's default
                raise_for_status=False,  # over a caller's session's: statuses are ours to read
                proxy=self.proxy,
                # Decoded here, where the cap holds on the decoded size (see BoundedBody).
                auto_decompress=False,
            )
            try:
                length = response.content_length
                encoding = response.headers.get(_CONTENT_ENCODING)
                if encoding is None and length is not None and length <= self.max_response_bytes:
                    body = await response.read()
                else:  # the length of a compressed body says nothing of its decoded size
                    body = await self._read_bounded(response, encoding)
            finally:
                response.release()
            return RawResponse(response.status, response.reason or "", response.headers, body)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            cause: BaseException = scrubbed(exc)
            failure = self._failure(cause, request, timeout)
        except RuntimeError as exc:  # aiohttp's "Session is closed"
            if not self._closed:
                raise
            cause = exc
            failure = self._failure(cause, request, timeout)
        # Raised out here, not in the except clause: a proxy's error must not stay
        # chained even as the context (its str() shows the proxy's password).
        if isinstance(cause, aiohttp.ClientHttpProxyError):
            del cause
            raise failure
        raise failure from cause

    def _failure(self, exc: BaseException, request: OutgoingRequest, timeout: float) -> KirimError:
        """The typed error for what aiohttp raised while the request was made."""
        if self._closed:  # the pool was closed under this request
            return ClientClosedError(
                f"the client was closed while {request.method} {request.url} was in flight",
                request_may_have_been_sent=True,
            )
        if isinstance(exc, aiohttp.ClientHttpProxyError):
            # Its str() shows the proxy's URL with any password in it: not put in the message.
            return ProxyError(
                f"the proxy refused to connect to {request.url}: {exc.status} {exc.message}"
                + (f" ({PROXY_CREDENTIALS_HINT})" if exc.status == 407 else ""),
                proxy_status=exc.status,
            )
        if isinstance(exc, aiohttp.ClientProxyConnectionError):
            return ProxyError(f"could not connect to the proxy for {request.url}: {exc}")
        if isinstance(exc, _NOT_SENT):
            error_class = (
                APITimeoutError if isinstance(exc, asyncio.TimeoutError) else APIConnectionError
            )
            return error_class(
                f"could not connect to {request.url}: {exc}", request_may_have_been_sent=False
            )
        if isinstance(exc, asyncio.TimeoutError):
            return APITimeoutError(f"no complete answer from {request.url} within {timeout:g}s")
        return APIConnectionError(
            f"connection to {request.url} failed: {type(exc).__name__}: {exc}"
        )

    async def _read_bounded(self, response: aiohttp.ClientResponse, encoding: str | None) -> bytes:
        """Read and decode the body up to the cap; refuse one announced as longer."""
        cap = self.max_response_bytes
        length = response.content_length
        if encoding is None and length is not None and length > cap:
            raise MalformedResponseError(
                f"response body of {length} bytes exceeds the {cap}-byte limit",
                status=response.status,
            )
        body = BoundedBody(cap=cap, status=response.status, encoding=encoding)
        async for chunk in response.content.iter_chunked(64 * 1024):
            body.feed(chunk)
        return body.finish()

    async def aclose(self) -> None:
        """Close the session if this transport opened it; a caller's session stays open.

        Calls waiting for a connection end with :class:`ClientClosedError` (nothing
        sent); calls in flight end with it too, saying that they may have been sent.

        Raises:
            RuntimeError: Called from an event loop other than the one the pool was
                opened in, which alone can close its connections.
        """
        loop = self._loop
        if (
            self._session is not None
            and self._owns_session
            and loop is not None
            and loop is not asyncio.get_running_loop()
        ):
            raise RuntimeError(
                "aclose() must be awaited on the event loop this client first sent in "
                "(its connections belong to that loop); close the client before that "
                "loop ends"
            )
        self._closed = True
        if self._slots is not None:
            self._slots.fail_waiters(
                lambda: ClientClosedError(
                    "the client was closed before a connection came free: nothing was sent",
                    request_may_have_been_sent=False,
                )
            )
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
