"""The library's own cattrs converter: requests to JSON-ready dicts, JSON to responses.

Structuring is lenient where the API may grow (unknown keys, unknown colours) and
strict where the contract is clear (types of required fields, RFC 3339 timestamps).
Any mismatch becomes :class:`~kirim_async.errors.MalformedResponseError`.
"""

from __future__ import annotations

import functools
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import cattrs
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter as make_json_converter

from .errors import MalformedResponseError
from .models import COLORS_BY_VALUE, CreateLabel, Label, LabelColor

__all__ = [
    "label_from_envelope",
    "make_converter",
    "parse_rfc3339",
    "request_to_dict",
]

# RFC 3339 section 5.6: date-time = full-date "T" full-time, with a mandatory offset.
# The separator and "Z" may be lower case; fractions may have any number of digits.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


# Python 3.11 reads "Z" and fractions of any length; 3.10's fromisoformat does not.
_FROMISOFORMAT_READS_RFC3339 = sys.version_info >= (3, 11)


@functools.lru_cache(maxsize=1024)  # created_at == updated_at; bulk jobs share milliseconds
def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 date-time into a timezone-aware :class:`datetime`.

    Fractions finer than a microsecond are truncated. A leap second (``:60``) is
    clamped to ``:59.999999``, since :class:`datetime` cannot hold it.

    Raises:
        ValueError: *value* is not an RFC 3339 date-time with an offset.
    """
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    if _FROMISOFORMAT_READS_RFC3339:
        # The regex vouched for the format; the C parser builds the value much faster.
        try:
            return datetime.fromisoformat(value)
        except ValueError:  # a leap second, or a lower-case t or z
            pass
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    sec = int(second)
    if sec == 60:
        sec, micro = 59, 999_999
    if zulu:
        tz = timezone.utc
    else:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    return datetime(int(year), int(month), int(day), int(hour), int(minute), sec, micro, tz)


def _structure_datetime(value: object, _type: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an RFC 3339 string, got {type(value).__name__}")
    return parse_rfc3339(value)


def _structure_str(value: object, _type: object) -> str:
    # cattrs' default would turn 123 into "123"; the contract says string.
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_optional_str(value: object, _type: object) -> str | None:
    # One hook, where cattrs' own would call the str hook through its Optional one.
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string or null, got {type(value).__name__}")


def _structure_color(value: object, _type: object) -> LabelColor | str:
    # The API may add colours before this library knows them: keep those as strings.
    text = _structure_str(value, str)
    return COLORS_BY_VALUE.get(text, text)


def make_converter(*, detailed_validation: bool = False) -> cattrs.Converter:
    """Build a converter configured for the Kirim API.

    Args:
        detailed_validation: Collect every error with its path (slower). The fast
            converter is used on the hot path; the detailed one explains failures.
    """
    conv = make_json_converter(detailed_validation=detailed_validation)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(datetime, _structure_datetime)
    # A predicate hook, so that it wins over the preconf converter's union passthrough.
    color_type = LabelColor | str
    conv.register_structure_hook_func(lambda t: t == color_type, _structure_color)
    optional_str = str | None
    conv.register_structure_hook_func(lambda t: t == optional_str, _structure_optional_str)
    # The member's value read directly: ``.value`` goes through a slow enum descriptor.
    conv.register_unstructure_hook(LabelColor, lambda color: color._value_)
    conv.register_unstructure_hook(
        CreateLabel,
        make_dict_unstructure_fn(CreateLabel, conv, team_id=override(omit_if_default=True)),
    )
    return conv


_FAST = make_converter()
_DETAILED = make_converter(detailed_validation=True)
# The hooks of the hot path, looked up once rather than dispatched on every call.
_unstructure_create_label = _FAST.get_unstructure_hook(CreateLabel)
_structure_label = _FAST.get_structure_hook(Label)


def request_to_dict(request: CreateLabel) -> dict[str, Any]:
    """Return the JSON object the API expects for *request*."""
    result: dict[str, Any] = _unstructure_create_label(request)
    return result


def label_from_envelope(payload: object, *, status: int | None = None, body: bytes = b"") -> Label:
    """Structure a success body ``{"data": {...}, "request_id": "..."}`` into a Label.

    Args:
        payload: The decoded JSON body.
        status: The HTTP status, carried into the error when the body is wrong.
        body: The raw body, of which the error keeps an excerpt.

    Raises:
        MalformedResponseError: The body does not have the documented shape.
    """
    request_id = _request_id_of(payload)
    if not isinstance(payload, dict):
        raise MalformedResponseError("success body is not a JSON object", status=status, body=body)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise MalformedResponseError(
            f"success body does not match the contract: {_explain(data)}",
            status=status,
            request_id=request_id,
            body=body,
        )
    try:
        # The envelope's request_id goes onto the label: one structuring pass, no copy.
        label: Label = _structure_label({**data, "request_id": request_id}, Label)
    except Exception as exc:
        raise MalformedResponseError(
            f"success body does not match the contract: {_explain(data)}",
            status=status,
            request_id=request_id,
            body=body,
        ) from exc
    return label


def _request_id_of(payload: object) -> str | None:
    if isinstance(payload, dict):
        value = payload.get("request_id")
        if isinstance(value, str):
            return value
    return None


def _explain(data: object) -> str:
    """Say which fields are wrong, using the slower converter that keeps paths."""
    if not isinstance(data, dict):
        return f"$.data must be an object, got {type(data).__name__}"
    try:
        _DETAILED.structure(data, Label)
    except Exception as exc:
        return "; ".join(cattrs.transform_error(exc, path="$.data"))
    return "unknown structure error"  # pragma: no cover - the fast path failed first
