"""The pacer (kirim_async.pacing) and a bulk job's control around it, on a fake clock."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from multidict import CIMultiDict

from kirim_async import RateLimitError, RetryPolicy
from kirim_async._hints import Hint, read_hint, read_quota, read_reset
from kirim_async._retry import Retrier
from kirim_async._sansio import error_from_response
from kirim_async.bulk._control import JobGate
from kirim_async.pacing import RateGate, Ticket
from kirim_async.pacing._measure import (
    BOUND_MARGIN,
    DOUBLED_AFTER,
    MEASURED_MARGIN,
    MEASURED_PROBE_PER_SECOND,
    WINDOW_PROBE_PER_SECOND,
    Estimate,
    HintReader,
    Phase,
    Ramp,
    best_refill,
    cut_to,
    estimate_rate,
    is_contended,
    is_sparse,
    probed_rate,
)
from kirim_async.testing import FakeClock
from kirim_async.testing._ratelimit import (
    FixedWindow,
    Limiter,
    RetryAfterStyle,
    SlidingWindow,
    TokenBucket,
    retry_after_seconds,
)

from .conftest import SleepRecorder


def kind_of(*args: Any, **kwargs: Any) -> str:
    """The kind of limiter :func:`estimate_rate` reads from *args* and *kwargs*."""
    estimate = estimate_rate(*args, **kwargs)
    assert estimate is not None
    return estimate.kind


def rate_gate(
    sleeps: SleepRecorder,
    clock: FakeClock,
    wall_clock: Callable[[], float],
    max_rate: float | None = None,
) -> RateGate:
    """A pacer on the fake clock, backing off as a client with the default policy does."""
    retrier = Retrier(policy=RetryPolicy(), sleep=sleeps, clock=clock)
    return RateGate(sleeps, clock, wall_clock, retrier.exponential_waits, max_rate=max_rate)


def job_gate(max_wait: float, pacer: RateGate) -> JobGate[RateGate]:
    """A job's gate around *pacer*, on the pacer's clock."""
    return JobGate(pacer, max_wait=max_wait, clock=pacer.clock, sleep=pacer.sleep)


def sent(gate: JobGate[RateGate], clock: FakeClock, epoch: int | None = None) -> Ticket:
    """A ticket for a send made now (in *epoch*, else the current one)."""
    pacer = gate.pacer
    return (pacer.epoch if epoch is None else epoch, pacer.sends, clock())


class TestRateGate:
    """The gate alone, on a fake clock."""

    def make(
        self, clock: FakeClock, sleeps: SleepRecorder, max_wait: float = 60
    ) -> JobGate[RateGate]:
        return job_gate(max_wait, rate_gate(sleeps, clock, lambda: 0.0))

    def rl(self, retry_after: float | None) -> RateLimitError:
        return RateLimitError(status=429, message="slow", retry_after=retry_after)

    async def test_a_429_closes_the_gate_for_everyone_once(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = self.make(clock, sleeps)
        gate.rate_limited(sent(gate, clock), self.rl(2.0))
        await asyncio.gather(*(gate.turn() for _ in range(10)))
        assert sleeps.waits[0] == pytest.approx(2.0)
        assert gate.sends == 10
        assert gate.throttled_seconds == pytest.approx(2.0)

    async def test_overlapping_429s_extend_rather_than_add(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = self.make(clock, sleeps)
        for _ in range(20):
            gate.learn(sent(gate, clock), 429, {})
            gate.rate_limited(sent(gate, clock), self.rl(1.0))
        assert gate.throttled_seconds == pytest.approx(1.0)
        assert gate.rate_limited_count == 20

    @pytest.mark.parametrize(
        ("status", "headers"),
        [
            (429, {}),
            (
                201,
                {
                    "X-RateLimit-Limit": "50",
                    "X-RateLimit-Remaining": "10",
                    "X-RateLimit-Reset": "1",
                },
            ),
        ],
        ids=["a 429", "hints that set a pace"],
    )
    def test_is_limiting_after_a_sign_of_the_limit(
        self, clock: FakeClock, sleeps: SleepRecorder, status: int, headers: dict[str, str]
    ) -> None:
        gate = self.make(clock, sleeps)
        gate.learn(sent(gate, clock), 201, {})
        assert not gate.is_limiting  # bulk workers skip their yield until this turns
        gate.learn(sent(gate, clock), status, headers)
        assert gate.is_limiting

    async def test_headers_set_the_pace(self, clock: FakeClock, sleeps: SleepRecorder) -> None:
        gate = self.make(clock, sleeps)
        headers = {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "0.100",
        }
        gate.learn(sent(gate, clock), 201, headers)
        assert gate.pacer.rate == pytest.approx(500, rel=0.01)
        for _ in range(100):
            await gate.turn()
        assert sum(sleeps.waits) == pytest.approx(100 / 500, rel=0.02)

    async def test_a_unix_time_reset_is_a_fixed_window_that_sets_no_pace(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # GitHub's meaning: the quota left may be spent, more comes when the window
        # ends. Read as a bucket's refill (used / seconds to reset), 5,000 an hour read
        # as 0.003/s and stalled the job.
        gate = job_gate(60, rate_gate(sleeps, clock, lambda: 1_800_000_000))
        gate.learn(
            sent(gate, clock),
            201,
            CIMultiDict(
                {
                    "x-ratelimit-limit": "5000",
                    "x-ratelimit-remaining": "4990",
                    "x-ratelimit-used": "10",
                    "x-ratelimit-reset": "1800003000",
                }
            ),
        )
        assert gate.pacer.rate is None
        assert gate.try_turn() is not None

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"X-RateLimit-Limit": "x", "X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "1"},
            {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "50", "X-RateLimit-Reset": "0"},
        ],
    )
    async def test_useless_headers_are_ignored(
        self, clock: FakeClock, sleeps: SleepRecorder, headers: dict[str, str]
    ) -> None:
        gate = self.make(clock, sleeps)
        gate.learn(sent(gate, clock), 201, headers)
        assert gate.pacer.rate is None

    def test_discord_reset_after_is_the_delta(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = self.make(clock, sleeps)
        hints = {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "1800000000.250",  # a Unix time with decimals
            "X-RateLimit-Reset-After": "0.250",
        }
        gate.learn(sent(gate, clock), 201, hints)
        assert gate.pacer.rate == pytest.approx(200, rel=0.01)

    @pytest.mark.parametrize(
        ("headers", "rate"),
        [
            # The IETF draft until 06 (express-rate-limit's standard headers): a delta.
            ({"RateLimit-Limit": "50", "RateLimit-Remaining": "0", "RateLimit-Reset": "1"}, 50),
            # With a draft-06 policy (no name, no q=), which says nothing read here.
            (
                {
                    "RateLimit-Policy": "50;w=1",
                    "RateLimit-Limit": "50",
                    "RateLimit-Remaining": "10",
                    "RateLimit-Reset": "1",
                },
                40,
            ),
            # GitLab's: a Unix-time reset ends a fixed window, no rate.
            (
                {
                    "RateLimit-Limit": "600",
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": "1800000060",
                },
                None,
            ),
        ],
    )
    def test_the_ietf_draft_s_earlier_fields_read_as_x_ratelimit(
        self, clock: FakeClock, sleeps: SleepRecorder, headers: dict[str, str], rate: float | None
    ) -> None:
        gate = job_gate(60, rate_gate(sleeps, clock, lambda: 1_800_000_000))
        gate.learn(sent(gate, clock), 201, CIMultiDict(headers))
        assert gate.pacer.rate == (None if rate is None else pytest.approx(rate, rel=0.01))
        assert read_quota(CIMultiDict(headers)) == float(headers["RateLimit-Remaining"])

    @pytest.mark.parametrize(
        ("retry_after", "closed_for"),
        [(None, 30.0), (2.0, 2.0)],  # Retry-After, when there, wins
    )
    def test_a_429_without_retry_after_waits_for_the_reset_its_hints_name(
        self,
        clock: FakeClock,
        sleeps: SleepRecorder,
        retry_after: float | None,
        closed_for: float,
    ) -> None:
        # GitHub's primary limit: a 429 (or 403) with the quota spent and the window's end
        # as a Unix time, no Retry-After. A guessed backoff of a fraction of a second
        # sent again long before the window ended.
        gate = job_gate(600, rate_gate(sleeps, clock, lambda: 1_800_000_000))
        ticket = sent(gate, clock)
        headers = CIMultiDict(
            {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": "1800000030",
            }
        )
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        # Built as the client builds it: the reset is read off the answer with the error.
        error = error_from_response(429, "Too Many Requests", headers, b"", 1_800_000_000)
        assert isinstance(error, RateLimitError)
        gate.learn(ticket, 429, headers)
        assert gate.rate_limited(ticket, error) == pytest.approx(closed_for)

    def test_ietf_policy_sets_the_pace(self, clock: FakeClock, sleeps: SleepRecorder) -> None:
        gate = self.make(clock, sleeps)
        gate.learn(
            sent(gate, clock),
            201,
            CIMultiDict(
                {"RateLimit-Policy": '"default";q=600;w=60', "RateLimit": '"default";r=5;t=3'}
            ),
        )
        assert gate.pacer.rate == pytest.approx(10)

    async def test_ietf_remaining_is_spent_at_once(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = self.make(clock, sleeps)
        gate.learn(
            sent(gate, clock),
            201,
            CIMultiDict(
                {"RateLimit-Policy": '"default";q=600;w=60', "RateLimit": '"default";r=5;t=3'}
            ),
        )
        for _ in range(5):
            await gate.turn()
        assert sleeps.waits == []  # five left: no wait

    @pytest.mark.parametrize(
        "reset",
        ["1800000000000", "1e308", "99999999", "-5", "nan", "inf"],
        ids=["epoch milliseconds", "1e308", "three years", "negative", "NaN", "inf"],
    )
    def test_a_hint_that_cannot_be_true_is_ignored_and_logged_once(
        self, clock: FakeClock, sleeps: SleepRecorder, reset: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        gate = job_gate(60, rate_gate(sleeps, clock, lambda: 1_800_000_000))
        hints = {
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
        }
        with caplog.at_level(logging.DEBUG, logger="kirim_async"):
            for _ in range(3):
                gate.learn(sent(gate, clock), 201, hints)
        assert gate.pacer.rate is None  # no pace at all, rather than one of 1e-11 requests/s
        assert [r.getMessage() for r in caplog.records if "hint ignored" in r.getMessage()] == [
            f"rate-limit hint ignored: X-RateLimit-Reset {reset!r} cannot be true"
        ]

    def test_a_burst_of_429s_from_one_event_cuts_once(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # Retry-After 0 (or a date already past) closes nothing: before, each 429 of the
        # burst cut again, 882 -> 618 -> ... -> 1 request/s in 10 ms.
        gate = self.make(clock, sleeps)
        for _ in range(100):
            assert gate.try_turn() is not None
            clock.advance(0.001)  # 1,000 sends a second
        sent_in = gate.pacer.epoch
        for _ in range(30):  # the in-flight requests of that burst, all answered 429
            gate.learn(sent(gate, clock, sent_in), 429, {})
            gate.rate_limited(sent(gate, clock), self.rl(0.0))
        assert gate.pacer.rate == pytest.approx(700, rel=0.05)
        assert gate.throttled_seconds == 0
        gate.learn(
            sent(gate, clock, gate.pacer.epoch), 429, {}
        )  # sent after the cut, but within a second of it
        gate.rate_limited(sent(gate, clock), self.rl(0.0))
        assert gate.pacer.rate == pytest.approx(700, rel=0.05)
        clock.advance(1.0)
        before = gate.pacer.rate
        assert before is not None
        gate.learn(sent(gate, clock, gate.pacer.epoch), 429, {})  # a new event: cut again
        gate.rate_limited(sent(gate, clock), self.rl(0.0))
        assert gate.pacer.rate == pytest.approx(0.7 * before, rel=0.01)

    async def test_429s_that_come_whatever_the_pace_do_not_collapse_it(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # 1 % of answers are 429s of other callers' making, for 30 s. Before, the pace
        # fell from thousands a second to 10 within 30 s, and climbed back by 0.5/s.
        gate = self.make(clock, sleeps)

        async def answer(seconds: float, every: int | None) -> None:
            for n in range(int(seconds * 1000)):
                await gate.turn()
                epoch = gate.pacer.epoch
                clock.advance(0.001)  # the job could send 1,000 a second
                if every is not None and n % every == every - 1:
                    gate.learn(sent(gate, clock, epoch), 429, {})
                    gate.rate_limited(sent(gate, clock), self.rl(0.0))
                else:
                    gate.learn(sent(gate, clock, epoch), 201, {})

        await answer(2, None)
        await answer(30, 100)
        assert gate.pacer.rate is not None
        assert gate.pacer.rate >= 0.5 * 1000  # cut, but never far below what was admitted
        before = gate.sends
        await answer(5, None)  # the 429s stop: within 5 s, back to the full rate
        sent_at_start = gate.sends
        started = clock()
        await answer(1, None)
        assert sent_at_start > before
        assert (gate.sends - sent_at_start) / (clock() - started) >= 0.9 * 1000

    def test_5xx_is_a_fault_not_congestion(self, clock: FakeClock, sleeps: SleepRecorder) -> None:
        gate = self.make(clock, sleeps)
        for status in (500, 502, 503, 504):
            gate.learn(sent(gate, clock, gate.pacer.epoch), status, {})
        assert gate.pacer.rate is None
        assert not gate.is_limiting

    async def test_aimd_without_headers(self, clock: FakeClock, sleeps: SleepRecorder) -> None:
        gate = self.make(clock, sleeps)
        for _ in range(100):
            await gate.turn()
            clock.advance(0.01)  # 100 sends a second
        gate.rate_limited(sent(gate, clock), self.rl(0.1))  # a cheap 429: a gentle cut
        assert gate.pacer.rate == pytest.approx(70, rel=0.05)
        gate.rate_limited(sent(gate, clock), self.rl(0.1))  # same closing: no second cut
        assert gate.pacer.rate == pytest.approx(70, rel=0.05)
        clock.advance(1.0)
        assert gate.pacer.rate == pytest.approx(77, rel=0.05)  # probes back up linearly
        clock.advance(2.0)
        # No 429 for more than a second, and one costs a tenth of a second: the pace
        # doubles each second after the first (the limit may have moved).
        assert gate.pacer.rate == pytest.approx(280, rel=0.05)
        gate.rate_limited(sent(gate, clock), self.rl(0.1))
        assert gate.pacer.rate == pytest.approx(196, rel=0.05)

    async def costly_429_at_100_a_second(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> JobGate[RateGate]:
        """A gate that sent 100 requests a second for a second, then met a 429 of 1 s."""
        gate = self.make(clock, sleeps)
        for _ in range(100):
            await gate.turn()
            clock.advance(0.01)
        gate.rate_limited(sent(gate, clock), self.rl(1.0))
        return gate

    async def test_a_blind_costly_cut_starts_slow_then_creeps_once_measured(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # Nothing measured yet, and each 429 costs a whole second: cut deep, then double
        # each second from the reopening until the next 429 (TCP's slow start); a pace
        # left at a tenth of the send rate used to creep up linearly, for many seconds
        # under the limit when the job's first sends were slow.
        gate = await self.costly_429_at_100_a_second(clock, sleeps)
        assert gate.pacer.rate == pytest.approx(10, rel=0.05)
        clock.advance(5.0)  # closed for a second, then idle: the climb starts with a send
        assert gate.pacer.rate == pytest.approx(10, rel=0.05)
        start = clock()
        for _ in range(60):
            ticket = await gate.turn()
            gate.learn(ticket, 201, {})
        climbed = gate.pacer.rate
        assert climbed is not None
        assert climbed == pytest.approx(10 * 2 ** (clock() - start), rel=0.05)
        assert climbed > 40
        # Each probe past the limit costs a whole second: once measured, the pace creeps
        # (by 3 % of it a second at most), however quiet.
        ticket = await gate.turn()
        gate.learn(ticket, 429, {})
        gate.rate_limited(ticket, self.rl(1.0))
        cut = gate.pacer.rate
        assert cut is not None
        clock.advance(10)
        crept = gate.pacer.rate
        assert crept is not None
        assert cut < crept <= 1.3 * cut

    async def test_the_slow_start_begins_at_the_reopening_after_a_cut_measured_again(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # A cut whose phase still has answers out is measured again when the gate
        # reopens; the slow start it sets must begin there, not wait for the next phase.
        gate = await self.costly_429_at_100_a_second(clock, sleeps)
        clock.advance(1.0)
        first, second = await gate.turn(), await gate.turn()
        gate.learn(first, 429, {})
        gate.rate_limited(first, self.rl(1.0))  # too short a phase: blind, and costly
        cut = gate.pacer.rate
        assert cut is not None
        gate.learn(second, 429, {})  # the phase's last answer, during the closing
        gate.rate_limited(second, self.rl(1.0))  # the same event: no second cut
        assert gate.pacer.rate == cut
        for _ in range(5):
            ticket = await gate.turn()
            gate.learn(ticket, 201, {})
        climbed = gate.pacer.rate
        assert climbed is not None
        assert climbed > 2 * cut

    async def test_a_slow_start_ends_at_its_first_429_however_soon_after_the_cut(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # Sparse 429s within a second of a cut may be other callers' and cut nothing;
        # but a slow start climbs until the limit refuses it. Its 429s went uncounted
        # while it climbed on, and the ramp, read up to a later send, read the rate high.
        gate = self.make(clock, sleeps)
        for _ in range(100):
            await gate.turn()
            clock.advance(0.01)
        gate.rate_limited(sent(gate, clock), self.rl(0.6))  # blind, costly: a slow start
        cut_at, start = clock(), gate.pacer.rate
        assert start == pytest.approx(10, rel=0.05)
        clock.advance(0.6)
        for _ in range(2):
            ticket = await gate.turn()
            gate.learn(ticket, 201, {})
        ticket = await gate.turn()
        gate.learn(ticket, 429, {})
        assert clock() - cut_at < 1.0
        gate.rate_limited(ticket, self.rl(0.6))
        cut = gate.pacer.rate
        assert cut is not None
        clock.advance(1.6)
        assert gate.pacer.rate is not None
        assert gate.pacer.rate < 1.2 * cut  # no longer doubling

    async def test_the_pace_comes_back_once_429s_that_are_not_ours_stop(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # 1 % of answers are other callers' 429s (Retry-After 0.1) from the first send,
        # so no second of the job shows the full rate; then they stop. Within 5 s the
        # job is back to >= 90 % of the 1,000/s it could send (it was: 21 %, creeping
        # up linearly for minutes).
        gate = self.make(clock, sleeps)

        async def answer(seconds: float, every: int | None) -> float:
            started, sends = clock(), gate.sends
            while clock() - started < seconds:
                ticket = await gate.turn()
                clock.advance(0.001)  # the job could send 1,000 a second
                if every is not None and gate.sends % every == 0:
                    gate.learn(ticket, 429, {})
                    gate.rate_limited(ticket, self.rl(0.1))
                else:
                    gate.learn(ticket, 201, {})
            return (gate.sends - sends) / (clock() - started)

        await answer(20, 100)
        await answer(5, None)  # the 429s stop
        assert await answer(1, None) >= 0.9 * 1000

    async def test_a_costly_429_cuts_deep_when_nothing_is_measured(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # Each 429 of an integer Retry-After costs the job a second: fewer of them.
        gate = await self.costly_429_at_100_a_second(clock, sleeps)
        assert gate.pacer.rate == pytest.approx(10, rel=0.05)  # the next phase measures

    async def job_against(
        self,
        limiter: Limiter,
        clock: FakeClock,
        sleeps: SleepRecorder,
        retry_after: RetryAfterStyle,
        *,
        sends: int = 6000,
        others: Callable[[float], None] | None = None,
        sent_at: list[float] | None = None,
    ) -> tuple[JobGate[RateGate], int]:
        """*sends* through a gate against *limiter*; the gate and the 429s met.

        The job first sends at 6,400/s (32 workers, 5 ms), one at a time on the fake
        clock. *retry_after* is the style of the 429s, as the fake server plays it
        (``integer``: whole seconds, rounded up; ``seconds``; ``none``). *others* is
        called with the time
        before each send: what other callers do by then (say, spend part of the
        limiter's rate); *sent_at* collects when each send went out.
        """
        gate = self.make(clock, sleeps, max_wait=math.inf)
        saved = random.getstate()
        random.seed(3)  # the backoff's jitter, without Retry-After: the same every run
        limited = 0
        for _ in range(sends):
            ticket = await gate.turn()
            if gate.pacer.rate is None:
                clock.advance(1 / 6400)
            if others is not None:
                others(clock())
            if sent_at is not None:
                sent_at.append(clock())
            if limiter.try_take():
                gate.learn(ticket, 201, {})
                continue
            limited += 1
            gate.learn(ticket, 429, {})
            asked = retry_after_seconds(retry_after, limiter.seconds_until_token)
            gate.rate_limited(ticket, self.rl(asked))
        random.setstate(saved)
        assert gate.sends == sends
        return gate, limited

    @pytest.mark.parametrize(
        ("retry_after", "most_429s"),
        [("integer", 3), ("seconds", 70), ("none", 70)],
    )
    async def test_the_pace_settles_under_a_token_bucket(
        self,
        clock: FakeClock,
        sleeps: SleepRecorder,
        retry_after: RetryAfterStyle,
        most_429s: int,
    ) -> None:
        # A token bucket of 300/s holding 30. The pace is measured from what the
        # bucket admitted, not only cut blindly: few 429s, then just under 300/s.
        bucket = TokenBucket(rate=300, burst=30, clock=clock)
        gate, limited = await self.job_against(bucket, clock, sleeps, retry_after)
        assert limited <= most_429s
        assert gate.pacer.rate is not None
        assert 0.85 * 300 <= gate.pacer.rate <= 1.1 * 300  # probing may pass it a little

    async def test_a_refill_read_from_a_short_phase_is_measured_again(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # 50/s holding 30: the slow start after the first 429 begins far over the rate,
        # so the next phase admits the burst and 4 more in 0.09 s, a refill read 18 %
        # low (the job crept on at 41/s). A reading of so few sends climbs once more,
        # from under it, and the ramp reads the rate.
        bucket = TokenBucket(rate=50, burst=30, clock=clock)
        gate, limited = await self.job_against(bucket, clock, sleeps, "integer", sends=1000)
        assert limited <= 4
        assert gate.pacer.rate is not None
        assert 0.9 * 50 <= gate.pacer.rate <= 1.1 * 50

    @pytest.mark.parametrize("window", [FixedWindow, SlidingWindow])
    async def test_the_pace_settles_under_a_window(
        self, clock: FakeClock, sleeps: SleepRecorder, window: type[FixedWindow | SlidingWindow]
    ) -> None:
        # 300 per window of 1 s, and 429s that round the wait up to a whole second.
        # A window's quota comes back whole after a closing, so a phase reads as a
        # bucket of 300 refilling at next to nothing (the pace was stuck at 0.6x), and
        # a second that straddles two windows admits up to 600 (the pace was stuck
        # over the rate, a 429 every other second).
        gate, limited = await self.job_against(window(300, 1.0, clock), clock, sleeps, "integer")
        assert limited <= 4 * 32  # the first 429 with the sends in flight, then 3 more
        assert gate.pacer.rate is not None
        assert 0.9 * 300 <= gate.pacer.rate <= 300

    async def test_the_pace_takes_back_what_another_caller_leaves(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # Four processes, one token, each its own pacer: each measured what the others
        # left it, crept up 0.1 % a second once they finished, and the last of them
        # took minutes. Here another caller spends 200/s of a 300/s bucket from the
        # 5th second to the 12th: the 429s it causes come at a pace under the refill
        # measured before, so the pace probes fast after quiet, and is back at the
        # rate within seconds of it stopping.
        start = clock()
        bucket = TokenBucket(rate=300, burst=30, clock=clock)

        def others(now: float) -> None:  # they take 200 of the 300 tokens a second
            bucket.rate = 100 if 5.0 <= now - start < 12.0 else 300

        sent_at: list[float] = []
        await self.job_against(
            bucket, clock, sleeps, "integer", sends=7500, others=others, sent_at=sent_at
        )
        late = [at - start for at in sent_at if 18.0 <= at - start < 23.0]
        assert len(late) >= 0.85 * 300 * 5
        ideal = 7 + (7500 - 7 * 100) / 300  # 100/s for 7 s, then the whole rate
        assert sent_at[-1] - start < 1.3 * ideal  # each 429 costs a second

    async def test_a_slow_start_is_no_bound_on_a_window(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # A window of 1,000 a second: the slow start after the first 429 climbs from
        # a tenth of the send rate. The pace it started at was read as a bound on the
        # window's rate (400/s), and the job crept on at that for good.
        gate, _ = await self.job_against(
            FixedWindow(1000, 1.0, clock), clock, sleeps, "integer", sends=20000
        )
        assert gate.pacer.rate is not None
        assert gate.pacer.rate >= 0.85 * 1000

    async def test_a_small_window_probed_past_is_bounded_not_read_again(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # 50 a second in a sliding window: probing up 3 % a second from its reading,
        # during each closing of a second too, the pace passed the rate within the next
        # phase; read as a window again, it went back to the same reading and looped, a
        # 429 every other second (1.9x). The probe now starts at the reopening, and the
        # phase it ends bounds the rate however short.
        start = clock()
        _, limited = await self.job_against(
            SlidingWindow(50, 1.0, clock), clock, sleeps, "integer", sends=1000
        )
        assert limited <= 3 * 32
        assert clock() - start < 1.15 * 1000 / 50

    async def test_a_window_still_shut_after_a_guessed_pause_costs_no_cut(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        # No Retry-After: the pause is the client's guess. A phase that admits next to
        # nothing came too soon, and cutting then, with the next pause long, is the
        # cut to 10 % meant for a measured phase.
        window = FixedWindow(300, 1.0, clock)
        gate, _ = await self.job_against(window, clock, sleeps, "none")
        assert gate.pacer.rate is not None
        assert gate.pacer.rate >= 0.8 * 300

    async def test_max_rate_caps_what_hints_and_probing_would_allow(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = job_gate(60, rate_gate(sleeps, clock, lambda: 0.0, max_rate=20))
        assert gate.pacer.rate == 20
        assert gate.is_limiting  # paced from the first send
        hints = {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "40",
            "X-RateLimit-Reset": "0.1",
        }
        gate.learn(sent(gate, clock), 201, hints)  # the server would take 100/s, and a burst of 40
        assert gate.pacer.rate == 20
        for _ in range(5):
            await gate.turn()
        assert sleeps.waits == pytest.approx([0.05] * 4)  # no burst either
        gate = job_gate(60, rate_gate(sleeps, clock, lambda: 0.0, max_rate=20))
        gate.rate_limited(sent(gate, clock), self.rl(0.1))
        assert gate.pacer.rate == pytest.approx(14)  # AIMD cuts from the cap
        clock.advance(60)
        assert gate.pacer.rate == 20  # and probes back up to it, no further
        sleeps.waits.clear()
        for _ in range(3):
            await gate.turn()
        assert sleeps.waits == pytest.approx([0.05] * 2)  # still no burst after a cut

    async def test_missing_retry_after_backs_off_exponentially(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = self.make(clock, sleeps)
        closed = []
        for _ in range(5):
            before = gate.throttled_seconds
            clock.advance(8)  # past the longest closing, within the budget's 60 s run
            gate.rate_limited(sent(gate, clock), self.rl(None))
            closed.append(gate.throttled_seconds - before)
        for wait, ceiling in zip(closed, [0.5, 1, 2, 4, 8], strict=True):
            assert 0 <= wait <= ceiling

    def test_an_unbroken_run_of_429s_spends_the_budget(self, clock: FakeClock) -> None:
        gate = self.make(clock, SleepRecorder(clock), max_wait=5)
        for _ in range(5):  # broken by a success: never spent
            gate.learn(sent(gate, clock), 429, {})
            gate.rate_limited(sent(gate, clock), self.rl(0))
            clock.advance(3)
            gate.learn(sent(gate, clock), 201, {})
        for _ in range(2):
            gate.learn(sent(gate, clock), 429, {})
            gate.rate_limited(sent(gate, clock), self.rl(0))
            clock.advance(3)
        gate.learn(sent(gate, clock), 429, {})
        with pytest.raises(RateLimitError):
            gate.rate_limited(sent(gate, clock), self.rl(0))  # 6 s of nothing but 429s
        assert gate.throttled_seconds == 0
        assert gate.is_halted

    async def test_budget_exhaustion_fails_every_later_turn(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = self.make(clock, sleeps, max_wait=5)
        gate.rate_limited(sent(gate, clock), self.rl(4))
        exhausting = self.rl(10)
        with pytest.raises(RateLimitError) as info:
            gate.rate_limited(sent(gate, clock), exhausting)
        assert info.value is exhausting
        refused = []
        for _ in range(2):
            with pytest.raises(RateLimitError) as info:
                await gate.turn()
            refused.append(info.value)
        assert refused[0] is not refused[1]
        assert refused[0].retry_after == 10
        later = self.rl(1)
        with pytest.raises(RateLimitError) as info:
            gate.rate_limited(
                sent(gate, clock), later
            )  # a 429 after the budget is spent fails at once
        assert info.value is later


class TestOnePacerForTheClient:
    """The pacer under every call: quiet services are not slowed by guesswork."""

    async def test_an_idle_guessed_pace_is_forgotten(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = rate_gate(sleeps, clock, lambda: 0.0)
        for _ in range(20):
            ticket = await gate.turn()
            clock.advance(0.01)
        gate.learn(ticket, 429, {})
        gate.rate_limited(ticket, RateLimitError(status=429, message="slow", retry_after=0.1))
        assert gate.rate is not None
        await gate.turn()  # held back by the closing, then by the pace
        clock.advance(9.0)
        await gate.turn()
        assert gate.rate is not None  # not idle long enough
        clock.advance(10.5)
        await gate.turn()
        rates_after = [gate.rate]  # read anew (mypy would keep the narrowing above)
        assert rates_after == [None]  # it held nothing back for 10 s: dropped
        assert gate.try_turn() is not None  # the fast path again

    async def test_a_pace_the_hints_state_is_kept_however_idle(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = rate_gate(sleeps, clock, lambda: 0.0)
        hints = {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}
        gate.learn(await gate.turn(), 201, hints)
        clock.advance(60)
        await gate.turn()
        assert gate.rate == pytest.approx(50, rel=0.01)

    async def test_a_few_sends_meeting_a_429_set_no_pace(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        gate = rate_gate(sleeps, clock, lambda: 0.0)
        ticket = await gate.turn()
        gate.learn(ticket, 429, {})
        pause = gate.rate_limited(
            ticket, RateLimitError(status=429, message="slow", retry_after=2.0)
        )
        assert pause == pytest.approx(2.0)
        assert gate.rate is None
        await gate.turn()
        assert sleeps.waits == pytest.approx([2.0])  # the closing, and nothing more

    async def test_a_job_s_max_rate_spaces_its_own_turns_only(
        self, clock: FakeClock, sleeps: SleepRecorder
    ) -> None:
        pacer = rate_gate(sleeps, clock, lambda: 0.0)
        job = JobGate(pacer, max_wait=60, clock=clock, sleep=sleeps, max_rate=10)
        assert job.rate == 10
        assert job.is_limiting
        for _ in range(3):
            await job.turn()
        assert sleeps.waits == pytest.approx([0.1, 0.1])
        assert pacer.try_turn() is not None  # the client's other calls are not capped


class TestMeasure:
    """The pure measurements every pacer shares (kirim_async.pacing._measure)."""

    @pytest.mark.parametrize(
        ("pace", "start", "rate", "burst"),
        [
            (lambda t: 500.0, 0.0, 300.0, 30.0),  # a steady pace over the limit
            (lambda t: 76.0 * 2.0**t, 1.0, 300.0, 30.0),  # a slow start, doubling
            (lambda t: 100.0 * 2.0**t, 0.5, 1000.0, 100.0),
        ],
    )
    def test_the_rate_is_read_from_a_phase_that_climbed_from_under_it(
        self, pace: Callable[[float], float], start: float, rate: float, burst: float
    ) -> None:
        # A bucket of `burst`, full at `start`, refilling at `rate`, refuses the first
        # send once the pace has spent it; what a pace under the rate left of the
        # refill was wasted (the bucket was full), and the two phases' equation alone
        # reads that much low: the slow starts' phases read 246/s and 524/s.
        level, admitted, t, step = burst, 0.0, start, 1e-5
        while level >= 0:
            level = min(burst, level + (rate - pace(t)) * step)
            admitted += pace(t) * step
            t += step
        ramp = Ramp.of(pace, start, t)
        estimate = estimate_rate(round(admitted), t - start, (round(burst), 0.0), 1.0, ramp=ramp)
        assert estimate is not None
        assert estimate.kind == "refill"
        assert estimate.rate == pytest.approx(rate, rel=0.01)

    def test_two_phases_of_a_bucket_read_its_refill(self) -> None:
        # A bucket of 30 refilling 300/s: the first phase (from full, as fast as the
        # client sends) admits 31.5 in 5 ms, the next after a closing of 1 s 68 in 0.127 s.
        estimate = estimate_rate(68, 0.127, (31, 0.005), 1.0)
        assert estimate is not None
        assert estimate.kind == "refill"
        assert estimate.rate == pytest.approx(300, rel=0.03)
        rate, probe = cut_to(450.0, estimate, 1.0)
        assert rate == pytest.approx(0.97 * estimate.rate)
        assert probe == MEASURED_PROBE_PER_SECOND

    @pytest.mark.parametrize(
        ("headers", "seconds"),
        [
            ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000030"}, 30.0),
            ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0.25"}, 0.25),
            ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.5"}, 1.5),
            ({"RateLimit-Remaining": "0", "RateLimit-Reset": "7"}, 7.0),
            ({"RateLimit": '"default";r=0;t=12'}, 12.0),
            ({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "5"}, None),  # not spent
            ({"RateLimit": '"default";r=2;t=12'}, None),
            ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1799999990"}, None),  # past
            ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1e308"}, None),
            ({"X-RateLimit-Remaining": "0"}, None),
            ({}, None),
        ],
    )
    def test_a_spent_quota_s_hints_name_the_wait_until_it_is_back(
        self, headers: dict[str, str], seconds: float | None
    ) -> None:
        assert read_reset(CIMultiDict(headers), 1_800_000_000) == seconds

    def test_a_refill_read_from_few_sends_past_the_burst_is_not_precise(self) -> None:
        # One request more or less (a bucket's fractional token) moves a refill read
        # from 9 sends past the burst by 11 %; from 87, by about 1 %.
        few = estimate_rate(40, 0.102, (31, 0.0), 1.0)
        many = estimate_rate(117, 0.293, (30, 0.005), 1.0)
        assert few is not None
        assert many is not None
        assert (few.kind, few.precise) == ("refill", False)
        assert (many.kind, many.precise) == ("refill", True)

    def test_a_window_s_quota_coming_back_whole_is_no_bucket(self) -> None:
        # 300 per window of 1 s: the first phase spends it in 70 ms; after a closing of
        # a whole second, a paced phase admits a quota again, whatever its length.
        # Read as a bucket it refills at nothing; it is 300 per cycle of phase and pause.
        estimate = estimate_rate(300, 0.64, (300, 0.07), 1.0)
        assert estimate is not None
        assert estimate.kind == "window"
        assert estimate.rate == pytest.approx(300 / 1.07)
        assert estimate.window
        rate, probe = cut_to(413.0, estimate, 1.0)
        assert rate == pytest.approx(300 / 1.07)  # under the rate already: no margin
        assert probe == WINDOW_PROBE_PER_SECOND  # the estimate reads low: climb faster
        # A straddle of two windows admits more than a quota: still no bucket.
        assert kind_of(417, 0.99, (300, 0.07), 1.0) == "window"
        # A phase that admitted far less than the first met other callers spending the
        # same quota (four processes, one token): it read as a window of 9.5/s, and
        # crept up from there for two minutes.
        assert kind_of(10, 0.11, (46, 0.055), 1.0) == "admitted"

    def test_a_window_is_read_from_a_quota_of_sixteen_or_more(self) -> None:
        # Four callers on one bucket: a first phase of 10 and a phase of 5 after a
        # pause read as a window of 4.8/s, and the pace crept from there for minutes.
        assert kind_of(5, 0.177, (10, 0.006), 1.0) == "admitted"
        assert kind_of(16, 0.2, (16, 0.006), 1.0) == "window"

    def test_a_window_cannot_read_far_under_what_a_second_admitted(self) -> None:
        # A window admits two quotas in a second at most (one straddling two windows).
        # A reading of 17/s after seconds of 320/s admitted is others spending it.
        assert kind_of(31, 0.055, (16, 0.013), 1.0, sustained=320.0) == "admitted"
        assert kind_of(300, 0.6, (300, 0.07), 1.0, sustained=600.0) == "window"

    def test_a_short_phase_probed_up_from_a_window_bounds_it(self) -> None:
        # The pace probed up from the window's reading, and was refused within the
        # phase: read as a window again, it went back to the same reading and looped.
        estimate = estimate_rate(50, 0.956, (50, 0.01), 1.02, pace=48.6, probed=True)
        assert estimate == Estimate(48.6, "bound")
        assert kind_of(50, 0.956, (50, 0.01), 1.02, pace=48.6) == "window"

    def test_a_refill_well_under_the_best_is_contention(self) -> None:
        assert is_contended(300.0, Estimate(150.0, "refill"))
        assert is_contended(300.0, Estimate(150.0, "admitted"))
        assert not is_contended(300.0, Estimate(295.0, "refill"))  # the same, re-measured
        assert not is_contended(300.0, Estimate(150.0, "window"))  # a window misread
        assert not is_contended(0.0, Estimate(150.0, "refill"))  # nothing measured before

    def test_a_best_read_from_few_sends_needs_a_reading_far_under_it(self) -> None:
        # The job without Retry-After on a 300/s bucket, one run in two: a refill read
        # from 23 sends past the burst read 364.8/s, and the precise 306.3/s after it
        # was taken for others spending the quota; the pace doubled after each quiet
        # second, and met a 429 every second or so (1.15-1.18x, against 1.05-1.07x).
        rough = Estimate(364.8, "refill", precise=False)
        assert not is_contended(best_refill(rough), Estimate(306.3, "refill"))
        assert is_contended(best_refill(rough), Estimate(0.7 * 364.8, "refill"))
        precise = Estimate(364.8, "refill")
        assert best_refill(precise) == 364.8
        assert is_contended(best_refill(precise), Estimate(306.3, "refill"))

    def test_a_long_window_phase_ends_at_a_pace_just_over_its_rate(self) -> None:
        # A cycle and a half and more without a 429: the pace 1.5 cycles before the
        # refused send (or at the phase's start) was under the rate (a window refuses
        # within one of being passed), and bounds it.
        estimate = estimate_rate(1204, 4.1, (300, 0.07), 1.0, pace=293.0)
        assert estimate == Estimate(293.0, "bound")
        # Probing up 3 % a second from the window's estimate (278/s) crossed 300/s two
        # seconds in: read as a window again, the pace went back to 278 and looped, a
        # 429 every three seconds (1.5x). The pace at the phase's start bounds it.
        looped = estimate_rate(593, 2.005, (300, 0.067), 1.01, pace=286.5)
        assert looped == Estimate(286.5, "bound")
        rate, probe = cut_to(305.0, estimate, 1.0)
        assert rate == pytest.approx(BOUND_MARGIN * 293.0)  # the probe crosses it slowly
        assert probe == MEASURED_PROBE_PER_SECOND

    def test_a_phase_after_a_short_pause_reads_what_it_admitted(self) -> None:
        estimate = estimate_rate(40, 0.1, (300, 0.07), 0.01)
        assert estimate is not None
        assert estimate.kind == "admitted"
        assert estimate.rate == pytest.approx(400)
        assert estimate_rate(3, 0.01, (300, 0.07), 1.0) is None  # too short to measure

    def test_a_phase_is_measured_from_all_its_answers_once_they_are_in(self) -> None:
        phase = Phase(epoch=1, seq=100, start=10.0)
        # Sends 101-108 went out 10 ms apart; 104's 429 was part of no new event.
        for n in (101, 102, 103, 105):
            phase.learn(10.0 + (n - 101) / 100, True)
        phase.learn(10.03, False)  # 104
        phase.learn(10.06, False)  # 107: the event
        assert phase.admitted_before(107) == 5  # 101-106 but 104; 106 not answered yet
        phase.end(108, (107, 10.06))
        assert not phase.complete
        assert phase.measure()[0] == 5
        assert phase.measure()[1] == pytest.approx(0.06)
        phase.learn(10.05, False)  # 106 was refused after all
        phase.learn(10.07, True)  # 108 was admitted: a token had come
        assert phase.answered == phase.sent  # complete
        assert phase.measure()[0] == 5
        assert phase.measure()[1] == pytest.approx(0.07)

    def test_429s_soon_after_a_cut_are_that_event_unless_a_tenth_and_three(self) -> None:
        assert is_sparse(0.5, 2, 10)  # two: other callers' may come whatever the pace
        assert is_sparse(0.5, 3, 100)  # three, but 3 % of the answers
        assert not is_sparse(0.5, 3, 20)  # 15 %: the pace is still too high
        assert not is_sparse(1.5, 0, 10)  # a second after the cut: a new event

    def test_a_ramp_wastes_the_refill_it_was_under(self) -> None:
        # Paced at 150/s for half a second, then 600/s: a bucket of 300/s, full,
        # wasted 75 of its refill; one of 100/s, nothing.
        ramp = Ramp.of(lambda t: 150.0 if t < 0.5 else 600.0, 0.0, 0.8)
        assert ramp is not None
        assert ramp.wasted(300.0) == pytest.approx(75)
        assert ramp.wasted(100.0) == 0
        assert Ramp.of(lambda t: 600.0, 0.0, 0.01) is None  # too short to read

    def test_a_climbing_phase_reads_the_refill_it_wasted(self) -> None:
        # That phase, after a first of 31 in 5 ms: 31 + 300 * 0.795 - 75 admitted.
        # The two phases' equation alone reads (195 - 31) / 0.795 = 206/s.
        ramp = Ramp.of(lambda t: 150.0 if t < 0.5 else 600.0, 0.0, 0.8)
        assert ramp is not None
        estimate = estimate_rate(195, 0.8, (31, 0.005), 1.0, ramp=ramp)
        assert estimate is not None
        assert estimate.rate == pytest.approx(300, rel=0.01)
        assert estimate_rate(195, 0.8, (31, 0.005), 1.0) == Estimate(164 / 0.795, "refill")
        # A climb that went on for a minute doubling has a top of 1e18/s: the rate is
        # found all the same (halving the gap from there ends a million off).
        steep = Ramp(ramp.step, ramp.paces[:125] + (1e18,) * 75)
        estimate = estimate_rate(195, 0.8, (31, 0.005), 1.0, ramp=steep)
        assert estimate is not None
        assert estimate.rate == pytest.approx(300, rel=0.01)

    def test_the_probe_doubles_back_to_the_peak_then_creeps(self) -> None:
        rate = probed_rate(100.0, 1.0, 0.1, quiet=0.0, cheap=False, peak=1000.0)
        assert rate == pytest.approx(200.0)  # doubling towards 97 % of the peak
        rate = probed_rate(100.0, 10.0, 0.1, quiet=0.0, cheap=False, peak=1000.0)
        assert rate == pytest.approx(970.0)
        crept = probed_rate(100.0, 2.0, 0.1, quiet=0.0, cheap=False, peak=0.0)
        assert crept == pytest.approx(100.0 * (1.2 + (2.0 / DOUBLED_AFTER) ** 3))

    def test_a_pace_probing_for_two_minutes_has_doubled(self) -> None:
        # A pace measured while others spent the same quota is their leftover: when they
        # stop, nothing says so. Creeping 0.1 % a second, it took a quarter of an hour
        # to find the rest; the probe grows with the cube of the time (TCP CUBIC).
        rate = probed_rate(
            100.0, DOUBLED_AFTER, MEASURED_PROBE_PER_SECOND, quiet=120.0, cheap=False, peak=0.0
        )
        assert rate == pytest.approx(100.0 * (2.0 + DOUBLED_AFTER * MEASURED_PROBE_PER_SECOND))
        # ... while over a job of 20 s, whose pace was measured 3 % under the rate, it
        # stays under it: each probe past it costs a second with whole-second waits.
        early = probed_rate(
            100.0, 17.0, MEASURED_PROBE_PER_SECOND, quiet=17.0, cheap=False, peak=0.0
        )
        assert early < 100.0 / MEASURED_MARGIN

    def test_a_cheap_429_doubles_the_pace_after_quiet(self) -> None:
        quiet = probed_rate(100.0, 3.0, 0.002, quiet=3.0, cheap=True, peak=0.0)
        assert quiet == pytest.approx(400.0)  # two seconds past the quiet second
        costly = probed_rate(100.0, 3.0, 0.002, quiet=3.0, cheap=False, peak=0.0)
        assert costly == pytest.approx(100.0 * (1.006 + (3.0 / DOUBLED_AFTER) ** 3))

    def test_rounded_counters_read_a_sample_high_unless_asked_not_to(self) -> None:
        # 20 used by the counters, 19.5 on the whole (Remaining is rounded down).
        headers = {"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "10"}
        headers["X-RateLimit-Reset"] = "0.065"
        high, unbiased = read_hint(headers, 0.0), read_hint(headers, 0.0, unbiased=True)
        assert isinstance(high, Hint)
        assert isinstance(unbiased, Hint)
        assert high.rate == pytest.approx(20 / 0.0655)
        assert unbiased.rate == pytest.approx(19.5 / 0.0655)

    def test_a_reader_with_a_share_takes_only_answers_with_that_share_used(self) -> None:
        reader = HintReader(min_used=0.5)
        few = {"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "25"}
        assert reader.read(few | {"X-RateLimit-Reset": "0.017"}, 0.0) is None
        many = {"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "10"}
        hint = reader.read(many | {"X-RateLimit-Reset": "0.065"}, 0.0)
        assert hint is not None
        assert hint.rate == pytest.approx(19.5 / 0.0655)  # and without the bias

    @pytest.mark.parametrize(
        ("headers", "left"),
        [
            ({"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "29"}, 29.0),
            ({"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999"}, 4999.0),
            ({"RateLimit-Policy": '"p";q=100;w=60', "RateLimit": '"p";r=50;t=30'}, 50.0),
            ({"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "31"}, None),
            ({"X-RateLimit-Limit": "nan", "X-RateLimit-Remaining": "1"}, None),
            ({}, None),
        ],
    )
    def test_the_quota_left_is_read_whatever_the_hints_say_of_a_rate(
        self, headers: dict[str, str], left: float | None
    ) -> None:
        assert read_quota(CIMultiDict(headers)) == left
