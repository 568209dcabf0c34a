from __future__ import annotations

import pickle

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kirim_async import CreateLabel, InvalidParameterError, KirimError, LabelColor
from kirim_async._sansio import build_create_label


class TestCreateLabel:
    """CreateLabel enforces the API's rules when built, before any I/O."""

    def test_defaults_to_gray_without_team(self) -> None:
        request = CreateLabel(name="bug")
        assert request.color is LabelColor.GRAY
        assert request.team_id is None

    @pytest.mark.parametrize("color", ["red", LabelColor.RED])
    def test_color_accepts_enum_or_its_value(self, color: str | LabelColor) -> None:
        assert CreateLabel(name="bug", color=color).color is LabelColor.RED

    @pytest.mark.parametrize("name", ["x", "x" * 50, "ünïcødé 🏷", " padded "])
    def test_accepts_names_of_1_to_50_characters(self, name: str) -> None:
        assert CreateLabel(name=name).name == name

    @pytest.mark.parametrize(
        ("kwargs", "field", "rule"),
        [
            ({"name": ""}, "name", "1-50 characters"),
            ({"name": "x" * 51}, "name", "1-50 characters"),
            ({"name": 42}, "name", "must be a string"),
            ({"name": None}, "name", "must be a string"),
            ({"name": "ok", "color": "purple"}, "color", "must be one of gray, red"),
            ({"name": "ok", "color": "RED"}, "color", "pink; did you mean 'red'?"),
            ({"name": "ok", "color": " Sky"}, "color", "pink; did you mean 'sky'?"),
            ({"name": "ok", "color": 3}, "color", "must be one of"),
            ({"name": "ok", "team_id": ""}, "team_id", "1-64 characters"),
            ({"name": "ok", "team_id": "t" * 65}, "team_id", "1-64 characters"),
            ({"name": "ok", "team_id": 7}, "team_id", "must be a string"),
            ({"name": "bad\udc80"}, "name", "lone surrogate"),
            ({"name": "ok", "team_id": "t\ud800"}, "team_id", "lone surrogate"),
        ],
    )
    def test_rejects_each_rule_naming_field_rule_and_value(
        self, kwargs: dict[str, object], field: str, rule: str
    ) -> None:
        with pytest.raises(InvalidParameterError) as info:
            CreateLabel(**kwargs)  # type: ignore[arg-type]
        err = info.value
        assert err.field == field
        assert rule in err.rule
        assert ("did you mean" in err.rule) == ("did you mean" in rule)
        assert str(err).startswith(f"{field}: ")
        assert "got " in str(err)

    def test_error_is_both_kirim_error_and_value_error(self) -> None:
        with pytest.raises(InvalidParameterError) as info:
            CreateLabel(name="")
        assert isinstance(info.value, KirimError)
        assert isinstance(info.value, ValueError)

    @given(  # not st.text(), which all but drops surrogates
        st.lists(
            st.characters() | st.sampled_from(["\ud800", "\udc80", "\udfff"]),
            min_size=1,
            max_size=50,
        ).map("".join)
    )
    def test_a_name_it_accepts_can_be_sent(self, name: str) -> None:
        try:
            request = CreateLabel(name=name)
        except InvalidParameterError as error:
            # The only rules it can break: a lone surrogate, or a name of whitespace.
            assert "lone surrogate" in error.rule or name.isspace()  # noqa: PT017
            return
        assert build_create_label("https://api.kirim.chat/v1", request).body

    def test_error_shortens_a_huge_value(self) -> None:
        with pytest.raises(InvalidParameterError) as info:
            CreateLabel(name="x" * 10_000)
        assert len(str(info.value)) < 200

    def test_error_survives_pickling(self) -> None:
        with pytest.raises(InvalidParameterError) as info:
            CreateLabel(name="")
        copy = pickle.loads(pickle.dumps(info.value))
        assert (copy.field, copy.rule, copy.value) == ("name", info.value.rule, "")

    def test_is_frozen(self) -> None:
        request = CreateLabel(name="bug")
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            request.name = "other"  # type: ignore[misc]

    def test_evolve_revalidates(self) -> None:
        with pytest.raises(InvalidParameterError):
            attrs.evolve(CreateLabel(name="bug"), name="")

    def test_color_str_is_its_value(self) -> None:
        assert str(LabelColor.SKY) == "sky"
        assert len(LabelColor) == 13
