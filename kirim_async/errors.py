"""The exceptions kirim-async raises.

Every exception the library raises on purpose is a :class:`KirimError`::

    KirimError
    ├── InvalidParameterError        bad input, caught before any I/O (also a ValueError)
    ├── MalformedResponseError       an answer that does not match the API contract
    ├── BulkError                    a bulk job left items not done (``raise_for_failures``)
    ├── APIConnectionError           no answer: connection refused, reset or cut short
    │   ├── APITimeoutError          no answer in time
    │   │   └── PoolTimeoutError     no pooled connection came free in time: nothing sent
    │   ├── ClientClosedError        the client was closed (also a RuntimeError)
    │   └── ProxyError               the proxy could not be reached, or refused the tunnel
    └── APIStatusError               an error answer; the HTTP status picks the class
        ├── InvalidRequestError          400, 422
        │   └── DuplicateLabelError      the name is taken in that team
        ├── AuthenticationError          401
        ├── PermissionDeniedError        403
        ├── NotFoundError                404
        ├── RateLimitError               429 (see ``retry_after``)
        └── ServerError                  5xx

Any other status (a 3xx, since redirects are not followed, or an unlisted 4xx) is a
plain :class:`APIStatusError`.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing only: errors sit below every other module
    from .bulk import BulkResult

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BulkError",
    "ClientClosedError",
    "DuplicateLabelError",
    "InvalidParameterError",
    "InvalidRequestError",
    "KirimError",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolTimeoutError",
    "ProxyError",
    "RateLimitError",
    "ServerError",
]

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60

EXCERPT_LIMIT = 200

PROXY_CREDENTIALS_HINT = "check the user and password in the proxy's URL"
"""Said of a proxy's 407, whether it refused a tunnel or answered a forwarded request."""


def shorten(value: object) -> str:
    """Return a repr of *value* short enough for one line of an error message."""
    return _SHORT.repr(value)


def excerpt(body: bytes) -> str:
    """Return the start of a response body as text, for error messages."""
    text = body[:EXCERPT_LIMIT].decode("utf-8", errors="replace")
    return text + ("…" if len(body) > EXCERPT_LIMIT else "")


def _restore(cls: type[KirimError], args: tuple[Any, ...], state: dict[str, Any]) -> KirimError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class KirimError(Exception):
    """Base class of every error kirim-async raises on purpose.

    Attributes:
        attempts: How many attempts the call made before giving up with this error.
        after_ambiguous_attempt: True when an earlier attempt of the same call may have
            acted on the request anyway (it timed out, lost its connection after
            sending, or met a 5xx): a create that ends in this error may still have
            created its label. (Whether the last attempt itself may have: a
            ``ServerError``, or an ``APIConnectionError`` whose
            ``request_may_have_been_sent`` is true.)
    """

    attempts: int = 1
    after_ambiguous_attempt: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword arguments, which Exception's default pickling loses.
        return (_restore, (type(self), self.args, self.__dict__))


class InvalidParameterError(KirimError, ValueError):
    """A request or configuration value breaks a rule; raised before anything is sent.

    Attributes:
        field: The name of the offending field, e.g. ``"name"``.
        rule: The rule it breaks, e.g. ``"must be a string of 1-50 characters"``.
        value: The offending value as given.
    """

    def __init__(self, field: str, rule: str, value: Any) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(f"{field}: {rule} (got {shorten(value)})")


