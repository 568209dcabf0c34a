"""Client configuration: frozen, validated values and their defaults."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

import attrs

from ._events import Hooks
from ._validators import (
    bearer_token,
    clock_function,
    count,
    instance_of,
    non_negative,
    number,
    positive,
    sleep_function,
    text,
    whole_number,
)
from .errors import InvalidParameterError
from .models import TEAM_ID_MAX_LENGTH

DEFAULT_BASE_URL = "https://api.kirim.chat/v1"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_INITIAL_WAIT = 0.5
DEFAULT_MAX_WAIT = 8.0
DEFAULT_MAX_RETRY_AFTER = 60.0
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20
DEFAULT_CONNECTION_LIMIT = 100

DEFAULT_MAX_RATE_LIMIT_WAIT = 60.0
TOKEN_ENV = "KIRIM_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
BASE_URL_ENV = "KIRIM_BASE_URL"
REDIS_URL_ENV = "KIRIM_REDIS_URL"


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how long to wait before trying a failed request again.

    Args:
        max_retries: Retries after the first attempt; 0 disables retrying.
        initial_wait: The first exponential wait, in seconds (doubled each retry).
        max_wait: The cap on exponential waits.
        max_retry_after: A wait the server names longer than this is not slept on:
            the ``RateLimitError`` is raised at once. The wait is its ``Retry-After``,
            else the reset its rate-limit headers name when they show the quota spent
            (``named_wait``).
        max_rate_limit_wait: Seconds one call may spend waiting out 429s at the
            client's pacer before it raises the ``RateLimitError``; waiting does
            not spend ``max_retries``.
    """

    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, validator=count)
    initial_wait: float = attrs.field(default=DEFAULT_INITIAL_WAIT, validator=non_negative)
    max_wait: float = attrs.field(default=DEFAULT_MAX_WAIT, validator=non_negative)
    max_retry_after: float = attrs.field(default=DEFAULT_MAX_RETRY_AFTER, validator=non_negative)
    max_rate_limit_wait: float = attrs.field(
        default=DEFAULT_MAX_RATE_LIMIT_WAIT, validator=non_negative
    )

    def refuses_wait(self, named: float | None) -> bool:
        """Whether a wait the server *named*, in seconds, is above ``max_retry_after``."""
        return named is not None and named > self.max_retry_after


