"""Hostile files and command lines: what kirim-labels does with input no one meant to give.

Every case ends with exit status 1 (rows reported) or 2 (one line saying why), never a
traceback, and never a report that says less than the truth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kirim_async import InvalidParameterError, KirimClient, bulk_create_labels
from kirim_async.testing import FakeKirimServer

from .conftest import run_on_its_own_loop
from .test_cli import TOKEN, by_row, kirim_labels, report, run, seed, write


@pytest.fixture
def server() -> Any:
    with FakeKirimServer(token=TOKEN, teams=["team_a"]).running_in_thread() as fake:
        yield fake


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


class TestLoneSurrogates:
    """An escaped lone surrogate is valid JSON, but no UTF-8 text: the row is invalid."""

    LINES = (
        '{"name": "ok", "team_id": "team_a"}\n'
        '{"name": "bad\\ud800", "team_id": "team_a"}\n'
        '{"name": "worse", "team_id": "team_\\udfff"}\n'
        '{"name": "other", "team_id": "team_a", "\\ud800": 1}\n'
        '{"name": "fine"}\n'
    )

    @pytest.mark.parametrize("dry_run", [False, True], ids=["send", "dry-run"])
    def test_the_row_is_reported_invalid_and_the_job_goes_on(
        self, server: FakeKirimServer, tmp_path: Path, dry_run: bool
    ) -> None:
        source = write(tmp_path / "in.jsonl", self.LINES)
        out = tmp_path / "report.jsonl"
        extra = ["--dry-run"] if dry_run else []
        result = seed(server, source, "--report", out, *extra)
        no_traceback(result)
        assert result.returncode == 1
        rows = by_row(report(out))  # every line is JSON that a UTF-8 reader can read
        assert [rows[n]["status"] for n in (2, 3, 4)] == ["invalid"] * 3
        assert rows[2]["name"] == "bad\ud800"  # escaped in the file, read back as it was
        done = "would-create" if dry_run else "created"
        assert rows[1]["status"] == rows[5]["status"] == done

    def test_a_resume_goes_past_the_row(self, server: FakeKirimServer, tmp_path: Path) -> None:
        # Before: every --resume crashed again on the same row.
        source = write(tmp_path / "in.jsonl", self.LINES)
        out = tmp_path / "report.jsonl"
        assert seed(server, source, "--report", out).returncode == 1
        again = seed(server, source, "--resume", out)
        no_traceback(again)
        assert again.returncode == 1
        assert sorted(line["row"] for line in report(out)) == [1, 2, 3, 4, 5]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


class TestDeepNesting:
    def test_an_input_line_is_an_invalid_row(self, server: FakeKirimServer, tmp_path: Path) -> None:
        source = write(
            tmp_path / "in.jsonl",
            f'{{"name": {_nested(10_000)}}}\n{{"name": "ok", "team_id": "team_a"}}\n',
        )
        result = seed(server, source, "--report", tmp_path / "r.jsonl")
        no_traceback(result)
        rows = by_row(report(tmp_path / "r.jsonl"))
        assert rows[1]["error_code"] == "invalid_json"
        assert "nested too deeply" in rows[1]["error"]
        assert rows[2]["status"] == "created"

    def test_a_report_line_makes_it_no_report(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        source = write(tmp_path / "in.csv", "name\nbug\n")
        content = f'{{"row": 2, "status": "created", "x": {_nested(10_000)}}}\n'
        out = write(tmp_path / "report.jsonl", content)
        result = seed(server, source, "--resume", out)
        no_traceback(result)
        assert result.returncode == 2
        assert "line 1 is not a report line" in result.stderr
        assert out.read_text() == content


class TestReportsKept:
    @pytest.mark.parametrize(
        "content",
        [b'{"retries": 3, "timeout": 10}', b"\x00\x01binary\xff", b"just a note"],
        ids=["json-settings", "binary", "text"],
    )
    def test_resume_refuses_a_one_line_file_untouched(
        self, server: FakeKirimServer, tmp_path: Path, content: bytes
    ) -> None:
        # Before: taken for a report whose only line was cut short, emptied, exit 0.
        source = write(tmp_path / "in.csv", "name\nbug\n")
        out = write(tmp_path / "settings.json", content)
        result = seed(server, source, "--resume", out, "-q")
        no_traceback(result)
        assert result.returncode == 2
        assert "line 1 is not a report line" in result.stderr
        assert out.read_bytes() == content
        assert server.stats.requests == 0

    def test_report_refuses_to_replace_a_report(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        source = write(tmp_path / "in.csv", "name\nbug\nfeature\n")
        out = tmp_path / "report.jsonl"
        assert seed(server, source, "--report", out).returncode == 0
        kept = out.read_text()
        again = seed(server, source, "--report", out)
        assert again.returncode == 2
        assert f"--report {out} exists: pass --resume {out}" in again.stderr
        assert "--overwrite" in again.stderr
        assert out.read_text() == kept  # the ids of the labels are still there
        replaced = seed(server, source, "--report", out, "--overwrite")
        assert replaced.returncode == 0
        assert {line["status"] for line in report(out)} == {"exists"}

    def test_an_empty_file_or_a_device_may_be_the_report(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        source = write(tmp_path / "in.csv", "name\nbug\n")
        assert seed(server, source, "--report", write(tmp_path / "r.jsonl", "")).returncode == 0
        assert seed(server, source, "--report", os.devnull).returncode == 0

    def test_a_job_with_rows_not_done_says_how_to_resume(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        source = write(tmp_path / "in.csv", "name,team_id\nbug,team_a\n,team_a\n")
        out = tmp_path / "report.jsonl"
        result = seed(server, source, "--report", out, "--concurrency", "3")
        assert result.returncode == 1
        command = (
            f"kirim-labels seed {source} --base-url {server.url} --concurrency 3 --resume {out}"
        )
        assert f"to send the rows not done again (fix the invalid ones first): {command}" in (
            result.stderr
        )

    def test_a_resumed_report_holds_each_row_once(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        # Before: rows not done got a line per run (invalid ones twice, repeats first
        # "skipped" then "exists").
        source = write(
            tmp_path / "in.csv",
            "name,team_id\nbug,team_a\n,team_a\nbug,team_a\nfeature,team_z\ndocs,\n",
        )
        out = tmp_path / "report.jsonl"
        assert seed(server, source, "--report", out).returncode == 1
        for _ in range(2):
            again = seed(server, source, "--resume", out)
            assert again.returncode == 1
            lines = report(out)
            rows = [line["row"] for line in lines]
            assert sorted(rows) == [2, 3, 4, 5, 6], lines
        assert "will get a new line each" in again.stderr
        assert by_row(lines)[2]["status"] == "created"  # the line of a row done is kept


class TestBadOptions:
    def test_a_token_file_that_is_not_utf8(self, tmp_path: Path) -> None:
        secret = b"\xffkirim_\xfe_secret_bytes"
        token_file = write(tmp_path / "token", secret)
        source = write(tmp_path / "in.csv", "name\nbug\n")
        result = run("seed", source, "--token-file", token_file, token=None)
        no_traceback(result)
        assert result.returncode == 2
        assert "is not UTF-8 text" in result.stderr
        assert "secret_bytes" not in result.stderr

    def test_concurrency_is_bounded(self, tmp_path: Path) -> None:
        source = write(tmp_path / "in.csv", "name\nbug\n")
        result = run("seed", source, "--sandbox", "--concurrency", "2000000")
        assert result.returncode == 2
        assert "--concurrency: must be <= 1000, got 2000000" in result.stderr

    def test_no_option_is_abbreviated(self, tmp_path: Path) -> None:
        source = write(tmp_path / "in.csv", "name\nbug\n")
        result = run("seed", source, "--sandbox", "--rep", tmp_path / "r.jsonl")
        assert result.returncode == 2
        assert "unrecognized arguments: --rep" in result.stderr
        assert not (tmp_path / "r.jsonl").exists()

    def test_a_token_on_the_command_line_is_refused_unseen(self, tmp_path: Path) -> None:
        source = write(tmp_path / "in.csv", "name\nbug\n")
        for words in (["--token", "kirim_secret_value"], ["--token=kirim_secret_value"]):
            result = run("seed", source, *words)
            assert result.returncode == 2
            assert "there is no --token option" in result.stderr
            assert "kirim_secret_value" not in result.stderr + result.stdout

    def test_a_report_that_cannot_be_opened_leaks_no_file(self, tmp_path: Path) -> None:
        source = write(tmp_path / "in.csv", "name\nbug\n")
        result = run(
            "seed",
            source,
            "--sandbox",
            "--report",
            tmp_path / "missing" / "r.jsonl",
            environ={"PYTHONWARNINGS": "always::ResourceWarning", "PYTHONDEVMODE": "1"},
        )
        assert result.returncode == 2
        assert "ResourceWarning" not in result.stderr, result.stderr


class TestLongLines:
    def test_a_line_longer_than_any_row_is_refused_naming_it(self, tmp_path: Path) -> None:
        source = write(tmp_path / "in.jsonl", '{"name": "ok"}\n' + "x" * (1 << 22) + "\n")
        result = run("seed", source, "--dry-run")
        no_traceback(result)
        assert result.returncode == 2
        assert "line 2 is longer than 65536 characters" in result.stderr

    def test_a_file_of_one_endless_line_is_refused(self, tmp_path: Path) -> None:
        source = write(tmp_path / "in.csv", "name," + "x" * (1 << 22))  # no newline at all
        result = run("seed", source, "--dry-run")
        assert result.returncode == 2
        assert "line 1 is longer than 65536 characters" in result.stderr


class TestBlankNames:
    """One rule everywhere: a name that is only whitespace is invalid, shown as given."""

    def test_in_a_call_and_a_bulk_job(self) -> None:
        async def scenario() -> None:
            async with FakeKirimServer(token=TOKEN) as fake:
                async with KirimClient(TOKEN, base_url=fake.url) as client:
                    with pytest.raises(InvalidParameterError, match="must not be blank"):
                        await client.labels.create("   ")
                    result = await bulk_create_labels(client, ["   ", {"name": "\t"}, "ok"])
                assert [o.status.value for o in result.outcomes] == [
                    "invalid",
                    "invalid",
                    "created",
                ]
                assert fake.stats.requests == 1

        run_on_its_own_loop(scenario())

    @pytest.mark.parametrize(
        ("name", "content"),
        [("in.csv", "name,team_id\n   ,team_a\n"), ("in.jsonl", '{"name": "   "}\n')],
    )
    def test_in_a_file(
        self, server: FakeKirimServer, tmp_path: Path, name: str, content: str
    ) -> None:
        out = tmp_path / "r.jsonl"
        result = seed(server, write(tmp_path / name, content), "--report", out)
        assert result.returncode == 1
        (line,) = report(out)
        assert line["status"] == "invalid"
        assert line["error"] == "name: must not be blank (it is only whitespace) (got '   ')"


def test_the_sandbox_reads_teams_from_standard_input(tmp_path: Path) -> None:
    # Before: every row naming a team failed ("No team has this team_id") from stdin only.
    rows = b"name,team_id\nbug,team_x\nfeature,team_y\n"
    result = run("seed", "-", "--sandbox", stdin=rows, token=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.dumps("created") not in result.stderr  # the summary went to stdout
    assert "created" in result.stdout


def test_sigterm_exits_143(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "name\n" + "\n".join(f"l{i}" for i in range(500)))
    out = tmp_path / "r.jsonl"
    with FakeKirimServer(token=TOKEN, latency=0.02).running_in_thread() as fake:
        env = dict(os.environ, KIRIM_API_TOKEN=TOKEN)
        with subprocess.Popen(
            kirim_labels("seed", source, "--base-url", fake.url, "--report", out, "-q"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait for rows finished, not for time
                if out.exists() and len(out.read_text().splitlines()) >= 5:
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 143
            assert proc.stderr is not None
            assert f"--resume {out}" in proc.stderr.read()
