"""The ``kirim-labels`` command: seed labels from CSV or JSON Lines.

    kirim-labels seed labels.csv --report report.jsonl
    kirim-labels seed labels.csv --sandbox          # against an in-process fake server

This is the only module that prints or exits. Exit status: 0 when every row was created
or existed; 1 when any row failed, was invalid or was not sent; 2 for usage,
configuration or input-file errors; 130 when interrupted (the report then holds every
finished row, and ``--resume`` goes on from there).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import math
import os
import shlex
import signal
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import attrs

from .._client import KirimClient
from .._config import (
    DEFAULT_CONNECTION_LIMIT,
    DEFAULT_TIMEOUT,
    TOKEN_ENV,
    check_proxy_url,
    chosen_base_url,
    chosen_redis_url,
    environment_proxy,
    masked,
)
from .._events import Hooks
from .._version import __version__
from ..bulk import (
    DEFAULT_CONCURRENCY,
    LabelOutcome,
    OutcomeStatus,
    Planner,
    iter_bulk_create_labels,
)
from ..errors import KirimError
from ..models import CreateLabel
from ..pacing import check_redis_url
from ._progress import Progress, Tally, plural, quiet_summary, summary
from ._seedfile import (
    InputFileError,
    PriorReport,
    Row,
    compact_report,
    detect_format,
    prescan,
    read_report,
    read_rows,
    report_line,
    row_status,
    team_id_problem,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 128 + signal.SIGINT
SANDBOX_RATE, SANDBOX_BURST = 100.0, 20
# Requests in flight at most: far past what any API's rate limit lets through, and each
# costs a connection and a worker (2,000,000 of them took 2 GiB before this bound).
MAX_CONCURRENCY = 1000
STDOUT = Path("-")  # as a --report path: standard output


class UsageError(Exception):
    """A one-line problem with the command line, configuration, input or report: exit 2."""


class ReportWriteError(UsageError):
    """The report could not be written (a full disk, say): the job stops."""


_SEED_EPILOG = f"""\
examples:
  kirim-labels seed labels.csv --sandbox                 try it: an in-process fake server
  kirim-labels seed labels.csv --report report.jsonl     one report line per row
  kirim-labels seed labels.csv --resume report.jsonl     after an interruption: the rest
  kirim-labels seed labels.csv --dry-run                 check every row; send nothing

exit status:
  0    every row was created or already existed
  1    some row failed, was invalid or was not sent (the report says which)
  2    a usage, configuration or input-file error, or a report that cannot be written
  130  interrupted by Ctrl-C (the report holds every finished row)
  143  ended by SIGTERM (the same)