def _check_token(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not value:
        raise InvalidParameterError(
            attribute.name, f"is required: pass token=... or set {TOKEN_ENV}", value
        )
    bearer_token(instance, attribute, value)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split(url: object) -> SplitResult | None:
    """The parts of *url*, or None if it does not parse (an unclosed [, a bad port)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - read for its check: a port out of range raises
    except ValueError:
        return None
    return parts


# A space copied with the URL would be sent in the path (".../v1 /labels": a 404).
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_USER_INFO = re.compile(r"//[^/?#]*@")


def masked(url: object) -> object:
    """*url* with any credentials in it shown as ``***``, for errors, reprs and logs."""
    return _USER_INFO.sub("//***@", url) if isinstance(url, str) else url


def _refuse_whitespace(url: str, field: str, shown: object) -> None:
    if _WHITESPACE_OR_CONTROL.search(url):
        raise InvalidParameterError(
            field, "must not contain whitespace or control characters", shown
        )


def normalize_base_url(base_url: str, *, allow_insecure_http: bool, field: str = "base_url") -> str:
    """Check a base URL and strip its trailing slash; errors name *field*.

    Raises:
        InvalidParameterError: Not an absolute http(s) URL; with whitespace or control
            characters; with credentials (masked in the error), a query or a fragment;
            or plain ``http://`` to a host that is not loopback without
            ``allow_insecure_http``.
    """
    shown = masked(base_url)
    parts = _split(base_url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError(field, "must be an absolute http(s) URL", shown)
    _refuse_whitespace(base_url, field, shown)
    if parts.query or parts.fragment or parts.username is not None:
        raise InvalidParameterError(
            field, "must not carry credentials, a query or a fragment", shown
        )
    if parts.scheme == "http" and not (allow_insecure_http or _is_loopback(parts.hostname)):
        raise InvalidParameterError(
            field,
            "must use https (plain http is allowed for loopback hosts, "
            "or with allow_insecure_http=True)",
            shown,
        )
    return base_url.rstrip("/")


def check_proxy_url(proxy: object, *, field: str = "proxy") -> str:
    """Check an HTTP proxy's URL, as aiohttp can use it; errors name *field*.

    Credentials in it (``http://user:password@host:port``) are allowed, and masked in
    the error. Plain ``http://`` is fine here: an ``https`` API is reached through a
    tunnel that the proxy cannot read.

    Raises:
        InvalidParameterError: Not an absolute ``http://`` or ``https://`` URL with a
            host (a SOCKS proxy needs a session of the caller's with a SOCKS
            connector); with whitespace or control characters, a path, a query or a
            fragment.
    """
    shown = masked(proxy)
    parts = _split(proxy)
    if parts is None or not parts.hostname:
        raise InvalidParameterError(field, "must be an absolute http(s) URL", shown)
    if parts.scheme not in ("http", "https"):
        raise InvalidParameterError(
            field,
            "must be an http:// or https:// proxy (for SOCKS, pass a session of your own "
            "with a SOCKS connector)",
            shown,
        )
    assert isinstance(proxy, str)  # noqa: S101 - _split parsed it
    _refuse_whitespace(proxy, field, shown)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidParameterError(
            field, "must be the proxy's address alone, with no path, query or fragment", shown
        )
    return proxy


def _proxy(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_proxy_url(value, field=attribute.name)


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for *url*, as curl and pip read it; or None.

    ``https_proxy``/``HTTPS_PROXY`` for an ``https`` URL (``http_proxy`` for ``http``),
    unless ``no_proxy``/``NO_PROXY`` lists the host, read through :mod:`urllib.request`
    (which also asks the system's settings on macOS and Windows). A loopback host (a
    local fake server, the CLI's sandbox) is always reached directly.

    Raises:
        InvalidParameterError: The variable holds no usable proxy URL (the error names
            it, with any credentials masked).
    """
    parts = _split(url)  # a URL that does not parse is refused later, by the client
    if parts is None or not parts.hostname or _is_loopback(parts.hostname):
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    if "://" not in proxy:  # "proxy.corp:3128", which curl and requests read as http://
        proxy = f"http://{proxy}"
    return check_proxy_url(proxy, field=f"{parts.scheme.upper()}_PROXY")


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Everything a client needs that does not change while it runs.

    The token is kept out of ``repr``; build it with :func:`resolve_config`.
    """

    token: str = attrs.field(repr=False, validator=_check_token)
    base_url: str
    team_id: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(text(1, TEAM_ID_MAX_LENGTH))
    )
    timeout: float = attrs.field(default=DEFAULT_TIMEOUT, validator=positive)
    deadline: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive)
    )
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    max_response_bytes: int = attrs.field(default=DEFAULT_MAX_RESPONSE_BYTES, validator=count)
    proxy: str | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_proxy),
        repr=lambda proxy: repr(masked(proxy)),
    )
    # aiohttp reads a limit of 0 as "no limit": 1 is the least a pool can hold.
    connection_limit: int = attrs.field(default=DEFAULT_CONNECTION_LIMIT, validator=whole_number(1))
    hooks: Hooks = attrs.field(factory=Hooks, validator=instance_of(Hooks))
    sleep: Callable[[float], Awaitable[None]] = attrs.field(
        default=asyncio.sleep, validator=sleep_function, repr=False
    )
    clock: Callable[[], float] = attrs.field(
        default=time.monotonic, validator=clock_function, repr=False
    )
    wall_clock: Callable[[], float] = attrs.field(
        default=time.time, validator=clock_function, repr=False
    )


@attrs.frozen(kw_only=True)
class CallOptions:
    """A call's timeout and deadline, and its overrides of the retry policy, validated.

    ``max_retries`` and ``max_rate_limit_wait`` left None are the policy's: the retrier
    reads them there, their one home.
    """

    timeout: float = attrs.field(validator=positive)
    deadline: float | None = attrs.field(validator=attrs.validators.optional(positive))
    max_retries: int | None = attrs.field(default=None, validator=attrs.validators.optional(count))
    # Unlike the client's, a bulk job's calls wait without a limit of their own: inf.
    max_rate_limit_wait: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(number(finite=False))
    )


def chosen_base_url(
    base_url: str | None, environ: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """The base URL to use, unchecked, and the name of where it came from.

    The argument, else ``KIRIM_BASE_URL``, else the API's own; an error in the
    environment's URL names the variable to fix.
    """
    if base_url:
        return base_url, "base_url"
    env = os.environ if environ is None else environ
    return env.get(BASE_URL_ENV) or DEFAULT_BASE_URL, BASE_URL_ENV


def chosen_redis_url(
    redis_url: str | None, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str]:
    """The Redis URL of a shared pacer, unchecked, and the name of where it came from.

    The argument, else ``KIRIM_REDIS_URL``; None (a local pacer) when neither is set.
    """
    if redis_url is not None:
        return redis_url, "redis_url"
    env = os.environ if environ is None else environ
    return env.get(REDIS_URL_ENV) or None, REDIS_URL_ENV


def resolve_config(
    *,
    token: str | None,
    base_url: str | None,
    allow_insecure_http: bool,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> ClientConfig:
    """Fill the token and base URL from arguments, then the environment, then defaults."""
    env = os.environ if environ is None else environ
    if not isinstance(allow_insecure_http, bool):  # "no" and "false" are truthy strings
        raise InvalidParameterError(
            "allow_insecure_http", "must be True or False", allow_insecure_http
        )
    url, field = chosen_base_url(base_url, env)
    return ClientConfig(
        token=token if token is not None else env.get(TOKEN_ENV, ""),
        base_url=normalize_base_url(url, allow_insecure_http=allow_insecure_http, field=field),
        **options,
    )
