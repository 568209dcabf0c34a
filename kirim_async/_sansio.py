"""The pure core: build requests and decipher answers, with no I/O.

Nothing here imports aiohttp, so every rule of the API contract can be tested with
plain values (status, headers, body bytes).
"""

from __future__ import annotations

import datetime
import email.utils
import math
import platform
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import attrs

from . import _json
from ._converters import label_from_envelope, request_to_dict
from ._hints import read_reset
from ._version import __version__
from .errors import (
    PROXY_CREDENTIALS_HINT,
    APIStatusError,
    AuthenticationError,
    DuplicateLabelError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    excerpt,
)
from .models import CreateLabel, Label

__all__ = [
    "CREATE_LABEL",
    "Endpoint",
    "OutgoingRequest",
    "build_create_label",
    "build_headers",
    "decipher_label",
    "error_from_response",
    "parse_retry_after",
    "user_agent",
]

Req = TypeVar("Req")
Res = TypeVar("Res")

_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitError,
}


# Not frozen, unlike the models: one is built for every request (and a RawResponse for
# every answer), and a frozen attrs class sets each field through object.__setattr__,
# about 4k instructions per object (benchmarks/RESULTS.md). Both are private, and
# nothing changes one once it is built.
@attrs.define
class OutgoingRequest:
    """One HTTP request, ready to send; nothing changes it once it is built.

    ``headers`` are this request's own; those every request carries (:func:`build_headers`)
    are the transport's. Both stay out of ``repr``.
    """

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def user_agent(aiohttp_version: str) -> str:
    """Return ``kirim-async/<v> aiohttp/<v> python/<v>``."""
    return f"kirim-async/{__version__} aiohttp/{aiohttp_version} python/{platform.python_version()}"


def build_headers(token: str, agent: str) -> dict[str, str]:
    """Return the headers every request carries: the transport's, not a request's."""
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        # What the transport decodes itself, within the body cap (not br or zstd).
        "Accept-Encoding": "gzip, deflate",
        "User-Agent": agent,
    }


def build_create_label(base_url: str, request: CreateLabel) -> OutgoingRequest:
    """Return the ``POST /labels`` request for *request*."""
    return OutgoingRequest(
        "POST", f"{base_url}/labels", _NO_HEADERS, _json.dumps(request_to_dict(request))
    )


def parse_retry_after(value: str | None, now: float, date: str | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` value asks to wait, or None if it is unusable.

    RFC 9110 section 10.2.3 allows delta-seconds or an HTTP-date; the Kirim API may
    send fractional seconds too. A date is read against the answer's own ``Date``
    header when it has one (the server's clock against the server's clock, so a skewed
    local clock does not matter), else against *now*. A date in the past means "now"
    (0).

    Args:
        value: The header's value, or None when absent.
        now: The current wall-clock time as a Unix timestamp (for HTTP-dates).
        date: The answer's ``Date`` header, if any.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        moment = _http_date(text)
        if moment is None:
            return None
        sent = _http_date(date) if date is not None else None
        return max(0.0, moment - (now if sent is None else sent))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _http_date(text: str) -> float | None:
    """The Unix time of an HTTP-date, or None if it is not one.

    RFC 9110 section 5.6.7: a recipient accepts all three formats, IMF-fixdate, the
    obsolete RFC 850 one and asctime's; every one is UTC, though asctime's names no zone.
    """
    try:
        moment = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def decipher_label(
    status: int, reason: str, headers: Mapping[str, str], body: bytes, now: float
) -> Label:
    """Turn the answer to ``POST /labels`` into a :class:`Label` or raise its error.

    Any 2xx is a success (the reference page names no status; 201 and 200 both occur).

    Raises:
        APIStatusError: A subclass chosen by the status, for any non-2xx answer.
        MalformedResponseError: A 2xx whose body is not the documented JSON.
    """
    if 200 <= status < 300:
        try:
            payload = _json.loads(body)
        except _json.JSONDecodeError as exc:
            raise MalformedResponseError(
                "success body is not JSON", status=status, body=body
            ) from exc
        return label_from_envelope(payload, status=status, body=body)
    raise error_from_response(status, reason, headers, body, now)


def _text_field(error: Mapping[str, Any], key: str) -> str | None:
    value = error.get(key)
    return value if isinstance(value, str) else None


def error_from_response(
    status: int, reason: str, headers: Mapping[str, str], body: bytes, now: float
) -> APIStatusError:
    """Build the typed error for a non-2xx answer, whatever its body looks like.

    The status picks the class; ``code`` and ``param`` only refine it (API.md: the
    reference page's error examples are copy-pasted, so ``type`` is not trusted).
    """
    decoded: Any
    try:
        decoded = _json.loads(body) if body else None
    except _json.JSONDecodeError:
        decoded = None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = _text_field(error, "code")
    param = _text_field(error, "param")
    request_id = (
        _text_field(error, "request_id")
        or (_text_field(decoded, "request_id") if isinstance(decoded, dict) else None)
        or headers.get("X-Request-Id")
    )
    message = _text_field(error, "message") or _fallback_message(status, reason, body)
    cls = _error_class(status, code, param)
    return cls(
        status=status,
        message=message,
        code=code,
        type=_text_field(error, "type"),
        param=param,
        request_id=request_id,
        headers=headers,
        body=decoded if decoded is not None else excerpt(body),
        retry_after=parse_retry_after(headers.get("Retry-After"), now, headers.get("Date")),
        reset_after=read_reset(headers, now) if status == 429 else None,
    )


def _fallback_message(status: int, reason: str, body: bytes) -> str:
    text = reason or f"HTTP {status}"
    if 300 <= status < 400:
        return f"{text}: redirects are not followed"
    if status == 404:  # not the API's error format: the path itself is unknown there
        text = f"{text}: the base URL has no /labels endpoint (the API's ends in /v1)"
    if status == 407:  # from a proxy forwarding plain http://, not from the API
        text = f"{text}: {PROXY_CREDENTIALS_HINT}"
    if body:
        return f"{text}; body: {excerpt(body)!r}"
    return f"{text}; empty body"


def _error_class(status: int, code: str | None, param: str | None) -> type[APIStatusError]:
    if status in (400, 422) and code == "invalid_field_value" and param == "name":
        return DuplicateLabelError
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


@attrs.frozen
class Endpoint(Generic[Req, Res]):
    """One endpoint of the API, as the client's request path sees it: no I/O.

    Args:
        build: The HTTP request for a call, from the base URL and the call's request.
        decipher: The call's result from an answer (status, reason, headers, body, and
            the Unix time for ``Retry-After`` dates), or raise its error.
        describe: What a call does, for log lines and errors.
    """

    build: Callable[[str, Req], OutgoingRequest]
    decipher: Callable[[int, str, Mapping[str, str], bytes, float], Res]
    describe: Callable[[Req], str]


def _describe_create_label(request: CreateLabel) -> str:
    return f"create label {request.name!r}"


CREATE_LABEL: Endpoint[CreateLabel, Label] = Endpoint(
    build_create_label, decipher_label, _describe_create_label
)
"""``POST /labels``."""
