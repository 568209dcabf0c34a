"""Observability hooks: what the client reports about each request, answer and retry."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ._validators import hook_function
from .errors import KirimError

__all__ = ["Hooks", "RequestEvent", "ResponseEvent", "RetryEvent"]


@attrs.frozen(kw_only=True)
class RequestEvent:
    """A request is about to be sent (once per attempt)."""

    method: str
    url: str
    attempt: int


@attrs.frozen(kw_only=True)
class ResponseEvent:
    """An answer arrived (any status), before it is deciphered."""

    method: str
    url: str
    attempt: int
    status: int
    request_id: str | None
    elapsed: float


@attrs.frozen(kw_only=True)
class RetryEvent:
    """An attempt failed and the call will try again after ``wait`` seconds.

    A 429 is waited out at the client's pacer (a job's too): ``wait`` is then the
    gate's pause, and the retry may wait longer for its paced turn.
    """

    attempt: int
    wait: float
    error: KirimError
    request_id: str | None


_hook = attrs.validators.optional(hook_function)


@attrs.frozen(kw_only=True)
class Hooks:
    """Callbacks for request, response and retry events; each is optional.

    They run inline on the event loop: keep them quick and do not raise from them.
    """

    on_request: Callable[[RequestEvent], None] | None = attrs.field(default=None, validator=_hook)
    on_response: Callable[[ResponseEvent], None] | None = attrs.field(default=None, validator=_hook)
    on_retry: Callable[[RetryEvent], None] | None = attrs.field(default=None, validator=_hook)
