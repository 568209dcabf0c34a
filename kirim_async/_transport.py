"""The HTTP transport: the only module that imports aiohttp's client.

It sends an :class:`~kirim_async._sansio.OutgoingRequest` and returns the raw answer,
turning every aiohttp failure into an :class:`~kirim_async.errors.APIConnectionError`
that says whether the request may have reached the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import attrs

from ._config import DEFAULT_CONNECTION_LIMIT, DEFAULT_MAX_RESPONSE_BYTES
from ._sansio import OutgoingRequest
from .errors import (
    PROXY_CREDENTIALS_HINT,
    APIConnectionError,
    APITimeoutError,
    InvalidParameterError,
    MalformedResponseError,
    ProxyError,
)

__all__ = ["AIOHTTP_VERSION", "RawResponse", "Transport"]

AIOHTTP_VERSION = aiohttp.__version__

# Connecting failed, so nothing can have reached the server: plainly safe to retry.
_NOT_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)


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
    _instance: Transport, attribute: attrs.Attribute[Any], value: aiohttp.ClientSession | None
) -> None:
    # Either would fail every request with aiohttp's bare RuntimeError or ValueError.
    if value is None:
        return
    if value.closed:
        raise InvalidParameterError(attribute.name, "is closed", value)
    if value.auth is not None:
        raise InvalidParameterError(
            attribute.name,
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
        default=(), validator=_only_for_own_session
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

    def __attrs_post_init__(self) -> None:
        self._session = self.callers_session
        self._owns_session = self.callers_session is None

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
            raise RuntimeError("the client is closed")
        if self._session is None:
            self._loop = asyncio.get_running_loop()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connection_limit),
                headers=self.headers,
                trace_configs=list(self.trace_configs) or None,
                auto_decompress=True,
            )
        return self._session

    async def send(self, request: OutgoingRequest, *, timeout: float) -> RawResponse:
        """Send *request* and read the whole answer within *timeout* seconds.

        Raises:
            APITimeoutError: No complete answer within *timeout*.
            APIConnectionError: The connection failed or broke.
            MalformedResponseError: The body is longer than the configured cap.
        """
        session = self._session if self._session is not None else self._open()
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise RuntimeError(
                "this client's connection pool belongs to the event loop it first sent "
                "in; make a client inside each asyncio.run() (or keep to one loop)"
            )
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
            )
            try:
                length = response.content_length
                if length is not None and length <= self.max_response_bytes:
                    body = await response.read()
                else:
                    body = await self._read_capped(response, length)
            finally:
                response.release()
            return RawResponse(response.status, response.reason or "", response.headers, body)
        except aiohttp.ClientHttpProxyError as exc:
            # Its str() shows the proxy's URL with any password in it: not raised from.
            raise ProxyError(
                f"the proxy refused to connect to {request.url}: {exc.status} {exc.message}"
                + (f" ({PROXY_CREDENTIALS_HINT})" if exc.status == 407 else ""),
                proxy_status=exc.status,
            ) from None
        except aiohttp.ClientProxyConnectionError as exc:
            raise ProxyError(f"could not connect to the proxy for {request.url}: {exc}") from exc
        except _NOT_SENT as exc:
            error_class = (
                APITimeoutError if isinstance(exc, asyncio.TimeoutError) else APIConnectionError
            )
            raise error_class(
                f"could not connect to {request.url}: {exc}", request_may_have_been_sent=False
            ) from exc
        except asyncio.TimeoutError as exc:
            raise APITimeoutError(
                f"no complete answer from {request.url} within {timeout:g}s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"connection to {request.url} failed: {type(exc).__name__}: {exc}"
            ) from exc

    async def _read_capped(self, response: aiohttp.ClientResponse, length: int | None) -> bytes:
        """Read a body of unknown length up to the cap; refuse one announced as longer."""
        cap = self.max_response_bytes
        if length is not None:
            raise MalformedResponseError(
                f"response body of {length} bytes exceeds the {cap}-byte limit",
                status=response.status,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > cap:
                raise MalformedResponseError(
                    f"response body exceeds the {cap}-byte limit", status=response.status
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the session if this transport opened it; a caller's session stays open."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
