"""Seed files and reports (kirim_async.cli._seedfile), read and written with no job."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kirim_async.bulk import LabelOutcome, OutcomeStatus
from kirim_async.cli._seedfile import (
    COLUMNS,
    Format,
    InputFileError,
    UnreadableRow,
    detect_format,
    prescan,
    read_report,
    read_rows,
    report_line,
)
from kirim_async.models import LABEL_FIELDS, CreateLabel


def rows_of(text: str, fmt: Format = "csv") -> list[tuple[int, object]]:
    stream = io.BytesIO(text.encode())
    return [(row.line, row.item) for row in read_rows(stream, fmt, "in")]


def test_the_csv_columns_are_the_label_s_fields() -> None:
    assert COLUMNS == LABEL_FIELDS == ("name", "color", "team_id")


@pytest.mark.parametrize(
    ("path", "explicit", "fmt"),
    [
        ("a.csv", None, "csv"),
        ("a.JSONL", None, "jsonl"),
        ("a.ndjson", None, "jsonl"),
        ("-", None, "csv"),
        ("a.txt", "jsonl", "jsonl"),
    ],
)
def test_the_format_comes_from_the_option_else_the_extension(
    path: str, explicit: str | None, fmt: str
) -> None:
    assert detect_format(path, explicit) == fmt


def test_an_unknown_extension_without_format_is_an_input_error() -> None:
    with pytest.raises(InputFileError, match="--format"):
        detect_format("labels.txt", None)


def test_csv_rows_keep_the_name_as_written_and_drop_blank_cells() -> None:
    assert rows_of("name,color,team_id\n bug ,red , \nfeature,,team_a\n") == [
        (2, {"name": " bug ", "color": "red"}),
        (3, {"name": "feature", "team_id": "team_a"}),
    ]


def test_a_csv_without_a_name_column_is_an_input_error() -> None:
    with pytest.raises(InputFileError, match="name"):
        rows_of("colour\nred\n")


def test_a_jsonl_line_that_is_not_an_object_is_an_unreadable_row() -> None:
    ((line, item),) = rows_of('["bug"]\n', "jsonl")
    assert line == 1
    assert isinstance(item, UnreadableRow)
    assert item.code == "invalid_json"


def test_bytes_that_are_not_utf8_are_an_input_error() -> None:
    stream = io.BytesIO(b"name\n\xff\xfe\xfa\n")
    with pytest.raises(InputFileError):
        list(read_rows(stream, "csv", "in"))


def test_prescan_counts_rows_and_finds_valid_teams(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    too_long = "t" * 65  # a team id is 1-64 characters
    path.write_text(f"name,team_id\nbug,team_a\n\nfeature,\ndocs,{too_long}\n")
    scan = prescan(path, "csv")
    assert scan.rows == 3
    assert scan.team_ids == frozenset({"team_a"})


def test_a_report_line_reads_back_as_a_done_row(tmp_path: Path) -> None:
    request = CreateLabel(name="bug")
    outcome = LabelOutcome(index=0, request=request, status=OutcomeStatus.EXISTS)
    line = report_line(2, outcome, "exists", default_team_id="team_a")
    entry = json.loads(line)
    assert (entry["row"], entry["name"], entry["team_id"], entry["status"]) == (
        2,
        "bug",
        "team_a",
        "exists",
    )
    report = tmp_path / "report.jsonl"
    report.write_text(line + "\n")
    prior = read_report(report)
    (row,) = read_rows(io.BytesIO(b"name\nbug\n"), "csv", "in")
    assert prior.marks_done(row, "team_a")
    assert not prior.marks_done(row, "team_b")


def test_a_missing_report_marks_nothing_done(tmp_path: Path) -> None:
    prior = read_report(tmp_path / "absent.jsonl")
    (row,) = read_rows(io.BytesIO(b"name\nbug\n"), "csv", "in")
    assert not prior.marks_done(row, None)
