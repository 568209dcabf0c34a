"""Live progress of a seeding run, and the summary printed at its end."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

import attrs

from .._events import ResponseEvent
from ..bulk import LabelOutcome, SkipReason
from ._seedfile import row_error

__all__ = ["Progress", "Tally", "plural", "quiet_summary", "summary"]

LOG_EVERY = 2.0
SHOWN_FAILURES = 10


@attrs.define
class Tally:
    """Live counts for the progress display and the summary."""

    total: int | None
    started: float = attrs.field(factory=time.monotonic)
    counts: Counter[str] = attrs.field(factory=Counter)
    resumed: int = 0
    requests: int = 0
    rate_limited: int = 0
    last_429: float = float("-inf")
    problem_counts: Counter[str] = attrs.field(factory=Counter)
    stopped: int = 0
    """Rows the job did not send because it stopped."""
    stopped_by: str | None = None
    """The error that stopped the job, if one did."""
    pace: Callable[[], float | None] | None = None
    """The client's pace now (requests a second), once the client exists."""
    # The problems of the lowest rows as (-row, line), a heap whose top is the highest
    # row kept: rows finish out of order, and the summary shows the first rows.
    _shown: list[tuple[int, str]] = attrs.field(factory=list)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def problems(self) -> int:
        """Rows not done: invalid, failed, or skipped because the job stopped."""
        return sum(self.problem_counts.values())

    @property
    def failures(self) -> list[str]:
        """The problems of the lowest rows (at most ``SHOWN_FAILURES``), in row order."""
        return [line for _, line in sorted(self._shown, reverse=True)]

    def shown_counts(self) -> dict[str, int]:
        """The counts progress shows: every status, less those of a dry run or a real one."""
        keys = _DRY_RUN_STATUSES if self.counts["would-create"] else _STATUSES
        return {key: self.counts[key] for key in keys}

    @property
    def is_rate_limited(self) -> bool:
        return time.monotonic() - self.last_429 < 1.0

    def marker(self) -> str | None:
        """What the client's rate limiting does now: waiting out a 429, or the pace.

        None when it does neither: the marker clears once the client paces no more.
        """
        if self.is_rate_limited:
            return "rate-limited: waiting"
        pace = None if self.pace is None else self.pace()
        return None if pace is None else f"pacing at {pace:.0f}/s"

    def on_response(self, event: ResponseEvent) -> None:
        self.requests += 1
        if event.status == 429:
            self.rate_limited += 1
            self.last_429 = time.monotonic()

    def add(self, row: int, outcome: LabelOutcome, status: str) -> None:
        self.counts[status] += 1
        if outcome.skip_reason is SkipReason.STOPPED:
            self.stopped += 1
            if self.stopped_by is None:
                self.stopped_by = row_error(outcome)[1]
        if not outcome.is_ok:  # a repeat of a row that is done is fine
            self.problem_counts[status] += 1
            maybe = " (the label may exist: an attempt may have created it)"
            note = maybe if outcome.may_exist else ""
            shown = (-row, f"row {row}: {status}: {row_error(outcome)[1]}{note}")
            if len(self._shown) < SHOWN_FAILURES:
                heapq.heappush(self._shown, shown)
            else:  # keep the lower rows: drop the highest, which may be this one
                heapq.heappushpop(self._shown, shown)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        total = f"/{self.total}" if self.total is not None else ""
        counts = " ".join(f"{key}={n}" for key, n in self.shown_counts().items())
        marker = self.marker()
        sign = "" if marker is None else f"  [{marker}]"
        return f"{self.done}{total} rows, {self.done / elapsed:.1f} rows/s, {counts}{sign}"


class Progress:
    """A live bar on a TTY when tqdm is installed; else a log line every few seconds."""

    def __init__(self, tally: Tally, *, quiet: bool, stream: IO[str]) -> None:
        self._tally = tally
        self._stream = stream
        self._bar: Any = None
        self._ticker: asyncio.Task[None] | None = None
        if quiet:
            return
        if stream.isatty():
            try:
                from tqdm import tqdm  # noqa: PLC0415 - optional: the `cli` extra
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=tally.total, unit="row", file=stream, dynamic_ncols=True)
                return
        self._ticker = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(LOG_EVERY)
            print(f"progress: {self._tally.line()}", file=self._stream, flush=True)

    def update(self) -> None:
        if self._bar is not None:
            tally = self._tally
            self._bar.update(1)
            counts: dict[str, object] = dict(tally.shown_counts())
            marker = tally.marker()
            if marker is not None:  # "⏸ rate-limited: waiting", "⏸ pacing at 97/s"
                counts["⏸"] = marker
            self._bar.set_postfix(counts, refresh=False)

    async def aclose(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker


_STATUSES = ("created", "exists", "invalid", "failed", "skipped")
_DRY_RUN_STATUSES = ("would-create", "invalid", "skipped")  # a dry run fails nothing


def summary(tally: Tally, *, interrupted: bool, dry_run: bool, report: str | None) -> str:
    elapsed = time.monotonic() - tally.started
    order = _DRY_RUN_STATUSES if dry_run else _STATUSES
    lines = ["", "status        rows", "------------  ------"]
    lines += [f"{status:<12}  {tally.counts[status]:>6}" for status in order]
    if tally.resumed:
        lines.append(f"{'resumed':<12}  {tally.resumed:>6}  (done in an earlier run)")
    lines += [
        "------------  ------",
        f"{'total':<12}  {tally.done + tally.resumed:>6}",
        "",
        f"elapsed {elapsed:.1f}s, a dry run: nothing sent"
        if dry_run
        else f"elapsed {elapsed:.1f}s, {plural(tally.requests, 'request')}, "
        f"{tally.rate_limited} answered 429",
    ]
    if interrupted:
        lines.append(_INTERRUPTED)
    if stop := _stop_lines(tally):
        lines += ["", *stop]
    if tally.failures:
        lines += ["", _problems_heading(tally, report), *(f"  {line}" for line in tally.failures)]
    return "\n".join(lines)


def _problems_heading(tally: Tally, report: str | None) -> str:
    """``first problems:``, saying how many more there are and where to read them all."""
    more = tally.problems - len(tally.failures)
    if more <= 0:
        return "first problems:"
    where = f"every row's is in {report}" if report else "--report PATH lists every row"
    return f"first problems ({len(tally.failures)} of {tally.problems}; {where}):"


_INTERRUPTED = "interrupted: rows without a report line were not finished"


def plural(number: int, noun: str) -> str:
    """*number* and *noun*, plural unless it is one: ``1 row``, ``2 rows``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _stop_lines(tally: Tally) -> list[str]:
    """Why the job stopped, said once, above the rows that all repeat it."""
    if tally.stopped_by is None:
        return []
    were = "was" if tally.stopped == 1 else "were"
    return [f"stopped: {tally.stopped_by}", f"  {plural(tally.stopped, 'row')} {were} not sent"]


def quiet_summary(tally: Tally, *, interrupted: bool, report: str | None) -> str:
    """What ``-q`` prints: the problems alone, or nothing when every row is done."""
    lines = [_INTERRUPTED] if interrupted else []
    lines += _stop_lines(tally)
    if tally.problems:
        kinds = ", ".join(f"{status} {n}" for status, n in sorted(tally.problem_counts.items()))
        heading = _problems_heading(tally, report)
        lines.append(f"{plural(tally.problems, 'row')} not done ({kinds}); {heading}")
        lines += [f"  {line}" for line in tally.failures]
    return "\n".join(lines)
