"""Client configuration: frozen, validated values and their defaults."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import time
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

TOKEN_ENV = "KIRIM_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
BASE_URL_ENV = "KIRIM_BASE_URL"


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how long to wait before trying a failed request again.

    Args:
        max_retries: Retries after the first attempt; 0 disables retrying.
        initial_wait: The first exponential wait, in seconds (doubled each retry).
        max_wait: The cap on exponential waits.
        max_retry_after: A ``Retry-After`` longer than this is not slept on: the
            ``RateLimitError`` is raised at once with its ``retry_after``.
    """

    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, validator=count)
    initial_wait: float = attrs.field(default=DEFAULT_INITIAL_WAIT, validator=non_negative)
    max_wait: float = attrs.field(default=DEFAULT_MAX_WAIT, validator=non_negative)
    max_retry_after: float = attrs.field(default=DEFAULT_MAX_RETRY_AFTER, validator=non_negative)


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


def normalize_base_url(base_url: str, *, allow_insecure_http: bool, field: str = "base_url") -> str:
    """Check a base URL and strip its trailing slash; errors name *field*.

    Raises:
        InvalidParameterError: Not an absolute http(s) URL; with whitespace or control
            characters; with credentials (masked in the error), a query or a fragment;
            or plain ``http://`` to a host that is not loopback without
            ``allow_insecure_http``.
    """
    shown = _USER_INFO.sub("//***@", base_url) if isinstance(base_url, str) else base_url
    parts = _split(base_url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError(field, "must be an absolute http(s) URL", shown)
    if _WHITESPACE_OR_CONTROL.search(base_url):
        raise InvalidParameterError(
            field, "must not contain whitespace or control characters", shown
        )
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
    """Per-call overrides of the client's timeout, retries and deadline, validated."""

    timeout: float = attrs.field(validator=positive)
    max_retries: int = attrs.field(validator=count)
    deadline: float | None = attrs.field(validator=attrs.validators.optional(positive))


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
    url, field = base_url, "base_url"
    if not url:  # an error in the environment's URL names the variable to fix
        url, field = env.get(BASE_URL_ENV) or DEFAULT_BASE_URL, BASE_URL_ENV
    return ClientConfig(
        token=token if token is not None else env.get(TOKEN_ENV, ""),
        base_url=normalize_base_url(url, allow_insecure_http=allow_insecure_http, field=field),
        **options,
    )