the token: {TOKEN_ENV} or --token-file PATH, never on the command line.
"""


def _parser() -> argparse.ArgumentParser:
    # No abbreviations: "--token abc" was read as "--token-file abc", and "--rep" as
    # "--report"; a misread option must fail, naming what was typed.
    parser = argparse.ArgumentParser(
        prog="kirim-labels", description="Create Kirim labels in bulk.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"kirim-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    seed = commands.add_parser(
        "seed",
        allow_abbrev=False,
        help="create a label per row of a CSV or JSON Lines file",
        description=(
            "Create a label per row. CSV needs a header with a 'name' column ('color' "
            "and 'team_id' optional); JSON Lines has one object per line. The token "
            f"comes from {TOKEN_ENV} or --token-file."
        ),
        epilog=_SEED_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seed.add_argument("file", metavar="FILE", help="input file, or - for standard input")
    seed.add_argument("--format", choices=["csv", "jsonl"], help="default: by extension")
    seed.add_argument("--team-id", type=_team_id, help="team for rows that name none")
    seed.add_argument(
        "--concurrency",
        type=_whole_number(1, MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        help="requests in flight at most (default: %(default)s)",
    )
    seed.add_argument(
        "--max-retries", type=_whole_number(0), help="error retries per row (default: 2)"
    )
    seed.add_argument(
        "--timeout",
        type=_positive_number,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="seconds each attempt may take (default: %(default)g)",
    )
    seed.add_argument(
        "--max-rate",
        type=_positive_number,
        metavar="N",
        help="requests a second at most, evenly spaced (default: as fast as the API allows)",
    )
    seed.add_argument("--base-url", help="API base URL (default: KIRIM_BASE_URL or the API's)")
    seed.add_argument(
        "--redis",
        metavar="URL",
        help=(
            "share one pacer through this Redis (redis://, rediss:// or unix://) with "
            "every process seeding with the same token (default: KIRIM_REDIS_URL)"
        ),
    )
    seed.add_argument(
        "--proxy",
        metavar="URL",
        help=(
            "send through this HTTP proxy (default: HTTPS_PROXY, unless NO_PROXY names "
            "the host; credentials belong there, not here)"
        ),
    )
    seed.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help=f"read the API token from PATH instead of {TOKEN_ENV}",
    )
    seed.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="write a JSON Lines report, one line per row (- for stdout)",
    )
    seed.add_argument(
        "--overwrite",
        action="store_true",
        help="let --report replace a file that exists (by default it is refused: a "
        "report is the only record of the labels' ids)",
    )
    seed.add_argument(
        "--resume",
        type=Path,
        metavar="PATH",
        help=(
            "skip rows this earlier report marks created or exists; append to it "
            "(with --dry-run, only read it)"
        ),
    )
    seed.add_argument(
        "--dry-run",
        action="store_true",
        help="validate every row and report what would be sent; send nothing",
    )
    seed.add_argument(
        "--on-duplicate",
        choices=["exists", "skip", "error"],  # 'skip': the option's first name for exists
        metavar="{exists,error}",
        default="exists",
        help="a name already taken: reported 'exists' (counts as done) or 'error' (failed)",
    )
    seed.add_argument(
        "--sandbox",
        action="store_true",
        help="seed an in-process fake Kirim server (rate limited) instead",
    )
    verbosity = seed.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only the rows not done, and why (on stderr)",
    )
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", help="log every retry and rate-limit pause"
    )
    return parser


def _whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An option's parser for a whole number >= *minimum* (and <= *maximum*)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            # Raised as is, argparse would name the parser: "invalid parse value: 'x'".
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse


def _positive_number(text: str) -> float:
    """An option's parser for a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _team_id(text: str) -> str:
    problem = team_id_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = str(args.token_file.read_text(encoding="utf-8")).strip()
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:  # its bytes are not shown: they may be the token
            raise UsageError(
                f"--token-file {args.token_file}: is not UTF-8 text (is it the right file?)"
            ) from None
        if not token:
            raise UsageError(f"--token-file {args.token_file} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(f"no API token: set {TOKEN_ENV} or pass --token-file PATH")
    return token


def _proxy(args: argparse.Namespace) -> str | None:
    """The proxy to send through: ``--proxy``, else the environment's for the API's URL.

    Credentials on the command line are refused, as the token is: ``ps`` and the
    shell's history would show them.
    """
    if args.proxy is None:
        return environment_proxy(chosen_base_url(args.base_url)[0])
    proxy = check_proxy_url(args.proxy, field="--proxy")
    if urlsplit(proxy).username is not None:
        raise UsageError(
            f"--proxy {masked(proxy)}: put the proxy's credentials in HTTPS_PROXY instead "
            "(the command line shows in ps and in the shell's history)"
        )
    return proxy


def _redis_url(args: argparse.Namespace) -> str | None:
    """The Redis to share the pacer through: ``--redis``, else ``KIRIM_REDIS_URL``."""
    url, field = chosen_redis_url(args.redis)
    if url is None:
        return None
    return check_redis_url(url, "--redis" if args.redis is not None else field)


def _check_sandbox(args: argparse.Namespace) -> None:
    """Refuse ``--sandbox`` beside an option that names a real API.

    The sandbox would take every row, and the summary say so, while the user believes
    the API they named got them.
    """
    if args.sandbox:
        for option, value in (
            ("--base-url", args.base_url),
            ("--token-file", args.token_file),
            ("--proxy", args.proxy),
        ):
            if value is not None:
                raise UsageError(
                    f"--sandbox cannot be combined with {option}: it seeds a fake server"
                )


@attrs.define
class Seeding:
    """One ``seed`` run: reads rows, tracks which row each outcome belongs to, reports."""

    report: IO[str] | None
    tally: Tally
    prior: PriorReport
    team_id: str | None
    """``--team-id``: the team of rows that name none."""
    # The line of each item sent to the bulk helper, by its index: 8 bytes a row.
    lines: array[int] = attrs.field(factory=lambda: array("q"))

    def items(self, rows: Iterator[Row]) -> Iterator[Any]:
        """The bulk helper's items, leaving out rows an earlier report marks done."""
        for row in rows:
            if self.prior.marks_done(row, self.team_id):
                self.tally.resumed += 1
                continue
            self.lines.append(row.line)
            yield row.item

    def record(self, outcome: LabelOutcome, *, dry_run: bool = False) -> None:
        """Write the report line of *outcome* (flushed at once) and count it."""
        row = self.lines[outcome.index]
        first = None if outcome.first_index is None else self.lines[outcome.first_index]
        status = row_status(outcome, dry_run=dry_run)
        if self.report is not None:
            try:
                line = report_line(
                    row, outcome, status, first_row=first, default_team_id=self.team_id
                )
                self.report.write(line + "\n")
                self.report.flush()
            except OSError as exc:
                broken, self.report = self.report, None
                _abandon(broken)
                raise _report_failed(broken, exc, row) from None
        self.tally.add(row, outcome, status)

    def close(self) -> None:
        """Close the report (stdout is only flushed); its lines were flushed as written."""
        report = self.report
        if report is None:
            return
        try:
            if report is sys.stdout:
                report.flush()
            else:
                report.close()
        except OSError as exc:
            _abandon(report)
            raise _report_failed(report, exc, None) from None


def _abandon(report: IO[str]) -> None:
    """Let go of a report that failed to write, without a second error about it."""
    if report is sys.stdout:
        # Its reader went away ("| head"): what is still buffered would fail again when
        # Python flushes stdout at exit, with an "Exception ignored" message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, report.fileno())
        os.close(devnull)
        return
    with contextlib.suppress(OSError):  # the failure that brought us here is the one to tell
        report.close()


def _report_failed(report: IO[str], error: OSError, row: int | None) -> ReportWriteError:
    where = f"row {row}'s line and those of the rows in flight are" if row else "lines may be"
    if report is sys.stdout:
        then = "a job is resumed from a report written to a file (--report PATH)"
    else:
        then = f"--resume {report.name} sends them again"
    return ReportWriteError(
        f"{report.name}: cannot write the report ({error.strerror or error}); the job "
        f"stopped, and {where} missing: {then}"
    )


def _open_input(args: argparse.Namespace) -> tuple[IO[bytes], str]:
    if args.file == "-":
        return sys.stdin.buffer, "<stdin>"
    path = Path(args.file)
    try:
        return path.open("rb"), str(path)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


@attrs.frozen
class ReportTarget:
    """Where report lines go: a file written anew, or a resumed report appended to."""

    path: Path
    appends: bool


def _report_target(args: argparse.Namespace) -> ReportTarget | None:
    """Where ``--report`` and ``--resume`` send report lines, checked before either is opened.

    A dry run only reads the report it resumes; its plan goes to ``--report``.

    Raises:
        UsageError: The report is the input file (``--report`` would empty it before it
            is read); the options name different files (a real run appends to the
            resumed report); a dry run would write into the report it resumes; or
            ``--resume -`` (a resumed report is read, then appended to).
    """
    resume: Path | None = args.resume  # argparse made both Paths
    report: Path | None = args.report
    if resume == STDOUT:
        raise UsageError("--resume needs a file: it reads the earlier report, then appends to it")
    if resume is not None and report is not None:
        same = _same_file(resume, report)
        if args.dry_run and same:
            raise UsageError("--dry-run does not write into the report --resume reads")
        if not args.dry_run and not same:
            raise UsageError("--report and --resume name different files; --resume appends")
    target = None
    if resume is not None and not args.dry_run:
        target = ReportTarget(path=resume, appends=True)
    elif report is not None:
        target = ReportTarget(path=report, appends=False)
    for option, path in (("--resume", resume), ("--report", report)):
        if path not in (None, STDOUT) and args.file != "-" and _same_file(Path(args.file), path):
            raise UsageError(f"{option} {path} is the input file; name another file for the report")
    if target is not None and not target.appends and not args.overwrite:
        _refuse_to_replace(target.path)
    return target


def _refuse_to_replace(path: Path) -> None:
    """Refuse to empty a report that exists: it is the only record of the labels' ids."""
    with contextlib.suppress(OSError):  # missing, or a device: nothing to lose
        if path != STDOUT and path.is_file() and path.stat().st_size > 0:
            raise UsageError(
                f"--report {path} exists: pass --resume {path} to go on with that job, "
                "or --overwrite to replace it"
            )


def _same_file(first: Path, second: Path) -> bool:
    if first == second:
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (yet)
        return False


def _open_report(target: ReportTarget | None, prior: PriorReport, *, quiet: bool) -> IO[str] | None:
    if target is None:
        return None
    path = target.path
    if path == STDOUT:
        return sys.stdout
    try:
        if not target.appends:
            return path.open("w", encoding="utf-8")
        if prior.found:  # the rows not done lose their old lines: each row stands once
            compact_report(path, prior)
        report = path.open("a", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    if not quiet and prior.cut_bytes:
        print(
            f"kirim-labels: {path}: dropped its last line, cut short "
            f"({prior.cut_bytes} bytes); that row is sent again",
            file=sys.stderr,
        )
    if not quiet and prior.stale_lines:
        print(
            f"kirim-labels: {path}: {plural(prior.stale_lines, 'row')} not done "
            "(invalid, failed or not sent) will get a new line each",
            file=sys.stderr,
        )
    return report


@attrs.frozen
class Target:
    """Where to send: a token, base URL and proxy, or a sandbox with the input's teams."""

    token: str | None
    proxy: str | None = None
    redis_url: str | None = None
    """A Redis to share the pacer through (``--redis`` or ``KIRIM_REDIS_URL``), checked."""
    sandbox_teams: frozenset[str] = frozenset()
    rows: int | None = None
    """The rows to send, when the input was counted first: no more workers than that."""


async def _seed(
    args: argparse.Namespace, seeding: Seeding, rows: Iterator[Row], target: Target
) -> None:
    if args.sandbox:
        from ..testing import FakeKirimServer  # noqa: PLC0415 - only --sandbox needs a server

        teams = sorted(target.sandbox_teams) or ["team_default"]
        async with FakeKirimServer(rate=SANDBOX_RATE, burst=SANDBOX_BURST, teams=teams) as server:
            if not args.quiet:
                print(
                    f"sandbox: FakeKirimServer at {server.url}, "
                    f"limited to {SANDBOX_RATE:g} requests/s",
                    file=sys.stderr,
                )
            await _send(args, seeding, rows, target, token=server.token, base_url=server.url)
    else:
        assert target.token is not None  # noqa: S101 - resolved by seed()
        await _send(args, seeding, rows, target, token=target.token, base_url=args.base_url)


async def _send(
    args: argparse.Namespace,
    seeding: Seeding,
    rows: Iterator[Row],
    target: Target,
    *,
    token: str,
    base_url: str | None,
) -> None:
    """Send *rows* with *token* to *base_url*, through *target*'s proxy and Redis."""
    count = target.rows
    # No more workers than rows to send (each costs a task and a connection).
    concurrency = args.concurrency if count is None else max(1, min(count, args.concurrency))
    progress = Progress(seeding.tally, quiet=args.quiet, stream=sys.stderr)
    try:
        async with KirimClient(
            token,
            base_url=base_url,
            proxy=target.proxy,
            redis_url=target.redis_url,
            team_id=args.team_id,
            timeout=args.timeout,
            connection_limit=max(DEFAULT_CONNECTION_LIMIT, concurrency),
            hooks=Hooks(on_response=seeding.tally.on_response),
        ) as client:
            seeding.tally.pace = _shown_pace(client, args.max_rate)
            stream = iter_bulk_create_labels(
                client,
                seeding.items(rows),
                concurrency=concurrency,
                # "skip", the option's first name, stays for the jobs written with it.
                on_duplicate="error" if args.on_duplicate == "error" else "exists",
                max_retries=args.max_retries,
                max_rate=args.max_rate,
            )
            async with contextlib.aclosing(stream):
                async for outcome in stream:
                    seeding.record(outcome)
                    progress.update()
    finally:
        await progress.aclose()


def _dry_run(args: argparse.Namespace, seeding: Seeding, rows: Iterator[Row]) -> None:
    planner = Planner(default_team_id=args.team_id, dedupe=True)
    for index, item in enumerate(seeding.items(rows)):
        planned = planner.prepare(index, item)
        if isinstance(planned, CreateLabel):
            planned = LabelOutcome(index=index, request=planned, status=OutcomeStatus.CREATED)
        seeding.record(planned, dry_run=True)


def _shown_pace(client: KirimClient, max_rate: float | None) -> Callable[[], float | None]:
    """The pace the job sends at: the client's, under ``--max-rate`` when given."""

    def pace() -> float | None:
        rate = client.pace
        if max_rate is None or (rate is not None and rate < max_rate):
            return rate
        return max_rate

    return pace


def _exit_status(tally: Tally, *, interrupted_by: int) -> int:
    if interrupted_by:  # as a shell reports a command a signal ended: 130, 143
        return 128 + interrupted_by
    return EXIT_FAILURES if tally.problems else EXIT_OK


async def _main_async(
    args: argparse.Namespace, seeding: Seeding, rows: Iterator[Row], target: Target
) -> int:
    """Run the job; return the signal that interrupted it (SIGINT, SIGTERM), or 0."""
    task = asyncio.current_task()
    assert task is not None  # noqa: S101 - always inside a task here
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def interrupt(signum: int) -> None:
        received.append(signum)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)
    try:
        await _seed(args, seeding, rows, target)
    except asyncio.CancelledError:
        return received[0] if received else signal.SIGINT
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def _resume_command(argv: Sequence[str], report: Path) -> str:
    """The command that goes on with this job: the same one, resuming *report*."""
    words: list[str] = []
    given = iter(argv)
    for word in given:
        if word in ("--report", "--resume"):
            next(given, None)
        elif not word.startswith(("--report=", "--resume=")) and word != "--overwrite":
            words.append(word)
    return shlex.join(["kirim-labels", *words, "--resume", str(report)])


def seed(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    """Run ``kirim-labels seed`` (*argv* as given, for the command that resumes it)."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.verbose:
        logging.getLogger("kirim_async").setLevel(logging.DEBUG)
    _check_sandbox(args)
    fmt = detect_format(args.file, args.format)
    report_target = _report_target(args)
    prior = read_report(args.resume) if args.resume else PriorReport({})
    # The sandbox's organisation must have every team the rows name: standard input is
    # read whole first, as a file is scanned.
    piped = sys.stdin.buffer.read() if args.file == "-" and args.sandbox else None
    total = None
    file_teams: frozenset[str] = frozenset()
    if args.file != "-" or piped is not None:
        scan = prescan(
            Path(args.file),
            fmt,
            resumed=lambda row: prior.marks_done(row, args.team_id),
            data=piped,
        )
        total, file_teams = scan.rows - scan.resumed, scan.team_ids
    if not prior.found and not args.quiet:  # a misspelt path would send every row again
        starts = "" if args.dry_run else ", and the report starts there"
        print(
            f"kirim-labels: {args.resume} does not exist yet: no row is skipped{starts}",
            file=sys.stderr,
        )
    # A missing token is a usage error before anything else happens.
    sends = not args.dry_run and not args.sandbox
    target = Target(
        token=_token(args) if sends else None,
        proxy=_proxy(args) if sends else None,
        redis_url=_redis_url(args) if not args.dry_run else None,
        sandbox_teams=file_teams | ({args.team_id} if args.team_id is not None else frozenset()),
        rows=total,
    )
    if target.proxy is not None and not args.quiet:
        print(f"kirim-labels: sending through the proxy {masked(target.proxy)}", file=sys.stderr)
    if target.redis_url is not None and not args.quiet:
        print(
            f"kirim-labels: sharing the pacer through Redis at {masked(target.redis_url)}",
            file=sys.stderr,
        )
    report = _open_report(report_target, prior, quiet=args.quiet)
    tally = Tally(total=total)
    seeding = Seeding(report=report, tally=tally, prior=prior, team_id=args.team_id)
    interrupted_by = 0
    try:
        stream, source = (io.BytesIO(piped), "<stdin>") if piped is not None else _open_input(args)
    except BaseException:
        seeding.close()
        raise
    try:
        rows = read_rows(stream, fmt, source)
        if args.dry_run:
            _dry_run(args, seeding, rows)
        else:
            interrupted_by = asyncio.run(_main_async(args, seeding, rows, target))
    finally:
        seeding.close()
        if stream is not sys.stdin.buffer:
            stream.close()
    _tell_the_end(args, argv, tally, report_target, interrupted=bool(interrupted_by))
    return _exit_status(tally, interrupted_by=interrupted_by)


def _tell_the_end(
    args: argparse.Namespace,
    argv: Sequence[str],
    tally: Tally,
    report_target: ReportTarget | None,
    *,
    interrupted: bool,
) -> None:
    """Print the summary and, when rows are not done, the command that resumes the job."""
    report = None
    if report_target is not None and report_target.path != STDOUT:
        report = str(report_target.path)
    if not args.quiet:  # stdout may be the report: the table must not go into it
        to_stdout = report_target is not None and report_target.path == STDOUT
        summary_to = sys.stderr if to_stdout else sys.stdout
        table = summary(tally, interrupted=interrupted, dry_run=args.dry_run, report=report)
        print(table, file=summary_to)
    elif problems := quiet_summary(tally, interrupted=interrupted, report=report):
        print(f"kirim-labels: {problems}", file=sys.stderr)
    if (
        report_target is not None
        and report_target.path != STDOUT
        and not args.dry_run
        and (interrupted or tally.problems)
    ):
        print(
            "kirim-labels: to send the rows not done again (fix the invalid ones first): "
            + _resume_command(argv, report_target.path),
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kirim-labels`` and ``python -m kirim_async``; returns the status."""
    given = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        # A row's text may hold what no encoding can write (a lone surrogate from an
        # escaped JSON line): shown escaped, never a UnicodeEncodeError mid-job.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    if any(word == "--token" or word.startswith("--token=") for word in given):
        # argparse would echo the value ("unrecognized arguments: --token abc").
        print(
            f"kirim-labels: error: there is no --token option: set {TOKEN_ENV} or pass "
            "--token-file PATH (a command line shows in ps and the shell's history)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    args = _parser().parse_args(given)
    try:
        return seed(args, given)
    except (UsageError, InputFileError) as exc:
        print(f"kirim-labels: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KirimError as exc:  # configuration the client refused (base URL, token)
        print(f"kirim-labels: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
