"""Client configuration: frozen, validated values and their defaults."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

import attrs

from ._events import Hooks
from ._validators import (
    bearer_token,
    count,
    function,
    instance_of,
    non_negative,
    positive,
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


def normalize_base_url(base_url: str, *, allow_insecure_http: bool) -> str:
    """Check a base URL and strip its trailing slash.

    Raises:
        InvalidParameterError: Not an absolute http(s) URL, or plain ``http://`` to a
            host that is not loopback without ``allow_insecure_http``.
    """
    parts = _split(base_url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError("base_url", "must be an absolute http(s) URL", base_url)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidParameterError(
            "base_url", "must not carry credentials, a query or a fragment", base_url
        )
    if parts.scheme == "http" and not (allow_insecure_http or _is_loopback(parts.hostname)):
        raise InvalidParameterError(
            "base_url",
            "must use https (plain http is allowed for loopback hosts, "
            "or with allow_insecure_http=True)",
            base_url,
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
        default=asyncio.sleep, validator=function, repr=False
    )
    clock: Callable[[], float] = attrs.field(default=time.monotonic, validator=function, repr=False)
    wall_clock: Callable[[], float] = attrs.field(default=time.time, validator=function, repr=False)


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
    url = base_url or env.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return ClientConfig(
        token=token if token is not None else env.get(TOKEN_ENV, ""),
        base_url=normalize_base_url(url, allow_insecure_http=allow_insecure_http),
        **options,
    )
