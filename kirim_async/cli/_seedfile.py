"""Input and output files of the ``kirim-labels`` command: rows in, report lines out.

Rows come from CSV (header row; ``name`` required, ``color`` and ``team_id`` optional;
UTF-8 with or without BOM) or JSON Lines (one object per line). Blank lines are skipped.
Each row keeps the number of its first line, which the report and every message use.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from .._json import stdlib_loads
from .._validators import encodable
from ..bulk import LabelOutcome, OutcomeStatus
from ..errors import APIStatusError, InvalidParameterError
from ..models import LABEL_FIELDS, CreateLabel, effective_team

__all__ = [
    "DONE_STATUSES",
    "InputFileError",
    "PriorReport",
    "Row",
    "Scan",
    "UnreadableRow",
    "compact_report",
    "detect_format",
    "prescan",
    "read_report",
    "read_rows",
    "report_line",
    "row_error",
    "row_status",
    "team_id_problem",
]

Format = Literal["csv", "jsonl"]
COLUMNS = LABEL_FIELDS  # the CSV header names a label's fields
DONE_STATUSES = frozenset({OutcomeStatus.CREATED.value, OutcomeStatus.EXISTS.value})


class InputFileError(Exception):
    """The input cannot be read as a whole: a one-line reason for exit status 2."""


@attrs.frozen
class UnreadableRow:
    """A row that is not a label at all; the bulk helper reports it as invalid.

    ``code`` is the report's ``error_code``: ``invalid_json`` or ``invalid_csv``.
    """

    text: str
    reason: str
    code: str

    def __repr__(self) -> str:
        return repr(self.text)


@attrs.frozen
class Row:
    """One input row: the number of its first line, and the item for the bulk helper.

    ``item`` is a mapping of the label's fields, or an :class:`UnreadableRow` (never a
    bare string, which the bulk helper would take for a name).
    """

    line: int
    item: Mapping[str, Any] | UnreadableRow


def detect_format(path: str, explicit: str | None) -> Format:
    """The input's format: ``--format``, else the file's extension (stdin: CSV)."""
    if explicit is not None:
        return "jsonl" if explicit == "jsonl" else "csv"
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", "") or path == "-":
        return "csv"
    raise InputFileError(
        f"{path}: cannot tell the format from the extension {suffix!r}; "
        "use .csv, .jsonl, or --format"
    )


# Windows tools write UTF-16 by default (Excel's "Unicode Text", PowerShell 5's `>`);
# such a file is named as what it is rather than as bytes that are not UTF-8. (A rarer
# UTF-32 little-endian file is called UTF-16 too: its mark starts with UTF-16's.)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


MAX_LINE_LENGTH = 64 * 1024
"""Characters in one input line at most: a label row, escapes and all, is far shorter."""


def _lines(stream: IO[bytes], source: str) -> Iterator[tuple[int, str]]:
    """Decode *stream* as UTF-8 (a BOM is dropped) into numbered lines, lazily.

    Linear in the input: the pieces of a line that spans chunks are joined once, when
    its end comes. A line longer than :data:`MAX_LINE_LENGTH` is refused.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending: list[str] = []  # the pieces of the line not yet ended
    pending_length = 0
    number = 0
    at_start = True
    while True:
        chunk = stream.read(64 * 1024)
        if at_start and chunk.startswith(_UTF16_BOMS):
            raise InputFileError(f"{source}: is UTF-16 text, not UTF-8; save it as UTF-8")
        at_start = False
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            line = number + 1 + chunk[: max(0, exc.start)].count(b"\n")
            raise InputFileError(
                f"{source}: line {line}: not valid UTF-8 ({exc.reason}); save the file as UTF-8"
            ) from None
        parts = text.split("\n")
        if len(parts) > 1:
            pending.append(parts[0])
            parts[0] = "".join(pending)
            pending = [parts.pop()]
            pending_length = len(pending[0])
            for part in parts:
                number += 1
                _check_length(len(part), number, source)
                yield number, part.rstrip("\r")
        elif text:
            pending.append(text)
            pending_length += len(text)
        _check_length(pending_length, number + 1, source)
        if not chunk:
            rest = "".join(pending)
            if rest:
                yield number + 1, rest.rstrip("\r")
            return


def _check_length(length: int, line: int, source: str) -> None:
    if length > MAX_LINE_LENGTH:
        raise InputFileError(
            f"{source}: line {line} is longer than {MAX_LINE_LENGTH} characters, which no "
            "label row is: is this the right file?"
        )


def read_rows(stream: IO[bytes], fmt: Format, source: str) -> Iterator[Row]:
    """Yield the rows of *stream*, lazily.

    Raises:
        InputFileError: Bytes that are not UTF-8, or a CSV without a ``name`` column.
    """
    lines = _lines(stream, source)
    if fmt == "jsonl":
        yield from _jsonl_rows(lines)
    else:
        yield from _csv_rows(lines, source)


