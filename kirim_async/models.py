"""The values kirim-async sends and receives: attrs classes with no I/O and no JSON.

Requests (:class:`CreateLabel`) are validated strictly when built, so that a bad value
fails before anything is sent. Responses (:class:`Label`) are taken as the server gives
them: unknown colours are kept as plain strings, unknown fields are ignored.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TypeVar

import attrs

from ._validators import text
from .errors import InvalidParameterError

__all__ = ["LABEL_FIELDS", "CreateLabel", "Label", "LabelColor", "effective_team"]

T = TypeVar("T")

NAME_MAX_LENGTH = 50
TEAM_ID_MAX_LENGTH = 64


class LabelColor(str, enum.Enum):
    """The thirteen label colours the API accepts."""

    GRAY = "gray"
    RED = "red"
    ORANGE = "orange"
    AMBER = "amber"
    YELLOW = "yellow"
    LIME = "lime"
    GREEN = "green"
    EMERALD = "emerald"
    TEAL = "teal"
    SKY = "sky"
    BLUE = "blue"
    VIOLET = "violet"
    PINK = "pink"

    def __str__(self) -> str:
        return self.value


_COLOR_NAMES = ", ".join(c.value for c in LabelColor)

COLORS_BY_VALUE: dict[str, LabelColor] = {color.value: color for color in LabelColor}
"""Each colour by its string value: a dict lookup, where ``LabelColor(text)`` is slow."""


# Another spelling of a colour's name, for the "did you mean" hint only.
_SPELLINGS = {"grey": "gray"}


def _not_blank(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    # One rule on every path (a call, a bulk item, a CSV cell, a JSON line): a name of
    # spaces would make a label that looks blank in every list of labels.
    if value.isspace():
        raise InvalidParameterError("name", "must not be blank (it is only whitespace)", value)


def _to_color(value: object) -> LabelColor:
    """Convert a colour given as the enum or its string value; reject anything else."""
    if isinstance(value, LabelColor):
        return value
    color = COLORS_BY_VALUE.get(value) if isinstance(value, str) else None
    if color is None:
        rule = f"must be one of {_COLOR_NAMES}"
        guess = value.strip().lower() if isinstance(value, str) else None
        if guess is not None:
            guess = _SPELLINGS.get(guess, guess)
        if guess in COLORS_BY_VALUE:
            # Not taken as it: the API is strict, and a request is never changed silently.
            rule += f"; did you mean {guess!r}?"
        raise InvalidParameterError("color", rule, value)
    return color


@attrs.frozen(kw_only=True)
class CreateLabel:
    """The body of ``POST /labels``.

    Args:
        name: The label's name, 1-50 characters, not all whitespace, unique within its
            team.
        color: A :class:`LabelColor` or its string value; gray by default.
        team_id: The team, 1-64 characters. Organisations with several teams must
            give it; single-team organisations may leave it out.

    Raises:
        InvalidParameterError: A field breaks the API's rules.
    """

    name: str = attrs.field(validator=[text(1, NAME_MAX_LENGTH), _not_blank])
    color: LabelColor = attrs.field(default=LabelColor.GRAY, converter=_to_color)
    team_id: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(text(1, TEAM_ID_MAX_LENGTH))
    )

    def team_in(self, default_team_id: str | None) -> str | None:
        """The team this label goes to: its own, else *default_team_id* (the client's)."""
        return effective_team(self.team_id, default_team_id)


def effective_team(team_id: T, default_team_id: str | None) -> T | str | None:
    """A label's team: its own *team_id* when given (not None), else the default one.

    The one home of the rule, for a :class:`CreateLabel` and for a raw row alike (whose
    ``team_id`` may not even be a string yet).
    """
    return default_team_id if team_id is None else team_id


LABEL_FIELDS: tuple[str, ...] = tuple(field.name for field in attrs.fields(CreateLabel))
"""The fields of a label a caller gives, in order: ``("name", "color", "team_id")``."""


@attrs.frozen(kw_only=True)
class Label:
    """A label as the API returns it.

    ``color`` is a :class:`LabelColor`, or the plain string when the server sends a
    colour this version does not know. ``request_id`` is the server's id for the
    request that returned the label; it is kept out of equality and hashing.
    """

    id: str
    object: str
    name: str
    color: LabelColor | str
    team_id: str
    created_at: datetime
    updated_at: datetime
    request_id: str | None = attrs.field(default=None, eq=False)
