"""kirim-labels, run as a subprocess against FakeKirimServer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from kirim_async import ResponseEvent
from kirim_async.cli._progress import Tally
from kirim_async.cli._seedfile import prescan, read_report, read_rows
from kirim_async.pacing import shared_key
from kirim_async.testing import FakeKirimServer, Fault

from .conftest import PROXY_VARIABLES, RecordingProxy, closed_port
from .redis_server import RedisServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOKEN = "tok_cli_SECRET_0451"
PROXY_PASSWORD = "pr0xy_cli_SECRET_77"


@pytest.fixture
def server() -> Iterator[FakeKirimServer]:
    with FakeKirimServer(token=TOKEN).running_in_thread() as fake:
        yield fake


def kirim_labels(*args: str | Path) -> list[str]:
    """The command line that runs kirim-labels with *args* in this interpreter."""
    return [sys.executable, "-m", "kirim_async", *map(str, args)]


def run(
    *args: str | Path,
    token: str | None = TOKEN,
    stdin: bytes | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run kirim-labels with *args*; no KIRIM_ or proxy variable but *token* and *environ*."""
    ours = ("KIRIM_API_TOKEN", "KIRIM_BASE_URL", "KIRIM_REDIS_URL", *PROXY_VARIABLES)
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    env.update(environ or {})
    if token is not None:
        env["KIRIM_API_TOKEN"] = token
    return subprocess.run(
        kirim_labels(*args),
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def seed(server: FakeKirimServer, path: Path, *extra: str | Path, **kw: Any) -> Any:
    return run("seed", path, "--base-url", server.url, *extra, **kw)


def seed_reported(
    server: FakeKirimServer, source: Path, tmp_path: Path, *extra: str | Path, **kw: Any
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """Seed *source* with ``--report`` into *tmp_path*: the result and the report's lines.

    A test may call it again: the report of the last call replaces the one before.
    """
    out = tmp_path / "report.jsonl"
    result = seed(server, source, "--report", out, "--overwrite", *extra, **kw)
    return result, report(out)


def by_row(lines: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Report lines keyed by their row number."""
    return {line["row"]: line for line in lines}


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def report(path: Path) -> list[dict[str, Any]]:
    return json_lines(path.read_text())


def _line(entry: dict[str, Any]) -> str:
    return json.dumps(entry) + "\n"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


class TestHappyPath:
    def test_sandbox_seeds_the_example(self, tmp_path: Path) -> None:
        out = tmp_path / "report.jsonl"
        result = run("seed", EXAMPLES / "labels.csv", "--sandbox", "--report", out, token=None)
        assert result.returncode == 0, result.stderr
        lines = report(out)
        assert len(lines) == 300
        assert {line["status"] for line in lines} == {"created"}
        assert "created          300" in result.stdout
        assert "answered 429" in result.stdout
        # Off a terminal, progress is a line every 2 s; the sandbox's 100/s makes the
        # 300 rows take at least 2.8 s.
        assert "progress: " in result.stderr
        assert "rows/s, created=" in result.stderr

    def test_against_the_standalone_server(self, standalone_server: str, tmp_path: Path) -> None:
        csv = write(tmp_path / "in.csv", "name\nstandalone-1\nstandalone-2\n")
        result = run("seed", csv, "--base-url", standalone_server, token="tok")
        assert result.returncode == 0, result.stderr
        assert "created            2" in result.stdout

    def test_against_a_server(self, server: FakeKirimServer, tmp_path: Path) -> None:
        csv = write(tmp_path / "in.csv", "name,color,team_id\nbug,red,\n\nfeature,,team_default\n")
        result, lines = seed_reported(server, csv, tmp_path)
        assert result.returncode == 0, result.stderr
        assert {(label["name"], label["color"]) for label in server.labels} == {
            ("bug", "red"),
            ("feature", "gray"),
        }
        lines.sort(key=lambda line: line["row"])
        assert [line["row"] for line in lines] == [2, 4]
        first = lines[0]
        assert first["status"] == "created"
        assert first["label_id"].startswith("lbl_")
        assert first["request_id"].startswith("req_")
        assert first["team_id"] == "team_default"
        assert first["attempts"] == 1

    def test_csv_with_bom_and_jsonl_and_stdin(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        bom = write(tmp_path / "bom.csv", "\ufeffname\nalpha\n".encode())
        assert seed(server, bom).returncode == 0
        jsonl = write(tmp_path / "in.jsonl", '{"name": "beta", "color": "sky"}\n\n')
        assert seed(server, jsonl).returncode == 0
        piped = seed(server, Path("-"), "--format", "jsonl", stdin=b'{"name": "gamma"}\n')
        assert piped.returncode == 0, piped.stderr
        assert sorted(label["name"] for label in server.labels) == ["alpha", "beta", "gamma"]

    def test_concurrency_above_the_default_pool(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        names = "\n".join(f"n{i}" for i in range(150))
        result = seed(
            server, write(tmp_path / "in.csv", f"name\n{names}\n"), "--concurrency", "150"
        )
        assert result.returncode == 0, result.stderr
        assert len(server.labels) == 150

    def test_team_id_option_fills_rows_without_one(self, tmp_path: Path) -> None:
        with FakeKirimServer(token=TOKEN, teams=["a", "b"]).running_in_thread() as multi:
            csv = write(tmp_path / "in.csv", "name,team_id\none,\ntwo,b\n")
            result = seed(multi, csv, "--team-id", "a")
            assert result.returncode == 0, result.stdout
            assert {(x["name"], x["team_id"]) for x in multi.labels} == {("one", "a"), ("two", "b")}

    def test_sandbox_reports_a_row_with_a_bad_team_id_and_seeds_the_rest(
        self, tmp_path: Path
    ) -> None:
        # The sandbox's organisation is made of the teams the rows name; an invalid one
        # among them made the fake server refuse to start, and the job exit 2.
        csv = write(tmp_path / "in.csv", f"name,team_id\nok,team_a\nbad,{'t' * 65}\n")
        result = run("seed", csv, "--sandbox", token=None)
        assert result.returncode == 1, result.stderr
        assert "created            1" in result.stdout
        assert "row 3: invalid: team_id: must be a string of 1-64 characters" in result.stdout


def test_live_bar_on_a_terminal(tmp_path: Path) -> None:
    """On a TTY the progress is a tqdm bar with counts and the rate-limited sign."""
    pytest.importorskip("tqdm")
    import fcntl
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    # A new pseudo-terminal is 0x0; a real one has a size, which the bar's width follows.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    try:
        with subprocess.Popen(
            kirim_labels("seed", EXAMPLES / "labels.csv", "--sandbox"),
            stdout=subprocess.DEVNULL,
            stderr=secondary,
        ) as proc:
            os.close(secondary)
            chunks = []
            while True:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # the terminal closes when the command exits
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            assert proc.wait(timeout=60) == 0
    finally:
        os.close(primary)
    screen = b"".join(chunks).decode(errors="replace")
    assert "300/300" in screen
    assert "row/s" in screen
    assert "created=" in screen
    assert "rate-limited" in screen  # the sandbox's 100/s shows the gate at work
    assert "pacing at " in screen  # and the pace the client settled on
    assert "progress: " not in screen  # the bar, not the log lines


class TestRowsThatFail:
    def test_mixed_invalid_rows(self, server: FakeKirimServer, tmp_path: Path) -> None:
        result, lines = seed_reported(server, EXAMPLES / "labels-with-errors.csv", tmp_path)
        assert result.returncode == 1
        rows = by_row(lines)
        assert len(rows) == 9
        assert rows[4]["status"] == "invalid"
        assert rows[4]["error_code"] == "invalid_color"
        assert "crimson" in rows[4]["error"]
        assert rows[5]["error_code"] == "invalid_name"
        assert rows[7]["status"] == "skipped"
        assert rows[7]["first_row"] == 2
        assert "first problems:" in result.stdout
        assert "row 4: invalid" in result.stdout
        assert len(server.labels) == 4

    def test_quiet_still_prints_the_problems(self, server: FakeKirimServer, tmp_path: Path) -> None:
        # Before: -q ("print only errors") printed nothing at all, so a job whose rows
        # all failed exited 1 with no word of why.
        result = seed(server, EXAMPLES / "labels-with-errors.csv", "-q")
        assert result.returncode == 1
        assert result.stdout == ""
        assert "progress:" not in result.stderr
        assert "status        rows" not in result.stderr  # no summary table
        assert "kirim-labels: 4 rows not done (invalid 4); first problems:" in result.stderr
        assert "row 4: invalid: color: must be one of" in result.stderr
        assert "row 7" not in result.stderr  # a repeat of a created row is not a problem

    def test_a_count_of_one_reads_as_one(self, server: FakeKirimServer, tmp_path: Path) -> None:
        # Was: "1 rows not done", "1 rows were not sent", "1 requests".
        invalid = seed(server, write(tmp_path / "one.csv", "name,color\nbug,crimson\n"), "-q")
        assert "kirim-labels: 1 row not done (invalid 1); first problems:" in invalid.stderr
        two = write(tmp_path / "two.csv", "name\na\nb\n")
        refused = seed(server, two, "-q", "--concurrency", "1", token="wrong")
        assert "\n  1 row was not sent\n" in refused.stderr
        assert "2 rows not done (failed 1, skipped 1)" in refused.stderr
        created = seed(server, write(tmp_path / "ok.csv", "name\nfix\n"))
        assert "elapsed" in created.stdout
        assert ", 1 request, 0 answered 429" in created.stdout

    def test_first_problems_are_the_lowest_rows_in_row_order(self, tmp_path: Path) -> None:
        # Row 2 fails on an answer (a 500) after rows 3-13 were found invalid without
        # any I/O. Was: the first ten to finish, in finishing order, so row 2 was not
        # among them.
        long_name = "x" * 51
        csv = write(tmp_path / "in.csv", "name\nbug\n" + f"{long_name}\n" * 11)
        with FakeKirimServer(token=TOKEN, latency=0.2).running_in_thread() as server:
            server.script(Fault.SERVER_ERROR)
            result = seed(server, csv, "--max-retries", "0")
        assert result.returncode == 1
        shown = re.findall(r"^  row (\d+): (\w+)", result.stdout, re.MULTILINE)
        assert shown == [("2", "failed")] + [(str(row), "invalid") for row in range(3, 12)]

    def test_timeout_bounds_each_attempt(self, tmp_path: Path) -> None:
        # The default is 30 s; an API slower than a job can wait for needs less.
        csv = write(tmp_path / "in.csv", "name\nslow\n")
        delayed = {Fault.STORE_THEN_DELAY: 1.0}
        with FakeKirimServer(
            token=TOKEN, faults=delayed, answer_delay=60.0
        ).running_in_thread() as server:
            result, (line,) = seed_reported(
                server, csv, tmp_path, "--timeout", "0.2", "--max-retries", "0"
            )
        assert result.returncode == 1
        assert line["status"] == "failed"
        assert "within 0.2s" in line["error"]
        assert line["may_exist"] is True  # stored before the answer was held back

    def test_quiet_prints_nothing_when_every_row_is_done(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\na\nb\n")
        result = seed(server, csv, "-q")
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

    def test_a_failed_row_that_may_have_been_created_says_so(self, tmp_path: Path) -> None:
        csv = write(tmp_path / "in.csv", "name\nlost\ntaken\n")
        dropping = {Fault.STORE_THEN_DROP: 1.0}  # every label stored, every answer lost
        with FakeKirimServer(token=TOKEN, faults=dropping).running_in_thread() as server:
            result, lines = seed_reported(server, csv, tmp_path, "--max-retries", "0")
            stored = {label["name"] for label in server.labels}
        assert result.returncode == 1
        assert [line["status"] for line in lines] == ["failed", "failed"]
        assert all(line["may_exist"] is True for line in lines)
        assert stored == {"lost", "taken"}  # as the report warns
        assert "(the label may exist: an attempt may have created it)" in result.stdout

    def test_a_row_refused_by_the_server_has_no_may_exist(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\ntaken\n")
        seed(server, csv)
        result, (line,) = seed_reported(server, csv, tmp_path, "--on-duplicate", "error")
        assert result.returncode == 1
        assert line["status"] == "failed"
        assert "may_exist" not in line

    def test_invalid_jsonl_lines(self, server: FakeKirimServer, tmp_path: Path) -> None:
        jsonl = write(
            tmp_path / "in.jsonl",
            '{"name": "ok"}\n{broken\n[1]\n{"title": "x"}\n{"name": null}\n'
            '{"name": "ok-2", "color": null}\n',
        )
        result, lines = seed_reported(server, jsonl, tmp_path)
        assert result.returncode == 1
        rows = by_row(lines)
        statuses = {row: line["status"] for row, line in rows.items()}
        assert statuses == {
            1: "created",
            2: "invalid",
            3: "invalid",
            4: "invalid",
            5: "invalid",
            6: "created",
        }
        assert rows[2]["error_code"] == rows[3]["error_code"] == "invalid_json"
        assert rows[5]["error_code"] == "invalid_name"
        assert "row 3: invalid: not a JSON object" in result.stdout

    def test_a_jsonl_key_given_twice_is_invalid_not_the_last_one_taken(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        # Was: created as "b", since json.loads keeps the last of two keys, though the
        # line may as well have meant "a" (a CSV column named twice exits 2).
        jsonl = write(
            tmp_path / "in.jsonl",
            '{"name": "a", "name": "b"}\n{"name": "c", "color": "red", "color": "sky"}\n'
            '{"name": "d"}\n',
        )
        result, lines = seed_reported(server, jsonl, tmp_path)
        assert result.returncode == 1
        assert [line["status"] for line in lines] == ["invalid", "invalid", "created"]
        assert [line["error_code"] for line in lines[:2]] == ["invalid_json"] * 2
        assert lines[0]["error"] == "line 1: key 'name' given twice"
        assert lines[1]["error"] == "line 2: key 'color' given twice"
        assert [label["name"] for label in server.labels] == ["d"]

    def test_csv_records_are_read_as_rfc_4180_says(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(
            tmp_path / "in.csv",
            "name,color\n"
            '"two\nlines",red\n'  # lines 2-3: one record, its name holds a newline
            '"a ""quoted"", name",blue\n'  # line 4
            '"bad"x,red\n'  # line 5: text after a closing quote
            "Bug, urgent,red\n"  # line 6: an unquoted comma makes a third field
            "after,green\n",  # line 7
        )
        result, lines = seed_reported(server, csv, tmp_path)
        assert result.returncode == 1
        rows = by_row(lines)
        assert {row: line["status"] for row, line in rows.items()} == {
            2: "created",
            4: "created",
            5: "invalid",
            6: "invalid",
            7: "created",
        }
        assert sorted(label["name"] for label in server.labels) == [
            'a "quoted", name',
            "after",
            "two\nlines",
        ]
        assert rows[5]["error_code"] == rows[6]["error_code"] == "invalid_csv"
        assert rows[5]["error"].startswith("line 5: not valid CSV")
        assert "3 fields where the header has 2" in rows[6]["error"]
        assert "row 6: invalid: 3 fields where the header has 2" in result.stdout

    def test_spaces_around_csv_cells(self, tmp_path: Path) -> None:
        # Was: the header's " color" was read as color but a cell's " red" was an
        # invalid colour, and a name of spaces created a label that looks blank.
        csv = write(
            tmp_path / "in.csv",
            "name, color, team_id\n"
            "bug, red , team_a\n"
            "   ,blue,team_a\n"  # line 3: a blank name
            " spaced ,sky,team_a\n",  # a name is sent as written
        )
        with FakeKirimServer(token=TOKEN, teams=["team_a", "team_b"]).running_in_thread() as fake:
            result, lines = seed_reported(fake, csv, tmp_path)
        assert result.returncode == 1
        rows = by_row(lines)
        assert [rows[row]["status"] for row in (2, 3, 4)] == ["created", "invalid", "created"]
        assert rows[3]["error_code"] == "invalid_name"
        assert sorted(
            (label["name"], label["color"], label["team_id"]) for label in fake.labels
        ) == [
            (" spaced ", "sky", "team_a"),
            ("bug", "red", "team_a"),
        ]

    def test_an_unclosed_quote_is_one_invalid_row_naming_its_lines(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(tmp_path / "in.csv", 'name\nfirst\n"never closed\nbug\nfeature\n')
        result, lines = seed_reported(server, csv, tmp_path)
        assert result.returncode == 1
        assert sorted((line["row"], line["status"]) for line in lines) == [
            (2, "created"),
            (3, "invalid"),
        ]
        assert "row 3: invalid: not valid CSV over lines 3-5" in result.stdout
        assert [label["name"] for label in server.labels] == ["first"]

    def test_pre_existing_names(self, server: FakeKirimServer, tmp_path: Path) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\nnew\n")
        assert seed(server, write(tmp_path / "pre.csv", "name\nbug\n")).returncode == 0
        result, lines = seed_reported(server, csv, tmp_path)
        assert result.returncode == 0
        assert {line["status"] for line in lines} == {"exists", "created"}
        for default in ("exists", "skip"):  # the default, by its name and its first name
            named, lines = seed_reported(server, csv, tmp_path, "--on-duplicate", default)
            assert named.returncode == 0
            assert {line["status"] for line in lines} == {"exists"}
        strict = seed(server, csv, "--on-duplicate", "error")
        assert strict.returncode == 1

    def test_rate_limited_job_completes(self, tmp_path: Path) -> None:
        with FakeKirimServer(token=TOKEN, rate=50, burst=5).running_in_thread() as limited:
            names = "\n".join(f"n{i}" for i in range(100))
            result = seed(limited, write(tmp_path / "in.csv", f"name\n{names}\n"))
            assert result.returncode == 0, result.stdout
            assert len(limited.labels) == 100
            assert limited.stats.rate_limited <= 10
            assert f"{limited.stats.rate_limited} answered 429" in result.stdout

    def test_max_rate_keeps_the_job_under_the_servers_limit(self, tmp_path: Path) -> None:
        csv = write(tmp_path / "in.csv", "name\n" + "\n".join(f"n{i}" for i in range(15)))
        with FakeKirimServer(token=TOKEN, rate=40, burst=5).running_in_thread() as limited:
            result = seed(limited, csv, "--max-rate", "10", "--concurrency", "8")
        assert result.returncode == 0, result.stderr
        assert "created           15" in result.stdout
        # Unpaced, 8 workers meet a 429 at once; at a quarter of the limit, never.
        assert limited.stats.rate_limited == 0
        assert "0 answered 429" in result.stdout

    def test_authentication_failure(self, server: FakeKirimServer, tmp_path: Path) -> None:
        csv = write(tmp_path / "in.csv", "name\n" + "\n".join(f"n{i}" for i in range(50)))
        result, lines = seed_reported(server, csv, tmp_path, "--concurrency", "2", token="wrong")
        assert result.returncode == 1
        assert server.stats.requests <= 2
        skipped = Counter(line["status"] for line in lines)["skipped"]
        assert skipped >= 48
        # Said once, above the rows that all repeat it.
        assert "\nstopped: 401 invalid_api_key: Invalid or missing bearer token." in (result.stdout)
        assert f"\n  {skipped} rows were not sent\n" in result.stdout

    def test_a_base_url_without_v1_stops_the_job(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        # Was: every row sent, and each answered 404.
        csv = write(tmp_path / "in.csv", "name\n" + "\n".join(f"n{i}" for i in range(50)))
        base_url = server.url.removesuffix("/v1")
        result = run("seed", csv, "--base-url", base_url, "--concurrency", "2", "-q")
        assert result.returncode == 1
        assert result.stderr.startswith(  # -q: the problems alone, on stderr
            "kirim-labels: stopped: 404: Not Found: the base URL has no /labels endpoint"
        )
        counts = re.search(r"\(failed (\d+), skipped (\d+)\)", result.stderr)
        assert counts is not None
        failed, skipped = map(int, counts.groups())
        assert failed <= 2  # the rows already trying
        assert failed + skipped == 50
        assert f"\n  {skipped} rows were not sent\n" in result.stderr
        assert server.labels == []

    def test_an_api_that_cannot_be_reached_stops_the_job(self, tmp_path: Path) -> None:
        # Before: every row was tried with all its retries (300 rows took 30 s).
        out = tmp_path / "report.jsonl"
        csv = write(tmp_path / "in.csv", "name\n" + "\n".join(f"n{i}" for i in range(100)))
        url = f"http://127.0.0.1:{closed_port()}/v1"  # connecting is refused
        result = run("seed", csv, "--base-url", url, "--report", out, "--concurrency", "2")
        assert result.returncode == 1
        statuses = Counter(line["status"] for line in report(out))
        assert statuses["failed"] <= 2  # the rows already trying
        assert statuses["skipped"] == 100 - statuses["failed"]
        assert "skipped: could not connect to" in result.stdout


class TestProxy:
    def test_proxy_option_sends_every_row_through_it(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\nvia-proxy-1\nvia-proxy-2\n")
        with RecordingProxy().running_in_thread() as proxy:
            result = seed(server, csv, "--proxy", proxy.url)
        assert result.returncode == 0, result.stderr
        assert f"sending through the proxy {proxy.url}" in result.stderr
        assert sorted(target for _, target, _ in proxy.requests) == [f"{server.url}/labels"] * 2
        assert len(server.labels) == 2

    def test_https_proxy_from_the_environment_and_its_refusal_stops_the_job(
        self, tmp_path: Path
    ) -> None:
        out = tmp_path / "report.jsonl"
        csv = write(tmp_path / "in.csv", "name\n" + "\n".join(f"n{i}" for i in range(20)))
        with RecordingProxy(connect_status=407).running_in_thread() as proxy:
            credentialed = proxy.credentialed_url("kirim", PROXY_PASSWORD)
            result = run(
                "seed",
                csv,
                "--base-url",
                "https://api.kirim.example/v1",
                "--report",
                out,
                "--concurrency",
                "1",
                "-v",
                environ={"HTTPS_PROXY": credentialed, "NO_PROXY": "example.org"},
            )
        assert result.returncode == 1
        assert "sending through the proxy http://***@127.0.0.1:" in result.stderr
        assert {target for _, target, _ in proxy.requests} == {"api.kirim.example:443"}
        statuses = Counter(line["status"] for line in report(out))
        assert statuses == {"failed": 1, "skipped": 19}  # a refused tunnel sent nothing
        assert [line["attempts"] for line in report(out) if line["status"] == "failed"] == [1]
        assert "the proxy refused to connect to https://api.kirim.example/v1/labels: 407" in (
            result.stdout
        )
        assert "(check the user and password in the proxy's URL)" in result.stdout
        for text in (result.stdout, result.stderr, out.read_text()):
            assert PROXY_PASSWORD not in text

    def test_no_proxy_and_loopback_are_reached_directly(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\ndirect\n")
        dead = f"http://127.0.0.1:{closed_port()}"
        result = seed(server, csv, environ={"HTTP_PROXY": dead, "HTTPS_PROXY": dead})
        assert result.returncode == 0, result.stderr
        assert "proxy" not in result.stderr

    def test_a_bad_proxy_variable_is_a_usage_error_naming_it(self, tmp_path: Path) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        result = run(
            "seed",
            csv,
            "--base-url",
            "https://api.kirim.example/v1",
            environ={"HTTPS_PROXY": "socks5://proxy.corp:1080"},
        )
        assert result.returncode == 2
        assert "kirim-labels: error: HTTPS_PROXY: must be an http:// or https:// proxy" in (
            result.stderr
        )


class TestRedis:
    """``--redis URL``: the pacer shared through Redis, and its usage errors."""

    def test_redis_option_shares_the_pacer_through_it(
        self, server: FakeKirimServer, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\n" + "\n".join(f"r{i}" for i in range(40)))
        result = seed(server, csv, "--redis", redis_server.url)
        assert result.returncode == 0, result.stderr
        assert f"sharing the pacer through Redis at {redis_server.url}" in result.stderr
        assert len(server.labels) == 40
        store = redis.Redis.from_url(redis_server.url)
        try:
            assert store.keys("*") == [shared_key(server.url, TOKEN).encode()]
        finally:
            store.close()

    @pytest.mark.parametrize(
        ("given", "environ", "says"),
        [
            (("--redis", "http://127.0.0.1:6379"), {}, "--redis: must be a redis://"),
            ((), {"KIRIM_REDIS_URL": "127.0.0.1:6379"}, "KIRIM_REDIS_URL: must be a redis://"),
        ],
    )
    def test_a_url_that_is_not_redis_is_a_usage_error_naming_it(
        self, tmp_path: Path, given: tuple[str, ...], environ: dict[str, str], says: str
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        result = run(
            "seed", csv, "--base-url", "https://api.kirim.example/v1", *given, environ=environ
        )
        assert result.returncode == 2
        assert f"kirim-labels: error: {says}" in result.stderr


class TestUsageAndInputErrors:
    @pytest.mark.parametrize(
        ("content", "name", "says"),
        [
            (None, "missing.csv", "No such file"),
            ("title,color\nbug,red\n", "in.csv", "no 'name' column (found: ['title', 'color'])"),
            ("name;color\nbug;red\n", "in.csv", "looks separated by ';': save it with commas"),
            ("name\tcolor\nbug\tred\n", "in.csv", "looks separated by tabs: save it with"),
            ("Name,Color\nbug,red\n", "in.csv", "column names are lower case: name, color,"),
            (b"name\nbug\n\xff\xfe\n", "in.csv", "line 3: not valid UTF-8 (invalid start "),
            ("name\nFéature\n".encode("cp1252"), "in.csv", "; save the file as UTF-8"),
            ("name\nbug\n".encode("utf-16"), "in.csv", "in.csv: is UTF-16 text, not UTF-8;"),
            (b"\xfe\xff" + '{"name": "bug"}\n'.encode("utf-16-be"), "in.jsonl", "is UTF-16"),
            ("name\n", "in.txt", "cannot tell the format"),
            ('"name\nbug\n', "in.csv", "line 2: the header is not valid CSV"),
            ("name,colour\nbug,red\n", "in.csv", "has 'colour', which a label does not have"),
            ("name,color,\nbug,red,\n", "in.csv", "has '', which a label does not have"),
            ("name,color,name\nbug,red,x\n", "in.csv", "names 'name' twice"),
        ],
    )
    def test_bad_files_exit_2_with_one_line(
        self, server: FakeKirimServer, tmp_path: Path, content: Any, name: str, says: str
    ) -> None:
        path = tmp_path / name
        if content is not None:
            write(path, content)
        result = seed(server, path)
        assert result.returncode == 2
        assert says in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert server.stats.requests == 0

    @pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
    @pytest.mark.parametrize("dry_run", [False, True])
    def test_a_report_that_cannot_be_written_stops_with_one_line(
        self, server: FakeKirimServer, tmp_path: Path, dry_run: bool
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        extra = ("--dry-run",) if dry_run else ()
        result = seed(server, csv, "--report", "/dev/full", *extra)  # every write: ENOSPC
        assert result.returncode == 2
        assert "/dev/full: cannot write the report (No space left on device)" in result.stderr
        assert "row 2's line" in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    @pytest.mark.parametrize(
        ("option", "value", "says"),
        [
            ("--concurrency", "0", "argument --concurrency: must be >= 1, got 0"),
            # Before: "invalid _positive_int value: 'x'", the parser's own name.
            ("--concurrency", "x", "argument --concurrency: must be a whole number, got 'x'"),
            ("--max-retries", "-1", "argument --max-retries: must be >= 0, got -1"),
            ("--max-retries", "1.5", "argument --max-retries: must be a whole number, got '1.5'"),
            ("--max-rate", "0", "argument --max-rate: must be a finite number > 0, got 0"),
            ("--max-rate", "inf", "argument --max-rate: must be a finite number > 0, got inf"),
            ("--max-rate", "fast", "argument --max-rate: must be a number, got 'fast'"),
            ("--timeout", "0", "argument --timeout: must be a finite number > 0, got 0"),
            (
                "--proxy",
                f"http://kirim:{PROXY_PASSWORD}@proxy.corp:3128",
                "--proxy http://***@proxy.corp:3128: put the proxy's credentials in HTTPS_PROXY",
            ),
            (
                "--proxy",
                "socks5://proxy.corp:1080",
                "--proxy: must be an http:// or https:// proxy",
            ),
        ],
    )
    def test_a_bad_option_names_the_option_and_the_rule(
        self, server: FakeKirimServer, tmp_path: Path, option: str, value: str, says: str
    ) -> None:
        result = seed(server, write(tmp_path / "in.csv", "name\nbug\n"), option, value)
        assert result.returncode == 2
        assert says in result.stderr
        assert PROXY_PASSWORD not in result.stderr
        assert server.stats.requests == 0

    @pytest.mark.parametrize(
        ("content", "says"),
        [(None, "--token-file {path}: No such file or directory"), (" \n", "{path} is empty")],
    )
    def test_an_unusable_token_file_exits_2_with_one_line(
        self, server: FakeKirimServer, tmp_path: Path, content: str | None, says: str
    ) -> None:
        token_file = tmp_path / "token"
        if content is not None:
            write(token_file, content)
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        result = seed(server, csv, "--token-file", token_file, token=None)
        assert result.returncode == 2
        assert says.format(path=token_file) in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert server.stats.requests == 0

    def test_missing_token_names_both_ways(self, server: FakeKirimServer, tmp_path: Path) -> None:
        result = seed(server, write(tmp_path / "in.csv", "name\nbug\n"), token=None)
        assert result.returncode == 2
        assert "KIRIM_API_TOKEN" in result.stderr
        assert "--token-file" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    def test_token_file(self, server: FakeKirimServer, tmp_path: Path) -> None:
        token_file = write(tmp_path / "token", TOKEN + "\n")
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        result = seed(server, csv, "--token-file", token_file, token=None)
        assert result.returncode == 0, result.stderr

    def test_no_option_takes_the_token(self) -> None:
        result = run("seed", "--help")
        assert "--token " not in result.stdout
        assert "--token-file" in result.stdout

    def test_usage_error(self) -> None:
        result = run("seed")
        assert result.returncode == 2

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("--base-url", "https://api.kirim.chat/v1"),
            ("--token-file", "t"),
            ("--proxy", "http://proxy.corp:3128"),
        ],
    )
    def test_sandbox_refuses_an_option_that_names_a_real_api(
        self, tmp_path: Path, option: str, value: str
    ) -> None:
        # Seeding the sandbox while the command line names a real API would report
        # every row created, with nothing created where the user meant.
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        result = run("seed", csv, "--sandbox", option, value)
        assert result.returncode == 2
        assert f"--sandbox cannot be combined with {option}" in result.stderr
        assert "sandbox:" not in result.stderr  # refused before any server starts
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize("sandbox", [False, True])
    def test_an_invalid_team_id_option_is_a_usage_error(
        self, server: FakeKirimServer, tmp_path: Path, sandbox: bool
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        where = ("--sandbox",) if sandbox else ("--base-url", server.url)
        result = run("seed", csv, "--team-id", "", *where)
        assert result.returncode == 2
        assert "argument --team-id: must be a string of 1-64 characters" in result.stderr
        assert "sandbox:" not in result.stderr  # refused before any server starts
        assert server.stats.requests == 0

    def test_token_never_in_outputs(self, server: FakeKirimServer, tmp_path: Path) -> None:
        out = tmp_path / "report.jsonl"
        csv = write(tmp_path / "in.csv", "name\nbug\nbug2\n,\n")
        seed(server, csv, "--report", out, "-v", token=TOKEN)
        failing = seed(server, csv, "--report", out, "-v", token=TOKEN + "x")
        for text in (failing.stdout, failing.stderr, out.read_text()):
            assert TOKEN not in text


class TestDryRun:
    def test_sends_nothing_and_reports(self, server: FakeKirimServer, tmp_path: Path) -> None:
        result, lines = seed_reported(
            server, EXAMPLES / "labels-with-errors.csv", tmp_path, "--dry-run", token=None
        )
        assert result.returncode == 1
        assert server.stats.requests == 0
        statuses = Counter(line["status"] for line in lines)
        assert statuses == {"would-create": 4, "invalid": 4, "skipped": 1}

    def test_clean_file(self, tmp_path: Path) -> None:
        result = run("seed", EXAMPLES / "labels.csv", "--dry-run", token=None)
        assert result.returncode == 0
        assert "would-create     300" in result.stdout


class TestReportToStandardOutput:
    def test_report_dash_writes_json_lines_to_stdout_and_the_summary_to_stderr(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        # Was: a file named "-" in the working directory, and the table on stdout.
        csv = write(tmp_path / "in.csv", "name\nbug\nfeature\n")
        result = seed(server, csv, "--report", "-", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = sorted(json_lines(result.stdout), key=lambda line: line["row"])  # finish order
        assert [(line["row"], line["status"]) for line in lines] == [
            (2, "created"),
            (3, "created"),
        ]
        assert "created            2" in result.stderr
        assert not (tmp_path / "-").exists()

    def test_a_dry_run_plan_goes_to_stdout(self, tmp_path: Path) -> None:
        csv = write(tmp_path / "in.csv", "name,color\nbug,\nfix,crimson\n")
        result = run("seed", csv, "--dry-run", "--report", "-", token=None, cwd=tmp_path)
        assert result.returncode == 1
        lines = json_lines(result.stdout)
        assert [line["status"] for line in lines] == ["would-create", "invalid"]
        assert "row 3: invalid: color" in result.stderr

    def test_resume_needs_a_file(self, server: FakeKirimServer, tmp_path: Path) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        result = seed(server, csv, "--resume", "-", cwd=tmp_path)
        assert result.returncode == 2
        assert "--resume needs a file" in result.stderr
        assert server.stats.requests == 0

    def test_a_reader_that_goes_away_stops_the_job_with_one_line(self, tmp_path: Path) -> None:
        # As with "| head -1": the rows after the closed pipe are not written anywhere,
        # so the job must stop and say so, not carry on or die with a traceback.
        csv = write(tmp_path / "in.csv", "name\n" + "".join(f"n{i}\n" for i in range(20_000)))
        with subprocess.Popen(
            kirim_labels("seed", csv, "--dry-run", "--report", "-"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        ) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            assert json.loads(process.stdout.readline())["row"] == 2
            process.stdout.close()
            stderr = process.stderr.read().decode()
            status = process.wait(timeout=60)
        assert status == 2
        assert "<stdout>: cannot write the report (Broken pipe)" in stderr
        assert "--report PATH" in stderr
        assert "Traceback" not in stderr
        assert "Exception ignored" not in stderr
        assert len(stderr.strip().splitlines()) == 1


class TestResume:
    def test_sigint_then_resume_finishes_without_duplicates(self, tmp_path: Path) -> None:
        names = [f"label-{i:03d}" for i in range(200)]
        csv = write(tmp_path / "in.csv", "name\n" + "\n".join(names) + "\n")
        out = tmp_path / "report.jsonl"
        with FakeKirimServer(token=TOKEN, latency=0.02).running_in_thread() as server:
            env = dict(os.environ, KIRIM_API_TOKEN=TOKEN)
            with subprocess.Popen(
                kirim_labels(
                    "seed", csv, "--base-url", server.url, "--report", out, "--concurrency=4", "-q"
                ),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ) as proc:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # wait for some finished rows, not time
                    if out.exists() and len(out.read_text().splitlines()) >= 30:
                        break
                    time.sleep(0.02)
                proc.send_signal(signal.SIGINT)
                assert proc.wait(timeout=60) == 130
                assert proc.stderr is not None
                assert "kirim-labels: interrupted: rows without a report line" in (
                    proc.stderr.read()
                )  # even under -q
            first = report(out)
            assert 30 <= len(first) < 200
            resumed = seed(server, csv, "--resume", out)
            assert resumed.returncode == 0, resumed.stdout
            assert re.search(rf"resumed\s+{len(first)}\b", resumed.stdout), resumed.stdout
            stored = [label["name"] for label in server.labels]
        assert sorted(stored) == names  # every row there, none created twice
        lines = report(out)
        statuses: dict[int, list[str]] = {}
        for line in lines:
            statuses.setdefault(line["row"], []).append(line["status"])
        assert sorted(statuses) == list(range(2, 202))  # every row accounted for
        assert all(s.count("created") <= 1 for s in statuses.values())
        assert all(set(s) <= {"created", "exists"} for s in statuses.values())

    def test_a_report_to_resume_that_does_not_exist_starts_it_and_says_so(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        # The same command starts a job and resumes it; but a misspelt path would send
        # every row again, so the start is said (before: not a word).
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        out = tmp_path / "report.jsonl"
        result = seed(server, csv, "--resume", out)
        assert result.returncode == 0, result.stderr
        assert f"kirim-labels: {out} does not exist yet: no row is skipped" in result.stderr
        assert [line["status"] for line in report(out)] == ["created"]
        again = seed(server, csv, "--resume", out)
        assert "does not exist" not in again.stderr
        assert seed(server, csv, "--resume", tmp_path / "other.jsonl", "-q").stderr == ""

    def test_a_report_of_another_team_does_not_mark_rows_done(self, tmp_path: Path) -> None:
        # One report kept for a file seeded into team after team: the rows done in
        # team_a are not done in team_b (before: every row "resumed", exit 0, and
        # nothing created in team_b).
        csv = write(tmp_path / "in.csv", "name,team_id\nbug,\nfeature,\ndocs,team_a\n")
        out = tmp_path / "report.jsonl"
        teams = ["team_a", "team_b"]
        with FakeKirimServer(token=TOKEN, teams=teams).running_in_thread() as server:
            assert seed(server, csv, "--team-id", "team_a", "--resume", out).returncode == 0
            into_b = seed(server, csv, "--team-id", "team_b", "--resume", out)
            assert into_b.returncode == 0, into_b.stdout
            assert re.search(r"created\s+2\b", into_b.stdout), into_b.stdout
            assert re.search(r"resumed\s+1\b", into_b.stdout)  # docs names team_a itself
            again = seed(server, csv, "--team-id", "team_b", "--resume", out)
            assert re.search(r"resumed\s+3\b", again.stdout), again.stdout
            stored = sorted((label["team_id"], label["name"]) for label in server.labels)
        assert stored == [
            ("team_a", "bug"),
            ("team_a", "docs"),
            ("team_a", "feature"),
            ("team_b", "bug"),
            ("team_b", "feature"),
        ]

    @pytest.mark.parametrize(
        ("row_team", "default_team", "done"),
        [
            (None, "team_a", [2, 4]),
            (None, "team_b", [3, 4]),
            ("team_a", "team_b", [2, 4]),  # a row's own team, over --team-id
            (None, None, [2, 3, 4]),  # no team: the only team's
        ],
    )
    def test_rows_are_done_by_row_name_and_team_and_counted_before_the_job(
        self,
        tmp_path: Path,
        row_team: str | None,
        default_team: str | None,
        done: list[int],
    ) -> None:
        # The progress total is the rows to send; it used to subtract every row the
        # report marks done, whether this run skips it or not.
        team = row_team or ""
        csv = write(tmp_path / "in.csv", f"name,team_id\nbug,{team}\nfeature,{team}\ndocs,\n")
        entries = [
            {"row": 2, "name": "bug", "team_id": "team_a", "status": "created"},
            {"row": 3, "name": "feature", "team_id": "team_b", "status": "exists"},
            {"row": 4, "name": "docs", "team_id": None, "status": "exists"},  # no team given
            {"row": 5, "name": "misc", "team_id": "team_a", "status": "created"},  # no row 5
        ]
        prior = read_report(write(tmp_path / "r.jsonl", "".join(map(_line, entries))))
        scan = prescan(csv, "csv", resumed=lambda row: prior.marks_done(row, default_team))
        with csv.open("rb") as stream:
            rows = list(read_rows(stream, "csv", "in.csv"))
        skipped = [row.line for row in rows if prior.marks_done(row, default_team)]
        assert skipped == done
        assert (scan.rows, scan.resumed) == (3, len(done))

    def test_a_row_sent_to_the_default_team_reports_that_team(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        # A row without a team_id goes to --team-id's: its report line says so, whether
        # the server answered with a label or not (before: null unless created).
        csv = write(tmp_path / "in.csv", "name,color\nbug,\n,red\n")
        server.teams = ("team_default", "team_x")
        first = seed(server, csv, "--team-id", "team_x", "--report", "-")
        again = seed(server, csv, "--team-id", "team_x", "--report", "-")
        lines = sorted(json_lines(first.stdout) + json_lines(again.stdout), key=lambda x: x["row"])
        assert [(line["status"], line["team_id"]) for line in lines] == [
            ("created", "team_x"),
            ("exists", "team_x"),
            ("invalid", "team_x"),
            ("invalid", "team_x"),
        ]

    def test_a_line_cut_short_by_a_kill_is_dropped_not_glued_to_the_next(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\nfeature\ndocs\n")
        done = '{"row": 2, "name": "bug", "status": "created", "label_id": "lbl_1"}\n'
        out = write(tmp_path / "report.jsonl", done + '{"row": 3, "name": "feat')
        result = seed(server, csv, "--resume", out)
        assert result.returncode == 0, result.stderr
        assert "dropped its last line, cut short (24 bytes)" in result.stderr
        lines = report(out)  # every line whole again: the fragment is gone
        assert lines[0]["label_id"] == "lbl_1"
        assert sorted(line["row"] for line in lines) == [2, 3, 4]
        assert sorted(label["name"] for label in server.labels) == ["docs", "feature"]

    def test_a_last_entry_without_its_newline_counts_and_is_kept(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\nfeature\n")
        out = write(tmp_path / "report.jsonl", '{"row": 2, "name": "bug", "status": "created"}')
        result = seed(server, csv, "--resume", out)
        assert result.returncode == 0, result.stderr
        assert [(line["row"], line["name"]) for line in report(out)] == [
            (2, "bug"),
            (3, "feature"),
        ]
        assert [label["name"] for label in server.labels] == ["feature"]

    @pytest.mark.parametrize(
        ("content", "says"),
        [
            ("name\nbug\n", "line 1 is not a report line"),
            (b'{"row": 2, "status": "created"}\n\xff\xfe\n', "line 2 is not a report line"),
            ('{"row": 2, "status": "created"}\n[2, "created"]\n{"row": 3}', "line 2 is not"),
        ],
    )
    def test_a_file_that_is_not_a_report_is_refused_untouched(
        self, server: FakeKirimServer, tmp_path: Path, content: str | bytes, says: str
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        out = write(tmp_path / "other.csv", content)
        result = seed(server, csv, "--resume", out)
        assert result.returncode == 2
        assert says in result.stderr
        assert "Traceback" not in result.stderr
        assert out.read_bytes() == (content.encode() if isinstance(content, str) else content)
        assert server.stats.requests == 0

    @pytest.mark.parametrize("option", ["--report", "--resume"])
    def test_the_input_file_is_never_the_report(
        self, server: FakeKirimServer, tmp_path: Path, option: str
    ) -> None:
        text = "name\nbug\nfeature\n"
        csv = write(tmp_path / "in.csv", text)
        (tmp_path / "link.csv").symlink_to(csv)
        result = seed(server, csv, option, tmp_path / "link.csv")
        assert result.returncode == 2
        assert f"{option} {tmp_path / 'link.csv'} is the input file" in result.stderr
        assert csv.read_text() == text  # not emptied (--report) nor appended to (--resume)
        assert server.stats.requests == 0

    def test_a_resume_into_another_report_is_refused(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        # --resume appends to the report it reads: a second report would split the record.
        csv = write(tmp_path / "in.csv", "name\nbug\n")
        done = write(tmp_path / "done.jsonl", '{"row": 2, "name": "bug", "status": "created"}\n')
        result = seed(server, csv, "--resume", done, "--report", tmp_path / "other.jsonl")
        assert result.returncode == 2
        assert "--report and --resume name different files; --resume appends" in result.stderr
        assert not (tmp_path / "other.jsonl").exists()
        assert server.stats.requests == 0

    def test_a_dry_run_reads_the_report_it_resumes_and_writes_its_plan_elsewhere(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(tmp_path / "in.csv", "name\nbug\nfeature\n")
        done = '{"row": 2, "name": "bug", "status": "created"}\n'
        out = write(tmp_path / "report.jsonl", done)
        plan = tmp_path / "plan.jsonl"
        result = seed(server, csv, "--dry-run", "--resume", out, "--report", plan)
        assert result.returncode == 0, result.stderr
        assert out.read_text() == done
        assert [(line["row"], line["status"]) for line in report(plan)] == [(3, "would-create")]
        into_itself = seed(server, csv, "--dry-run", "--resume", out, "--report", out)
        assert into_itself.returncode == 2
        assert "--dry-run does not write into the report --resume reads" in into_itself.stderr
        assert out.read_text() == done
        assert server.stats.requests == 0


class TestTheFirstHour:
    """What a newcomer meets first: --help, the summary, a dry run, progress."""

    def test_help_shows_examples_and_exit_statuses_not_the_old_option_name(self) -> None:
        result = run("seed", "--help")
        assert result.returncode == 0
        assert "examples:\n  kirim-labels seed labels.csv --sandbox" in result.stdout
        for status in ("0 ", "1 ", "2 ", "130", "143"):
            assert f"\n  {status}" in result.stdout
        assert "--on-duplicate {exists,error}" in result.stdout
        assert "skip," not in result.stdout  # the old name stays out of the choices

    def test_the_old_option_name_still_works(self, server: FakeKirimServer, tmp_path: Path) -> None:
        result = seed(server, write(tmp_path / "in.csv", "name\nbug\n"), "--on-duplicate", "skip")
        assert result.returncode == 0, result.stderr

    def test_the_summary_says_how_many_problems_it_does_not_show(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        csv = write(
            tmp_path / "in.csv", "name,color\n" + "".join(f"n{i},crimson\n" for i in range(12))
        )
        bare = seed(server, csv)
        assert "first problems (10 of 12; --report PATH lists every row):" in bare.stdout
        reported, _ = seed_reported(server, csv, tmp_path)
        assert re.search(r"first problems \(10 of 12; every row's is in \S+report", reported.stdout)
        quiet = seed(server, csv, "-q")
        assert "12 rows not done (invalid 12); first problems (10 of 12;" in quiet.stderr

    def test_a_dry_run_does_not_speak_of_requests_or_failures(
        self, server: FakeKirimServer, tmp_path: Path
    ) -> None:
        result = seed(server, EXAMPLES / "labels-with-errors.csv", "--dry-run")
        assert "a dry run: nothing sent" in result.stdout
        assert "answered 429" not in result.stdout
        assert "failed" not in result.stdout
        assert re.search(r"^would-create +4$", result.stdout, re.MULTILINE)

    def test_progress_counts_every_status(self) -> None:
        tally = Tally(total=9)
        tally.counts.update({"created": 4, "invalid": 4, "skipped": 1})
        assert "created=4 exists=0 invalid=4 failed=0 skipped=1" in tally.line()
        dry = Tally(total=5)
        dry.counts.update({"would-create": 4, "invalid": 1})
        assert "would-create=4 invalid=1 skipped=0" in dry.line()

    def test_progress_shows_the_pace_while_limited_and_clears_it_after(self) -> None:
        pace: list[float | None] = [None]
        tally = Tally(total=9, pace=lambda: pace[0])
        assert "[" not in tally.line()  # not limited: no marker
        pace[0] = 296.6
        assert tally.line().endswith("  [pacing at 297/s]")
        limited = ResponseEvent(
            method="POST", url="u", attempt=1, status=429, request_id=None, elapsed=0.0
        )
        tally.on_response(limited)
        assert tally.line().endswith("  [rate-limited: waiting]")  # a 429 just now
        tally.last_429 -= 2.0
        pace[0] = None  # the client paces no more
        assert "[" not in tally.line()
