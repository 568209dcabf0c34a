"""What a bulk job would send for its items, with no I/O: validation and repeats."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ..errors import InvalidParameterError
from ..models import LABEL_FIELDS, CreateLabel
from ._outcomes import LabelOutcome, OutcomeStatus, SkipReason

__all__ = ["Planner", "to_request"]

_FIELDS = frozenset(LABEL_FIELDS)


def to_request(item: object) -> CreateLabel:
    if isinstance(item, CreateLabel):
        return item
    if isinstance(item, str):
        return CreateLabel(name=item)
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - _FIELDS, key=str)
        if unknown:
            raise InvalidParameterError(
                str(unknown[0]), f"is not a field of a label ({', '.join(LABEL_FIELDS)})", item
            )
        if "name" not in item:
            raise InvalidParameterError("name", "is required", item)
        # None means "not given" for the optional fields; a None name is the validator's.
        optional = {
            key: value for key, value in item.items() if key != "name" and value is not None
        }
        return CreateLabel(name=item["name"], **optional)
    raise InvalidParameterError(
        "item", "must be a CreateLabel, a mapping of its fields, or a name", item
    )


@attrs.define
class Planner:
    """Validates items and spots repeats: what a job would send, with no I/O.

    Args:
        default_team_id: The team of items that name none (the client's).
        dedupe: Whether to skip repeats of an earlier item's (team, name).
    """

    default_team_id: str | None
    dedupe: bool
    # team -> name -> index of its first item: no key object to build per item.
    first_seen: dict[str | None, dict[str, int]] = attrs.field(factory=dict)

    def prepare(self, index: int, item: object) -> CreateLabel | LabelOutcome:
        """The request to send for *item*, or its outcome when nothing is to be sent."""
        try:
            request = to_request(item)
        except InvalidParameterError as error:
            return LabelOutcome(
                index=index, request=item, status=OutcomeStatus.INVALID, error=error
            )
        if self.dedupe:
            team = request.team_in(self.default_team_id)
            names = self.first_seen.get(team)
            if names is None:
                names = self.first_seen[team] = {}
            first = names.setdefault(request.name, index)
            if first != index:
                return LabelOutcome(
                    index=index,
                    request=request,
                    status=OutcomeStatus.SKIPPED,
                    skip_reason=SkipReason.REPEAT,
                    first_index=first,
                )
        return request