class _RepeatedKeyError(ValueError):
    """A JSON object names a key twice."""


def _object_of_unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would keep the last of two keys; labels cannot be changed once created,
    # so a line that may have meant either value is not guessed at (as a CSV column
    # named twice is not).
    value = dict(pairs)
    if len(value) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKeyError(f"key {key!r} given twice")
            seen.add(key)
    return value


def _jsonl_rows(lines: Iterable[tuple[int, str]]) -> Iterator[Row]:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            value = stdlib_loads(text, object_pairs_hook=_object_of_unique_keys)
        except _RepeatedKeyError as exc:
            yield Row(number, UnreadableRow(text, str(exc), "invalid_json"))
            continue
        except ValueError as exc:
            yield Row(number, UnreadableRow(text, f"not valid JSON: {exc}", "invalid_json"))
            continue
        if isinstance(value, dict):
            yield Row(number, value)
        else:
            yield Row(number, UnreadableRow(text, "not a JSON object", "invalid_json"))


def _csv_rows(lines: Iterable[tuple[int, str]], source: str) -> Iterator[Row]:
    """CSV records as RFC 4180 reads them: a quoted field may hold commas and newlines.

    A record that is not valid CSV, or has more fields than the header, becomes an
    :class:`UnreadableRow` rather than a label made of its pieces.
    """
    last = 0  # the number of the last physical line the reader took
    taken: list[str] = []  # the physical lines of the record being read

    def physical() -> Iterator[str]:
        nonlocal last
        for number, text in lines:
            last = number
            taken.append(text)
            yield text + "\n"

    reader = csv.reader(physical(), strict=True)
    header: list[str] | None = None
    while header is None:
        try:
            values = next(reader, None)
        except csv.Error as exc:
            raise InputFileError(
                f"{source}: line {last}: the header is not valid CSV ({exc})"
            ) from None
        if values is None:
            return
        if not _blank(values):
            header = values
    names = [column.strip() for column in header]
    _check_header(names, header, source)
    while True:
        first = last + 1
        taken.clear()
        try:
            values = next(reader, None)
        except csv.Error as exc:
            where = "" if last <= first else f" over lines {first}-{last}"
            reason = f"not valid CSV{where} ({exc})"
            yield Row(first, UnreadableRow("\n".join(taken), reason, "invalid_csv"))
            continue
        if values is None:
            return
        if _blank(values):
            continue
        if len(values) > len(names):
            reason = (
                f"{len(values)} fields where the header has {len(names)} "
                "(a comma in a name must be quoted)"
            )
            yield Row(first, UnreadableRow("\n".join(taken), reason, "invalid_csv"))
            continue
        yield Row(first, _item_of(dict(zip(names, values, strict=False))))


def _item_of(record: dict[str, str]) -> dict[str, str]:
    """A CSV record as the bulk helper's mapping of a label's fields.

    A blank cell (empty, or spaces only) is a field not given; a blank ``name`` is kept
    as written, and so reported invalid rather than created as an invisible label. ``color``
    and ``team_id`` lose the spaces around them, as the header's names do (``bug, red``
    is as common as ``bug,red``); a name is sent as written.
    """
    item = {}
    for key in COLUMNS:
        if key == "name":  # kept as written, below
            continue
        value = record.get(key, "").strip()
        if value:
            item[key] = value
    name = record.get("name")  # missing when the row is shorter than the header
    if name is not None:
        item["name"] = name  # as written: a blank one is refused, and shown, as it is
    return item


def _header_hint(names: list[str]) -> str:
    """Why a header may lack ``name``: another separator, or capitals (a spreadsheet's)."""
    separators = [mark for mark in (";", "\t", "|") if any(mark in name for name in names)]
    if len(names) == 1 and separators:
        shown = "tabs" if separators[0] == "\t" else repr(separators[0])
        return f"; it looks separated by {shown}: save it with commas"
    if "name" in (name.lower() for name in names):
        return f"; column names are lower case: {', '.join(COLUMNS)}"
    return ""


