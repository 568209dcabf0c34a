"""The exceptions kirim-async raises.

Every exception the library raises on purpose is a :class:`KirimError`::

    KirimError
    ├── InvalidParameterError      (also a ValueError) bad input, caught before any I/O
    └── MalformedResponseError     a success answer that does not match the contract
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "InvalidParameterError",
    "KirimError",
    "MalformedResponseError",
]

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60

EXCERPT_LIMIT = 200


def shorten(value: object) -> str:
    """Return a repr of *value* short enough for one line of an error message."""
    return _SHORT.repr(value)


def excerpt(body: bytes) -> str:
    """Return the start of a response body as text, for error messages."""
    text = body[:EXCERPT_LIMIT].decode("utf-8", errors="replace")
    return text + ("…" if len(body) > EXCERPT_LIMIT else "")


class KirimError(Exception):
    """Base class of every error kirim-async raises on purpose."""


class InvalidParameterError(KirimError, ValueError):
    """A request or configuration value breaks a rule; raised before anything is sent.

    Attributes:
        field: The name of the offending field, e.g. ``"name"``.
        rule: The rule it breaks, e.g. ``"must be 1-50 characters"``.
        value: The offending value as given.
    """

    def __init__(self, field: str, rule: str, value: Any) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(f"{field}: {rule} (got {shorten(value)})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.rule, self.value))


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
