"""attrs validators that raise :class:`~kirim_async.errors.InvalidParameterError`."""

from __future__ import annotations

import inspect
import math
import re
from typing import TYPE_CHECKING, Any

from .errors import InvalidParameterError

if TYPE_CHECKING:
    import attrs

Validator = Any  # attrs' validator protocol: (instance, attribute, value) -> None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A bearer token is visible ASCII (RFC 6750's b64token is a subset): a space, say from
# a copied token, would only be answered 401 about a token that looks right.
_NOT_VISIBLE_ASCII = re.compile(r"[^\x21-\x7e]")
_REDACTED = "<redacted>"


def bearer_token(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A bearer token: a non-empty string of visible ASCII. It never goes into the error."""
    if not isinstance(value, str) or not value:
        raise InvalidParameterError(
            attribute.name, "must be a non-empty string", _REDACTED if value else value
        )
    if _CONTROL.search(value):
        raise InvalidParameterError(
            attribute.name, "must not contain control characters (CR, LF, ...)", _REDACTED
        )
    if _NOT_VISIBLE_ASCII.search(value):
        raise InvalidParameterError(
            attribute.name, "must not contain whitespace or non-ASCII characters", _REDACTED
        )


def text(min_length: int, max_length: int) -> Validator:
    """A ``str`` of *min_length* to *max_length* characters that UTF-8 can encode."""
    rule = f"must be a string of {min_length}-{max_length} characters"

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str) or not min_length <= len(value) <= max_length:
            raise InvalidParameterError(attribute.name, rule, value)
        if not value.isascii() and not encodable(value):
            raise InvalidParameterError(attribute.name, _SURROGATE_RULE, value)

    return validate


# A lone surrogate (from bytes decoded with "surrogateescape", say) cannot go into JSON.
_SURROGATE_RULE = "must be valid Unicode text (it has a lone surrogate, which UTF-8 cannot encode)"


def encodable(value: str) -> bool:
    """Whether UTF-8 can encode *value* (it cannot encode a lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def number(*, above_zero: bool = False, finite: bool = True) -> Validator:
    """An ``int`` or ``float`` >= 0, or > 0 with *above_zero*; finite unless told (not a bool)."""
    rule = f"must be a {'finite ' if finite else ''}number {'>' if above_zero else '>='} 0"

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (finite and not _is_finite(value))
            or not (value > 0 if above_zero else value >= 0)  # "not" also refuses NaN
        ):
            raise InvalidParameterError(attribute.name, rule, value)

    return validate


def _is_finite(value: float) -> bool:
    # An int past float's range (10**400) would raise OverflowError in every sum with a
    # float later on: it is as good as infinite.
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


non_negative = number()
"""A finite ``int`` or ``float`` >= 0 (not a bool)."""
positive = number(above_zero=True)
"""A finite ``int`` or ``float`` > 0 (not a bool)."""


def whole_number(minimum: int) -> Validator:
    """An ``int`` >= *minimum* (not a bool)."""
    rule = f"must be a whole number >= {minimum}"

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidParameterError(attribute.name, rule, value)

    return validate


count = whole_number(0)
"""A whole number >= 0 (not a bool)."""


def one_of(choices: tuple[str, ...] | tuple[int, ...]) -> Validator:
    """One of *choices*, exactly, and of their type (``201.0`` is not the status 201)."""
    rule = f"must be one of {', '.join(map(str, choices))}"
    kinds = tuple({type(choice) for choice in choices})

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kinds) or value not in choices:
            raise InvalidParameterError(attribute.name, rule, value)

    return validate


def function(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Something callable (a hook, a clock, a sleep)."""
    if not callable(value):
        raise InvalidParameterError(attribute.name, "must be callable", value)


def sync_function(why: str) -> Validator:
    """Something callable whose result is not awaited: not an async function.

    *why* ends the rule, after "must not be async: ".
    """
    rule = f"must not be async: {why}"

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        function(instance, attribute, value)
        if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(
            type(value).__call__  # an object with an async __call__
        ):
            raise InvalidParameterError(attribute.name, rule, value)

    return validate


hook_function = sync_function(
    "hooks are called inline and never awaited (start a task from a plain function instead)"
)
"""A hook: callable, called inline, never awaited."""
clock_function = sync_function("a clock is read inline and never awaited")
"""A clock: callable, read inline, never awaited."""


def sleep_function(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Something callable whose result is awaited (a sleep): not a built-in like time.sleep.

    Whether a plain function returns an awaitable shows only when it is called (a lambda
    handing back ``asyncio.sleep(0)`` is a fine sleep); the built-ins that could be passed
    return none, and ``time.sleep`` is the usual slip.
    """
    function(instance, attribute, value)
    if inspect.isbuiltin(value):
        raise InvalidParameterError(
            attribute.name,
            "must return an awaitable, like asyncio.sleep "
            "(a built-in such as time.sleep blocks the event loop instead)",
            value,
        )


def flag(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """``True`` or ``False``: a truthy string such as ``"no"`` is not taken for one."""
    if not isinstance(value, bool):
        raise InvalidParameterError(attribute.name, "must be True or False", value)


def instance_of(kind: type) -> Validator:
    """An instance of *kind*."""
    rule = f"must be a {kind.__name__}"

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kind):
            raise InvalidParameterError(attribute.name, rule, value)

    return validate