def _check_header(names: list[str], header: list[str], source: str) -> None:
    """Refuse a header without ``name``, with a column that is not a label's, or a twin.

    Labels cannot be changed once created, so a misspelt ``colour`` column must not be
    skipped quietly (every label would be gray), as JSON Lines refuses unknown keys.
    """
    if "name" not in names:
        raise InputFileError(
            f"{source}: the CSV header has no 'name' column (found: {header})" + _header_hint(names)
        )
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise InputFileError(
            f"{source}: the CSV header has {', '.join(map(repr, unknown))}, which a label "
            f"does not have (its columns: {', '.join(COLUMNS)}); remove or rename it"
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputFileError(f"{source}: the CSV header names {', '.join(map(repr, twice))} twice")


def _blank(values: list[str]) -> bool:
    return not values or (len(values) == 1 and not values[0].strip())


def team_id_problem(team_id: str) -> str | None:
    """The rule *team_id* breaks as a label's ``team_id``, or None when it is valid."""
    try:
        CreateLabel(name="-", team_id=team_id)
    except InvalidParameterError as error:
        return error.rule
    return None


@attrs.frozen
class Scan:
    """What a first pass over an input file found.

    Attributes:
        rows: The rows, blank lines not counted.
        team_ids: The valid team ids that rows name, for the sandbox's organisation.
            A row naming an invalid one is reported invalid and never sent.
        resumed: The rows that an earlier report marks done, which will not be sent.
    """

    rows: int
    team_ids: frozenset[str]
    resumed: int = 0


def prescan(
    path: Path,
    fmt: Format,
    *,
    resumed: Callable[[Row], bool] | None = None,
    data: bytes | None = None,
) -> Scan:
    """Read a whole file once, before sending anything: count rows, find bad bytes.

    Args:
        path: The input file.
        fmt: Its format.
        resumed: Whether a row is done already (:meth:`PriorReport.marks_done`).
        data: The input's bytes, already read (standard input): *path* is not opened.

    Raises:
        InputFileError: The file is missing, unreadable, not UTF-8, or has no ``name``.
    """
    rows = done = 0
    teams: set[str] = set()
    try:
        with path.open("rb") if data is None else io.BytesIO(data) as stream:
            source = str(path) if data is None else "<stdin>"
            for row in read_rows(stream, fmt, source):
                rows += 1
                if resumed is not None and resumed(row):
                    done += 1
                if isinstance(row.item, Mapping) and isinstance(row.item.get("team_id"), str):
                    teams.add(row.item["team_id"])
    except OSError as exc:
        raise InputFileError(f"{path}: {exc.strerror or exc}") from None
    valid_teams = frozenset(t for t in teams if team_id_problem(t) is None)
    return Scan(rows=rows, team_ids=valid_teams, resumed=done)


def _team_of(outcome: LabelOutcome, default_team_id: str | None) -> object:
    if outcome.label is not None:
        return outcome.label.team_id  # the team the server put it in
    request = outcome.request
    team = getattr(request, "team_id", None)
    if team is None and isinstance(request, Mapping):
        team = request.get("team_id")
    return effective_team(team, default_team_id)


def _name_of(outcome: LabelOutcome) -> object:
    request = outcome.request
    if isinstance(request, UnreadableRow):
        return None
    name = getattr(request, "name", None)
    if name is None and isinstance(request, Mapping):
        name = request.get("name")
    return name


def row_status(outcome: LabelOutcome, *, dry_run: bool = False) -> str:
    """The status a row is reported and counted under (``would-create`` in a dry run)."""
    if dry_run and outcome.status is OutcomeStatus.CREATED:
        return "would-create"
    return outcome.status.value


def report_line(
    row: int,
    outcome: LabelOutcome,
    status: str,
    *,
    first_row: int | None = None,
    default_team_id: str | None = None,
) -> str:
    """One JSON Lines report entry for the row on line *row*: what became of it.

    Its ``team_id`` is the team the label is in, else the one the row was (or would
    be) sent to: its own, or *default_team_id* (``--team-id``). It never holds the
    token: errors' messages do not carry it.
    """
    code, message = row_error(outcome)
    if isinstance(outcome.request, UnreadableRow):
        message = f"line {row}: {message}"
    entry: dict[str, Any] = {
        "row": row,
        "name": _name_of(outcome),
        "team_id": _team_of(outcome, default_team_id),
        "status": status,
        "label_id": outcome.label.id if outcome.label else None,
        "error_code": code,
        "error": message,
        "request_id": outcome.request_id,
        "attempts": outcome.attempts,
    }
    if outcome.may_exist:
        entry["may_exist"] = True
    if outcome.exists_reason:
        entry["exists_reason"] = outcome.exists_reason.value
    if outcome.skip_reason:
        entry["skip_reason"] = outcome.skip_reason.value
    if first_row is not None:
        entry["first_row"] = first_row
    line = json.dumps(entry, ensure_ascii=False, default=str)
    if not line.isascii() and not encodable(line):
        # A lone surrogate from an escaped JSON line ("bad\\ud800"): written escaped, so
        # that the report stays UTF-8 and its line says what the row held.
        line = json.dumps(entry, ensure_ascii=True, default=str)
    return line


def row_error(outcome: LabelOutcome) -> tuple[str | None, str | None]:
    """The error code and message a row's outcome is reported with (None, None if ok)."""
    if isinstance(outcome.request, UnreadableRow):
        return outcome.request.code, outcome.request.reason
    error = outcome.error
    return _error_code(error), str(error) if error else None


def _error_code(error: Exception | None) -> str | None:
    if isinstance(error, APIStatusError):
        return error.code or f"http_{error.status}"
    if isinstance(error, InvalidParameterError):
        return f"invalid_{error.field}"
    return type(error).__name__ if error else None


@attrs.frozen
class PriorReport:
    """What an earlier report says, for ``--resume``.

    Attributes:
        done_rows: The rows it marks done (created or exists), with their names and
            teams.
        cut_bytes: The length of a last line cut short (a job killed while writing it):
            :func:`compact_report` drops it, so that no new line is glued to it; its row
            is sent again.
        ends_mid_line: Its last line is a whole entry without a newline, which
            :func:`compact_report` adds.
        found: Whether the file exists (a missing one means the job starts now).
        stale_lines: Lines of rows not done, which a resumed run replaces (see
            :func:`compact_report`).
    """

    done_rows: dict[int, tuple[object, object]]
    cut_bytes: int = 0
    ends_mid_line: bool = False
    found: bool = True
    stale_lines: int = 0
    """Lines of rows not done (invalid, failed, skipped): this run writes them anew."""

    def marks_done(self, row: Row, default_team_id: str | None) -> bool:
        """Whether this report marks *row* done: by the same name, in the same team.

        The row's team is its own, or *default_team_id*. Teams are compared only where
        both are known: a row sent with none went to a single-team organisation's only
        team (a multi-team one refuses it).
        """
        done = self.done_rows.get(row.line)
        if done is None or not isinstance(row.item, Mapping):
            return False
        name, team = done
        row_team = effective_team(row.item.get("team_id"), default_team_id)
        return name == row.item.get("name") and (
            team is None or row_team is None or team == row_team
        )


def read_report(path: Path) -> PriorReport:
    """Read an earlier report (missing: nothing is done yet).

    Raises:
        InputFileError: A whole line is not a report line (the file is not a report);
            only a last line without its newline may be cut short.
    """
    done: dict[int, tuple[object, object]] = {}
    stale = 0
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        return PriorReport(done, found=False)
    except OSError as exc:
        raise InputFileError(f"{path}: {exc.strerror or exc}") from None
    with stream:
        for number, data in enumerate(stream, start=1):
            whole = data.endswith(b"\n")
            if not data.strip():
                continue
            entry = _report_entry(data)
            if entry is None:
                # Only the start of a line that --report wrote may be cut short: a file
                # of one line without its newline (a settings file, say) is no report.
                if not whole and data.startswith(_REPORT_LINE_START):
                    return PriorReport(done, cut_bytes=len(data), stale_lines=stale)
                raise InputFileError(
                    f"{path}: line {number} is not a report line; "
                    "--resume takes a report that --report wrote"
                )
            if entry["status"] in DONE_STATUSES:
                done[entry["row"]] = (entry.get("name"), entry.get("team_id"))
            else:
                stale += 1
            if not whole:
                return PriorReport(done, ends_mid_line=True, stale_lines=stale)
    return PriorReport(done, stale_lines=stale)


_REPORT_LINE_START = b'{"row": '  # how report_line() begins every entry


def compact_report(path: Path, prior: PriorReport) -> None:
    """Rewrite a report to resume so that it keeps only the lines of rows done.

    The rows not done are sent again and get a new line each: without this, a row
    would stand in the report once per run. A line cut short goes too. The new file
    replaces the old one whole (written beside it, then renamed over it), so that a
    crash meanwhile leaves one or the other.

    Raises:
        OSError: The report could not be read, written or replaced.
    """
    if not (prior.stale_lines or prior.cut_bytes or prior.ends_mid_line):
        return
    temporary = path.with_name(f".{path.name}.kirim-resume")
    with path.open("rb") as old, temporary.open("wb") as new:
        for data in old:
            entry = _report_entry(data)
            if entry is not None and entry["status"] in DONE_STATUSES:
                new.write(data if data.endswith(b"\n") else data + b"\n")
        new.flush()
        os.fsync(new.fileno())
    shutil.copymode(path, temporary)
    os.replace(temporary, path)


def _report_entry(data: bytes) -> dict[str, Any] | None:
    """A report line's entry: an object with an integer ``row`` and a ``status``."""
    try:
        entry = stdlib_loads(data)
    except ValueError:  # JSON, nesting or UTF-8 (UnicodeDecodeError is a ValueError)
        return None
    if (
        isinstance(entry, dict)
        and type(entry.get("row")) is int
        and isinstance(entry.get("status"), str)
    ):
        return entry
    return None
