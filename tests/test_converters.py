from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kirim_async import CreateLabel, Label, LabelColor, MalformedResponseError
from kirim_async._converters import (
    label_from_envelope,
    make_converter,
    parse_rfc3339,
    request_to_dict,
)


def envelope(**data_overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "lbl_01HXYZABCDEFGHJKMNPQRSTVWX",
        "object": "label",
        "name": "bug",
        "color": "red",
        "team_id": "team_1",
        "created_at": "2025-01-02T03:04:05Z",
        "updated_at": "2025-01-02T03:04:05.5Z",
    }
    data.update(data_overrides)
    return {"data": {k: v for k, v in data.items() if v is not ...}, "request_id": "req_1"}


class TestRequestToDict:
    """Requests unstructure to exactly the JSON the API expects."""

    def test_omits_team_id_when_none_and_keeps_default_color(self) -> None:
        assert request_to_dict(CreateLabel(name="bug")) == {"name": "bug", "color": "gray"}

    def test_sends_color_as_string_and_team_id_when_given(self) -> None:
        body = request_to_dict(CreateLabel(name="bug", color=LabelColor.SKY, team_id="t"))
        assert body == {"name": "bug", "color": "sky", "team_id": "t"}
        assert type(body["color"]) is str


class TestParseRfc3339:
    """Timestamps parse with Z, offsets and any number of fractional digits."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2025-01-02T03:04:05Z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
            ("2025-01-02t03:04:05z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
            ("2025-01-02 03:04:05Z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
            ("2025-01-02T03:04:05.1Z", datetime(2025, 1, 2, 3, 4, 5, 100000, timezone.utc)),
            (
                "2025-01-02T03:04:05.123456789Z",
                datetime(2025, 1, 2, 3, 4, 5, 123456, timezone.utc),
            ),
            (
                "2025-01-02T03:04:05+05:30",
                datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            ),
            (
                "2025-01-02T03:04:05.25-08:00",
                datetime(2025, 1, 2, 3, 4, 5, 250000, timezone(timedelta(hours=-8))),
            ),
            ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, timezone.utc)),
        ],
    )
    def test_parses(self, text: str, expected: datetime) -> None:
        parsed = parse_rfc3339(text)
        assert parsed == expected
        assert parsed.tzinfo is not None

    @pytest.mark.parametrize(
        "text",
        ["2025-01-02T03:04:05", "2025-01-02", "yesterday", "2025-13-02T03:04:05Z", ""],
    )
    def test_rejects(self, text: str) -> None:
        with pytest.raises(ValueError):  # noqa: PT011 - any ValueError is the contract
            parse_rfc3339(text)

    @given(
        st.datetimes(
            timezones=st.builds(
                lambda minutes: timezone(timedelta(minutes=minutes)),
                st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
            )
        )
    )
    def test_round_trips_isoformat(self, moment: datetime) -> None:
        # RFC 3339 carries fixed offsets with minute precision, hence fixed-offset zones.
        parsed = parse_rfc3339(moment.isoformat())
        assert parsed == moment
        assert parsed.utcoffset() == moment.utcoffset()


class TestLabelFromEnvelope:
    """Success bodies structure leniently where the API may grow, strictly elsewhere."""

    def test_structures_every_field(self) -> None:
        label = label_from_envelope(envelope())
        assert label.id == "lbl_01HXYZABCDEFGHJKMNPQRSTVWX"
        assert label.color is LabelColor.RED
        assert label.created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        assert label.updated_at.microsecond == 500000
        assert label.request_id == "req_1"

    def test_ignores_unknown_keys(self) -> None:
        payload = envelope(archived=False, owner={"id": 1})
        payload["livemode"] = True
        assert label_from_envelope(payload).name == "bug"

    def test_keeps_an_unknown_color(self) -> None:
        assert label_from_envelope(envelope(color="chartreuse")).color == "chartreuse"

    def test_request_id_is_kept_out_of_equality(self) -> None:
        first = label_from_envelope(envelope())
        second = label_from_envelope({**envelope(), "request_id": "req_2"})
        assert first == second
        assert first.request_id != second.request_id

    @pytest.mark.parametrize(
        ("payload", "says"),
        [
            ({"request_id": "req_1"}, "$.data"),
            (envelope(id=123), "$.data.id"),
            (envelope(id=...), "$.data.id"),
            (envelope(created_at="yesterday"), "$.data.created_at"),
            (envelope(updated_at="2025-01-02T03:04:05"), "$.data.updated_at"),
            (envelope(color=None), "$.data.color"),
            ({"data": "label", "request_id": "req_1"}, "$.data"),
        ],
    )
    def test_wrong_shape_raises_malformed_response(self, payload: Any, says: str) -> None:
        with pytest.raises(MalformedResponseError) as info:
            label_from_envelope(payload, status=201, body=b'{"some": "body"}')
        err = info.value
        assert says in err.reason
        assert err.status == 201
        assert err.request_id == "req_1"
        assert err.body_excerpt == '{"some": "body"}'

    def test_request_id_is_text_or_null(self) -> None:
        fast, detailed = make_converter(), make_converter(detailed_validation=True)
        data = envelope()["data"]
        assert fast.structure({**data, "request_id": None}, Label).request_id is None
        assert fast.structure({**data, "request_id": "r"}, Label).request_id == "r"
        with pytest.raises(TypeError, match="string or null"):
            fast.structure({**data, "request_id": 7}, Label)
        with pytest.raises(cattrs.ClassValidationError) as info:
            detailed.structure({**data, "request_id": 7}, Label)
        assert "$.request_id" in cattrs.transform_error(info.value)[0]

    @pytest.mark.parametrize("payload", [[], "text", None, 3])
    def test_non_object_raises_malformed_response(self, payload: Any) -> None:
        with pytest.raises(MalformedResponseError, match="not a JSON object"):
            label_from_envelope(payload)


_colors = st.sampled_from(list(LabelColor))
# A name of whitespace alone is invalid (it is not a name), so it is not generated here.
_names = st.text(min_size=1, max_size=50).filter(lambda name: not name.isspace())
_teams = st.none() | st.text(min_size=1, max_size=64)


@given(name=_names, color=_colors, team_id=_teams)
def test_request_round_trips_through_json_dict(
    name: str, color: LabelColor, team_id: str | None
) -> None:
    request = CreateLabel(name=name, color=color, team_id=team_id)
    body = request_to_dict(request)
    assert CreateLabel(**body) == request
    assert ("team_id" in body) is (team_id is not None)


@given(
    name=_names,
    color=_colors | st.text(min_size=1, max_size=20),
    team_id=st.text(min_size=1, max_size=64),
    created=st.datetimes(timezones=st.just(timezone.utc)),
)
def test_label_structures_what_the_server_sends(
    name: str, color: str, team_id: str, created: datetime
) -> None:
    stamp = created.isoformat().replace("+00:00", "Z")
    data = {
        "id": "lbl_x",
        "object": "label",
        "name": name,
        "color": str(color),
        "team_id": team_id,
        "created_at": stamp,
        "updated_at": stamp,
    }
    label = label_from_envelope({"data": data, "request_id": "req_x"})
    assert label == Label(
        id="lbl_x",
        object="label",
        name=name,
        color=label.color,
        team_id=team_id,
        created_at=created,
        updated_at=created,
    )
    assert str(label.color) == str(color)
