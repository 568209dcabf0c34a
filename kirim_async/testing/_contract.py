"""The server side of ``POST /labels``: the token and body checks as the API answers them.

Kept apart from :mod:`kirim_async.models` on purpose: the fake server is an
independent reading of the contract, so a mistake in the client's validation is not
mirrored here and hidden.
"""

from __future__ import annotations

from typing import Any

import attrs

COLORS = frozenset(
    [
        "gray",
        "red",
        "orange",
        "amber",
        "yellow",
        "lime",
        "green",
        "emerald",
        "teal",
        "sky",
        "blue",
        "violet",
        "pink",
    ]
)


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries *token* as a bearer token.

    The scheme is case-insensitive (RFC 9110 section 11.1) and one or more spaces may
    follow it (section 11.4), as real servers read it: ``bearer <token>`` is as good
    as ``Bearer <token>``.
    """
    if authorization is None:
        return False
    scheme, _, credentials = authorization.partition(" ")
    return scheme.lower() == "bearer" and credentials.lstrip(" ") == token


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` value is ``application/json``.

    In any case, and with or without parameters such as ``charset`` (RFC 9110 section
    8.3.1): ``Application/JSON; charset=utf-8`` is JSON too.
    """
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"


@attrs.frozen
class Rejection:
    """A validation failure: the ``error`` object of a 400 (or 422) answer."""

    code: str
    message: str
    param: str | None = None


@attrs.frozen
class ValidBody:
    """A body that passed validation; ``team_id`` is None when it was not sent."""

    name: str
    color: str
    team_id: str | None


def _check_text(body: dict[str, Any], field: str, max_length: int) -> Rejection | None:
    value = body[field]
    if not isinstance(value, str):
        return Rejection("invalid_type", f"{field} must be a string.", field)
    if not value:
        return Rejection("string_too_short", f"{field} must be at least 1 character.", field)
    if len(value) > max_length:
        return Rejection(
            "string_too_long", f"{field} must be at most {max_length} characters.", field
        )
    return None


def validate_body(body: object) -> ValidBody | Rejection:
    """Check a decoded JSON body against the contract; return it or the first failure."""
    if not isinstance(body, dict):
        return Rejection("invalid_body", "The request body must be a JSON object.")
    if "name" not in body:
        return Rejection("missing_field", "name is required.", "name")
    rejection = _check_text(body, "name", 50)
    if rejection is None and "team_id" in body:
        rejection = _check_text(body, "team_id", 64)
    if rejection is not None:
        return rejection
    color = body.get("color", "gray")
    if not isinstance(color, str):
        return Rejection("invalid_type", "color must be a string.", "color")
    if color not in COLORS:
        allowed = ", ".join(sorted(COLORS))
        return Rejection("invalid_enum_value", f"color must be one of: {allowed}.", "color")
    return ValidBody(name=body["name"], color=color, team_id=body.get("team_id"))