class MalformedResponseError(KirimError):
    """The server's answer does not match the API contract.

    Attributes:
        reason: What is wrong with the answer.
        status: The HTTP status of the answer, when there was one.
        request_id: The server's request id, when the body carried one.
        body_excerpt: The start of the body, for diagnosis.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        body: bytes = b"",
    ) -> None:
        self.reason = reason
        self.status = status
        self.request_id = request_id
        self.body_excerpt = excerpt(body)
        parts = [reason]
        if status is not None:
            parts.append(f"status={status}")
        if request_id:
            parts.append(f"request_id={request_id}")
        if body:
            parts.append(f"body={self.body_excerpt!r}")
        super().__init__("; ".join(parts))


class APIConnectionError(KirimError):
    """The request got no usable answer: the connection failed or was cut.

    Attributes:
        request_may_have_been_sent: False only when the connection failed before the
            request left, so that the server cannot have acted on it.
    """

    def __init__(self, message: str, *, request_may_have_been_sent: bool = True) -> None:
        self.request_may_have_been_sent = request_may_have_been_sent
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """No answer came within the timeout (or the call's overall deadline)."""


class PoolTimeoutError(APITimeoutError):
    """Every connection of the client's pool stayed busy for the whole timeout.

    The request never left (``request_may_have_been_sent`` is False): a wait for a
    connection is not a send, so retrying it cannot create anything twice. Raise
    ``connection_limit`` or send fewer requests at once.
    """


class ClientClosedError(APIConnectionError, RuntimeError):
    """The client was closed (:meth:`KirimClient.aclose`) before or while this call ran.

    A call made after ``aclose()`` sends nothing. A call in flight when the client was
    closed may have reached the server: ``request_may_have_been_sent`` says whether.
    It is never retried. Also a ``RuntimeError``, as using a closed resource is.
    """


class ProxyError(APIConnectionError):
    """The HTTP proxy could not be reached, or refused to open a tunnel to the API.

    Nothing reached the API (``request_may_have_been_sent`` is False). A refusal with a
    4xx (407: the proxy wants other credentials; 403: its policy forbids the host) is not
    retried, and stops a bulk job: every other request would meet it too.

    Attributes:
        proxy_status: The status the proxy answered the tunnel with; None when the proxy
            could not be reached.
    """

    def __init__(self, message: str, *, proxy_status: int | None = None) -> None:
        self.proxy_status = proxy_status
        super().__init__(message, request_may_have_been_sent=False)

    @property
    def is_refusal(self) -> bool:
        """Whether the proxy refused for good (a 4xx): trying again cannot help."""
        return self.proxy_status is not None and 400 <= self.proxy_status < 500


class APIStatusError(KirimError):
    """The API answered with an error status.

    Attributes:
        status: The HTTP status.
        code: The error's ``code``, e.g. ``"invalid_field_value"``, when the body had one.
        type: The error's ``type``, when the body had one.
        message: The error's ``message``, or the HTTP reason when the body had none.
        param: The request field the error is about, when the body named one.
        request_id: The server's id for the request, for support.
        headers: The answer's headers.
        body: The decoded JSON body, or the body's start as text when it was not JSON.
        retry_after: Seconds the server asked to wait (``Retry-After``), when it did.
        reset_after: Seconds until the quota is back, when the answer's rate-limit
            headers show it spent (``X-RateLimit-Remaining: 0`` with its reset, as
            GitHub answers; the IETF draft's ``RateLimit: ...;r=0;t=T``); read for a
            429 only.
    """

    def __init__(
        self,
        *,
        status: int,
        message: str,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        retry_after: float | None = None,
        reset_after: float | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.param = param
        self.request_id = request_id
        self.headers: Mapping[str, str] = dict(headers or {})
        self.body = body
        self.retry_after = retry_after
        self.reset_after = reset_after
        super().__init__(self._one_line())

    @property
    def named_wait(self) -> float | None:
        """Seconds the server named to wait: ``retry_after``, else ``reset_after``.

        ``Retry-After`` wins over the hint headers (as the IETF draft says); None when
        the answer named neither.
        """
        return self.retry_after if self.retry_after is not None else self.reset_after

    def _one_line(self) -> str:
        head = f"{self.status} {self.code}" if self.code else str(self.status)
        details = [
            f"{key}={value}"
            for key, value in (
                ("param", self.param),
                ("request_id", self.request_id),
                ("retry_after", self.retry_after),
                ("reset_after", self.reset_after),
            )
            if value is not None
        ]
        tail = f" ({', '.join(details)})" if details else ""
        return f"{head}: {self.message}{tail}"


class InvalidRequestError(APIStatusError):
    """400 or 422: the API rejected the request's content."""


class DuplicateLabelError(InvalidRequestError):
    """The label's name is already taken in its team.

    With ``after_ambiguous_attempt`` set, the name may be taken by this very call: an
    earlier attempt of it may have created the label.
    """


class AuthenticationError(APIStatusError):
    """401: the token is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the token may not do this."""


class NotFoundError(APIStatusError):
    """404: the endpoint or resource does not exist."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``named_wait`` says when to try again, if the API said.

    ``retry_after`` holds a ``Retry-After``; ``reset_after`` the reset of a quota the
    rate-limit headers show spent.
    """


class ServerError(APIStatusError):
    """5xx: the API (or a proxy in front of it) failed."""


class BulkError(KirimError):
    """Raised by :meth:`BulkResult.raise_for_failures`; ``result`` holds every outcome."""

    def __init__(self, result: BulkResult) -> None:
        self.result = result
        problems = [o for o in result.outcomes if not o.is_ok]
        first = problems[0] if problems else None
        summary = ", ".join(f"{n} {s}" for s, n in result.counts.items() if n)
        detail = f"; first: item {first.index} {first.status}: {first.error}" if first else ""
        super().__init__(
            f"{len(problems)} of {len(result.outcomes)} items not done ({summary}){detail}"
        )


SECRET_MIN_LENGTH = 8
"""Shorter secrets are not searched for in what a server sends: too likely to be words."""
_MASK = "***"
_MASK_DEPTH = 64


def _masked(value: Any, secret: str, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value.replace(secret, _MASK)
    if isinstance(value, bytes):
        return value.replace(secret.encode(), _MASK.encode())
    if depth > _MASK_DEPTH:  # a hostile body nested this deep: shown as an excerpt
        return shorten(value).replace(secret, _MASK)
    if isinstance(value, dict):
        return {
            _masked(k, secret, depth + 1): _masked(v, secret, depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_masked(item, secret, depth + 1) for item in value)
    return value


def mask_secret(error: BaseException, secret: str) -> None:
    """Replace *secret* with ``***`` wherever *error* and its causes would show it (internal).

    For answers that echo the token back (a server quoting the ``Authorization`` header
    in its message, a decoder's error keeping the whole document): what the server sent
    is shown in errors, and the token must never be.
    """
    if len(secret) < SECRET_MIN_LENGTH:
        return
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = _masked(current.args, secret)
        for key, value in vars(current).items():
            setattr(current, key, _masked(value, secret))
        current = current.__cause__ or current.__context__


def is_ambiguous(error: KirimError) -> bool:
    """Whether the server may have acted on the attempt that met *error* (internal).

    A timeout, a connection lost after sending, a 5xx, or a success answer whose body
    could not be read leave a create undecided: the label may exist. A connection
    refused before sending, or a 4xx, does not.
    """
    if isinstance(error, APIConnectionError):
        return error.request_may_have_been_sent
    if isinstance(error, MalformedResponseError):
        return not 400 <= (error.status or 0) < 500
    return isinstance(error, ServerError)
