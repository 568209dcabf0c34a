from __future__ import annotations

import asyncio
import email.utils
import gc
import logging
import weakref
from typing import Any

import pytest

from kirim_async import (
    APIConnectionError,
    APITimeoutError,
    DuplicateLabelError,
    Hooks,
    InvalidParameterError,
    InvalidRequestError,
    KirimClient,
    RateLimitError,
    RequestEvent,
    ResponseEvent,
    ServerError,
    bulk_create_labels,
)
from kirim_async._retry import retry_after_wait
from kirim_async.testing import FakeClock, FakeKirimServer, Fault

from .conftest import (
    Answer,
    ScriptedServer,
    SleepRecorder,
    client_for,
    closed_port,
    label_body,
)

RL = {"error": {"code": "rate_limit_exceeded", "message": "slow down"}}
DUPLICATE = {"error": {"code": "invalid_field_value", "param": "name", "message": "taken"}}


class TestWhatIsRetried:
    """429, 500, 502, 503, 504, connection errors and timeouts are retried; 4xx never."""

    @pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
    async def test_retried_statuses(
        self, scripted: ScriptedServer, sleeps: SleepRecorder, status: int
    ) -> None:
        scripted.script(Answer(status, b""), Answer(status, b""))
        async with client_for(scripted, sleeps) as client:
            response = await client.labels.create_with_response("bug")
        assert response.attempts == 3
        assert len(scripted.requests) == 3
        assert len(sleeps.waits) == 2

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501, 505])
    async def test_not_retried(
        self, scripted: ScriptedServer, sleeps: SleepRecorder, status: int
    ) -> None:
        scripted.script(Answer(status, b""))
        async with client_for(scripted, sleeps) as client:
            with pytest.raises(Exception) as info:  # noqa: PT011 - the class is tested elsewhere
                await client.labels.create("bug")
        assert info.value.attempts == 1  # type: ignore[attr-defined]
        assert len(scripted.requests) == 1
        assert sleeps.waits == []

    async def test_gives_up_after_max_retries_with_last_error(
        self, server: FakeKirimServer, sleeps: SleepRecorder
    ) -> None:
        server.script(Fault.SERVER_ERROR, Fault.BAD_GATEWAY, Fault.UNAVAILABLE)
        async with client_for(server, sleeps) as client:
            with pytest.raises(ServerError) as info:
                await client.labels.create("bug")
        assert info.value.status == 503
        assert info.value.attempts == 3
        assert server.stats.requests == 3

    @pytest.mark.parametrize(
        ("client_max", "call_max", "requests"),
        [
            (0, None, 1),
            (5, None, 6),
            (5, 0, 1),
            (0, 3, 4),
            (2, 1, 2),
        ],
    )
    async def test_max_retries_per_client_and_per_call(
        self,
        server: FakeKirimServer,
        sleeps: SleepRecorder,
        client_max: int,
        call_max: int | None,
        requests: int,
    ) -> None:
        server.script(*[Fault.UNAVAILABLE] * 10)
        async with client_for(server, sleeps, max_retries=client_max) as client:
            with pytest.raises(ServerError):
                await client.labels.create("bug", max_retries=call_max)
        assert server.stats.requests == requests

    # DROP fails as STORE_THEN_DROP does, to the client; but nothing was stored, so the
    # retry creates the label (where STORE_THEN_DROP's meets a duplicate, see below).
    @pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.DROP])
    async def test_success_after_retry_returns_label(
        self, server: FakeKirimServer, sleeps: SleepRecorder, fault: Fault
    ) -> None:
        server.script(fault)
        async with client_for(server, sleeps) as client:
            response = await client.labels.create_with_response("bug")
        assert response.attempts == 2
        assert [label["name"] for label in server.labels] == ["bug"]
        assert response.label.id == server.labels[0]["id"]


class TestWaits:
    """Exponential from 0.5 s, doubling, capped at 8 s, with full jitter; or Retry-After."""

    async def test_exponential_capped_jittered(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(*[Answer(503, b"")] * 8)
        async with client_for(scripted, sleeps, max_retries=8) as client:
            await client.labels.create("bug")
        ceilings = [0.5, 1, 2, 4, 8, 8, 8, 8]
        assert len(sleeps.waits) == 8
        for wait, ceiling in zip(sleeps.waits, ceilings, strict=True):
            assert 0 <= wait <= ceiling

    def test_jitter_spreads_waits(self) -> None:
        import backoff

        draws = {round(backoff.full_jitter(8.0), 3) for _ in range(50)}
        assert len(draws) > 10

    @pytest.mark.parametrize("value", ["2", "0.75"])
    async def test_retry_after_seconds_with_upward_jitter(
        self, scripted: ScriptedServer, sleeps: SleepRecorder, value: str
    ) -> None:
        scripted.script(*[Answer(429, RL, {"Retry-After": value})] * 2)
        async with client_for(scripted, sleeps) as client:
            await client.labels.create("bug")
        asked = float(value)
        assert len(sleeps.waits) == 2
        for wait in sleeps.waits:
            assert asked <= wait <= asked + 0.1 * asked + 0.05

    def test_retry_after_jitter_never_shortens(self) -> None:
        waits = [retry_after_wait(3.0) for _ in range(200)]
        assert min(waits) >= 3.0
        assert max(waits) <= 3.35
        assert len(set(waits)) > 1

    async def test_retry_after_http_date(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        # Read against the answer's own Date: a local clock an hour off does not matter.
        now = 1_800_000_000.0
        date = email.utils.formatdate(now + 5, usegmt=True)
        sent = email.utils.formatdate(now, usegmt=True)
        scripted.script(Answer(503, b"", {"Retry-After": date, "Date": sent}))
        async with client_for(scripted, sleeps, wall_clock=lambda: now + 3600) as client:
            await client.labels.create("bug")
        assert 5.0 <= sleeps.waits[0] <= 5.55

    async def test_unparseable_retry_after_falls_back_to_exponential(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(Answer(429, RL, {"Retry-After": "whenever"}))
        async with client_for(scripted, sleeps) as client:
            await client.labels.create("bug")
        assert 0 <= sleeps.waits[0] <= 0.5

    async def test_retry_after_above_cap_raises_at_once(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(Answer(429, RL, {"Retry-After": "61"}))
        async with client_for(scripted, sleeps) as client:
            with pytest.raises(RateLimitError) as info:
                await client.labels.create("bug")
        assert info.value.retry_after == 61.0
        assert info.value.attempts == 1
        assert sleeps.waits == []

    async def test_cap_is_configurable(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(Answer(429, RL, {"Retry-After": "61"}))
        async with client_for(
            scripted, sleeps, max_retry_after=120, max_rate_limit_wait=120
        ) as client:
            await client.labels.create("bug")
        assert sleeps.waits[0] >= 61

    @pytest.mark.parametrize(
        "spent",
        [
            # GitHub's primary limit: the window's end as a Unix time.
            {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": "1800003600",
            },
            {"RateLimit-Policy": '"hour";q=5000;w=3600', "RateLimit": '"hour";r=0;t=3600'},
        ],
    )
    async def test_a_reset_the_hints_name_is_held_to_the_cap_too(
        self,
        scripted: ScriptedServer,
        sleeps: SleepRecorder,
        spent: dict[str, str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        # A 429 without Retry-After names its wait in the hint headers: an hour away is
        # as far above max_retry_after as "Retry-After: 3600". It waited the hour.
        scripted.script(Answer(429, RL, spent))
        caplog.set_level(logging.DEBUG, logger="kirim_async")
        async with client_for(scripted, sleeps, wall_clock=lambda: 1_800_000_000) as client:
            with pytest.raises(RateLimitError) as info:
                await client.labels.create("bug")
            await client.labels.create("other")  # the gate was not closed for the hour
        assert any(
            "the 3600s its rate-limit headers' reset names is above max_retry_after (60s)"
            in record.getMessage()
            for record in caplog.records
        )
        assert (info.value.retry_after, info.value.reset_after) == (None, 3600.0)
        assert info.value.attempts == 1
        # No wait of the hour (the IETF policy's rate, 5000 an hour, paces the next).
        assert max(sleeps.waits, default=0.0) < 60
        assert len(scripted.requests) == 2

    async def test_a_reset_the_hints_name_is_waited_under_the_cap(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        spent = {
            "x-ratelimit-limit": "60",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "1800000030",
        }
        scripted.script(Answer(429, RL, spent))
        async with client_for(scripted, sleeps, wall_clock=lambda: 1_800_000_000) as client:
            await client.labels.create("bug")
        assert sleeps.waits[0] >= 30.0

    async def test_rate_limited_by_fake_server(self, sleeps: SleepRecorder) -> None:
        clock = sleeps.clock
        assert clock is not None
        async with (
            FakeKirimServer(rate=1, burst=1, clock=clock) as server,
            client_for(server, sleeps) as client,
        ):
            await client.labels.create("one")
            await client.labels.create("two")  # 429, waits Retry-After on the fake clock
        assert server.stats.rate_limited == 1
        assert 1.0 <= sleeps.waits[0] <= 1.2
        assert len(server.labels) == 2


class TestLogging:
    """Each retry logs one line on logger kirim_async: attempt, reason, wait, request_id."""

    async def test_one_line_per_retry(
        self, server: FakeKirimServer, sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="kirim_async")
        server.script(Fault.SERVER_ERROR, Fault.UNAVAILABLE)
        async with client_for(server, sleeps) as client:
            await client.labels.create("bug")
        records = [r for r in caplog.records if r.name == "kirim_async"]
        assert len(records) == 2
        first = records[0].getMessage()
        assert "attempt 1 of 3" in first
        assert "500 internal_error" in first
        assert f"retrying in {sleeps.waits[0]:.3f}s" in first
        assert "request_id=req_" in first
        assert "\n" not in first
        assert "attempt 2 of 3" in records[1].getMessage()


class TestSafeRetriesOfCreate:
    """A duplicate met after an ambiguous attempt says the call itself may have created it."""

    @pytest.mark.parametrize("fault", [Fault.STORE_THEN_DROP, Fault.STORE_THEN_TRUNCATE])
    async def test_lost_answer_then_duplicate(
        self, server: FakeKirimServer, sleeps: SleepRecorder, fault: Fault
    ) -> None:
        server.script(fault)
        async with client_for(server, sleeps) as client:
            with pytest.raises(DuplicateLabelError) as info:
                await client.labels.create("bug")
        assert info.value.after_ambiguous_attempt is True
        assert info.value.attempts == 2
        assert len(server.labels) == 1

    async def test_timed_out_answer_then_duplicate(self, sleeps: SleepRecorder) -> None:
        async with FakeKirimServer(answer_delay=60) as server:
            server.script(Fault.STORE_THEN_DELAY)
            async with client_for(server, sleeps, timeout=0.2) as client:
                with pytest.raises(DuplicateLabelError) as info:
                    await client.labels.create("bug")
        assert info.value.after_ambiguous_attempt is True
        assert len(server.labels) == 1

    async def test_5xx_then_duplicate_is_flagged(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        duplicate = {"error": {"code": "invalid_field_value", "param": "name", "message": "t"}}
        scripted.script(Answer(500, b""), Answer(400, duplicate))
        async with client_for(scripted, sleeps) as client:
            with pytest.raises(DuplicateLabelError) as info:
                await client.labels.create("bug")
        assert info.value.after_ambiguous_attempt is True

    async def test_429_then_duplicate_is_not_flagged(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        duplicate = {"error": {"code": "invalid_field_value", "param": "name", "message": "t"}}
        scripted.script(Answer(429, RL, {"Retry-After": "0"}), Answer(400, duplicate))
        async with client_for(scripted, sleeps) as client:
            with pytest.raises(DuplicateLabelError) as info:
                await client.labels.create("bug")
        assert info.value.after_ambiguous_attempt is False

    async def test_lost_answer_then_other_4xx_is_plain(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(Answer(502, b"<html>"), Answer(400, {"error": {"code": "nope"}}))
        async with client_for(scripted, sleeps) as client:
            with pytest.raises(InvalidRequestError) as info:
                await client.labels.create("bug")
        assert type(info.value) is InvalidRequestError
        assert info.value.after_ambiguous_attempt is True  # the 502 may have created it

    @pytest.mark.parametrize(
        ("answers", "flagged"),
        [
            ([500, 503, 502], True),  # the last error's own attempt, and two before it
            ([429, 429, 500], False),  # only the last attempt was ambiguous
            ([500], False),
        ],
    )
    async def test_the_last_error_says_whether_an_earlier_attempt_was_ambiguous(
        self, scripted: ScriptedServer, sleeps: SleepRecorder, answers: list[int], flagged: bool
    ) -> None:
        scripted.script(*(Answer(status, b"", {"Retry-After": "0"}) for status in answers))
        # A 429 is waited out at the client's gate: only the other errors are retries.
        retries = sum(status != 429 for status in answers) - 1
        async with client_for(scripted, sleeps, max_retries=retries) as client:
            with pytest.raises(ServerError) as info:
                await client.labels.create("bug")
        assert info.value.after_ambiguous_attempt is flagged

    async def test_refused_connection_is_retried_as_plainly_safe(
        self, sleeps: SleepRecorder
    ) -> None:
        port = closed_port()
        server = FakeKirimServer(port=port)

        async def start_server_then_record(seconds: float) -> None:
            if not sleeps.waits:
                await server.start()
            await sleeps(seconds)

        client = KirimClient(
            server.token, base_url=f"http://127.0.0.1:{port}/v1", sleep=start_server_then_record
        )
        try:
            response = await client.labels.create_with_response("bug")
        finally:
            await client.aclose()
            await server.close()
        assert response.attempts == 2
        assert len(sleeps.waits) == 1

    async def test_refused_connection_error_says_not_sent(self, sleeps: SleepRecorder) -> None:
        port = closed_port()
        async with KirimClient(
            "tok", base_url=f"http://127.0.0.1:{port}/v1", sleep=sleeps
        ) as client:
            with pytest.raises(APIConnectionError) as info:
                await client.labels.create("bug")
        assert info.value.request_may_have_been_sent is False
        assert info.value.attempts == 3


class TestTimeouts:
    """A total timeout per attempt, per client or per call; an optional overall deadline."""

    async def test_attempt_timeout_per_client(self, sleeps: SleepRecorder) -> None:
        async with FakeKirimServer(answer_delay=60) as server:
            server.script(Fault.STORE_THEN_DELAY, Fault.STORE_THEN_DELAY)
            async with client_for(server, sleeps, timeout=0.1, max_retries=1) as client:
                with pytest.raises(APITimeoutError) as info:
                    await client.labels.create("bug")
        assert info.value.request_may_have_been_sent is True
        assert info.value.attempts == 2

    @pytest.mark.parametrize("option", ["timeout", "deadline"])
    async def test_a_per_call_number_past_floats_range_is_refused(
        self, server: FakeKirimServer, option: str
    ) -> None:
        # Before: OverflowError from deep inside the call.
        huge: dict[str, Any] = {option: 10**400}
        async with client_for(server) as client:
            with pytest.raises(InvalidParameterError) as info:
                await client.labels.create("bug", **huge)
        assert info.value.field == option
        assert server.stats.requests == 0

    async def test_attempt_timeout_per_call(self, sleeps: SleepRecorder) -> None:
        async with FakeKirimServer(answer_delay=60) as server:
            server.script(Fault.STORE_THEN_DELAY)
            async with client_for(server, sleeps, max_retries=0) as client:
                with pytest.raises(APITimeoutError, match=r"0\.1s"):
                    await client.labels.create("bug", timeout=0.1)

    async def test_deadline_stops_retries_whose_wait_would_pass_it(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(*[Answer(429, RL, {"Retry-After": "4"})] * 5)
        async with client_for(scripted, sleeps, max_retries=5, deadline=10) as client:
            with pytest.raises(RateLimitError) as info:
                await client.labels.create("bug")
        assert len(sleeps.waits) == 2  # 4 s + 4 s fit in 10 s; a third would not
        assert info.value.attempts == 3

    async def test_deadline_bounds_the_attempt_timeout(self) -> None:
        async with FakeKirimServer(answer_delay=60) as server:
            server.script(Fault.STORE_THEN_DELAY)
            async with KirimClient(server.token, base_url=server.url, timeout=30) as client:
                with pytest.raises(APITimeoutError):
                    await client.labels.create("bug", deadline=0.2, max_retries=0)

    async def test_deadline_already_passed(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        clock = sleeps.clock
        assert clock is not None

        async def slow_sleep(seconds: float) -> None:
            clock.advance(100)

        scripted.script(Answer(503, b""))
        async with KirimClient(
            "tok", base_url=scripted.url, sleep=slow_sleep, clock=clock, deadline=50
        ) as client:
            with pytest.raises(APITimeoutError, match="deadline") as info:
                await client.labels.create("bug")
        assert info.value.request_may_have_been_sent is False  # that attempt was not made
        assert info.value.after_ambiguous_attempt is True  # the 503 before it was


async def test_success_after_retries_is_the_label(
    scripted: ScriptedServer, sleeps: SleepRecorder
) -> None:
    scripted.script(Answer(502, b"<html>"), Answer(201, label_body("bug", "req_ok")))
    async with client_for(scripted, sleeps) as client:
        label = await client.labels.create("bug")
    assert label.request_id == "req_ok"


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param([Answer(400, DUPLICATE)], id="first-attempt"),
        pytest.param([Answer(503, b""), Answer(400, DUPLICATE)], id="after-a-retry"),
    ],
)
async def test_a_raised_error_is_freed_without_the_garbage_collector(
    scripted: ScriptedServer, sleeps: SleepRecorder, answers: list[Answer]
) -> None:
    # A frame of the retrier kept in the traceback while holding the error in a local
    # would make a cycle: a bulk job of duplicates then piled them up between
    # collections.
    scripted.script(*answers)
    async with client_for(scripted, sleeps) as client:
        gc.disable()
        try:
            try:
                await client.labels.create("bug")
            except DuplicateLabelError as error:
                freed = weakref.ref(error)
            assert freed() is None
        finally:
            gc.enable()


class TestTheClientsSharedGate:
    """Single calls share one gate: a 429 pauses them all, and waiting spends no retry."""

    async def test_concurrent_calls_wait_out_429s_together_without_failing(
        self, sleeps: SleepRecorder
    ) -> None:
        # Was: each call retried on its own, and a burst of calls in a service against a
        # low limit ended 26 % of them in RateLimitError.
        clock = sleeps.clock
        assert clock is not None
        async with (
            FakeKirimServer(rate=2, burst=2, retry_after="integer", clock=clock) as server,
            client_for(server, sleeps, max_retries=0) as client,
        ):
            labels = await asyncio.gather(*(client.labels.create(f"n{i}") for i in range(10)))
        assert len(labels) == 10
        assert len(server.labels) == 10
        assert server.stats.rate_limited > 0  # they met the limit, and waited it out

    async def test_429s_spend_no_retry_and_each_wait_is_the_gates(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        # With max_retries=0, a 429 used to end the call. Now both calls wait out their
        # 429 at the shared gate (as the server asked, to the deadline it named) and go
        # on; the concurrent-burst case is the first test of this class.
        scripted.script(*[Answer(429, RL, {"Retry-After": "3"})] * 2)
        async with client_for(scripted, sleeps, max_retries=0) as client:
            await asyncio.gather(client.labels.create("a"), client.labels.create("b"))
        assert sleeps.waits
        assert all(wait == pytest.approx(3.0) for wait in sleeps.waits)
        assert len(scripted.requests) == 4

    async def test_a_bulk_job_and_single_calls_wait_at_one_pacer(
        self, scripted: ScriptedServer, clock: FakeClock
    ) -> None:
        # Was: a bulk job had a gate of its own, so a 429 it met did not hold back the
        # service's single calls on the same client (nor theirs the job).
        scripted.script(Answer(429, RL, {"Retry-After": "5"}))
        sent_at: dict[str, float] = {}
        solo: list[asyncio.Future[object]] = []

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(0)  # the single call starts while the job waits
            clock.advance(seconds)

        def on_request(event: RequestEvent) -> None:
            sent_at.setdefault(f"send {len(sent_at)}", clock())

        def on_response(event: ResponseEvent) -> None:
            if event.status == 429 and not solo:
                solo.append(asyncio.ensure_future(client.labels.create("solo")))

        hooks = Hooks(on_request=on_request, on_response=on_response)
        async with client_for(scripted, sleep=sleep, clock=clock, hooks=hooks) as client:
            assert client.pace is None
            limited_at = clock()
            result = await bulk_create_labels(client, ["job"])
            await solo[0]
        assert result.ok
        # Every send after the job's 429, the single call's included, waited for its end.
        later = sorted(sent_at.values())[1:]
        assert len(later) == 2
        assert all(at >= limited_at + 5 for at in later)

    async def test_a_few_single_calls_meeting_a_429_are_not_paced_after(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        # One 429 in a quiet service closes the gate for its Retry-After, and sets no
        # pace: a handful of sends measures no rate.
        scripted.script(Answer(429, RL, {"Retry-After": "2"}))
        async with client_for(scripted, sleeps) as client:
            for name in ("a", "b", "c"):
                await client.labels.create(name)
            assert client.pace is None
        assert sleeps.waits == pytest.approx([2.0])

    async def test_a_call_gives_up_after_max_rate_limit_wait(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(*[Answer(429, RL, {"Retry-After": "10"})] * 10)
        async with client_for(scripted, sleeps, max_rate_limit_wait=25) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.labels.create("bug")
        assert sleeps.waits == pytest.approx([10.0, 10.0])  # a third would pass 25 s
        assert caught.value.retry_after == 10
        assert len(scripted.requests) == 3

    async def test_a_calls_deadline_bounds_its_wait(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(Answer(429, RL, {"Retry-After": "10"}))
        async with client_for(scripted, sleeps) as client:
            with pytest.raises(RateLimitError):
                await client.labels.create("bug", deadline=5)
        assert sleeps.waits == []

    async def test_zero_raises_the_first_429(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(Answer(429, RL, {"Retry-After": "0"}))
        async with client_for(scripted, sleeps, max_rate_limit_wait=0) as client:
            with pytest.raises(RateLimitError):
                await client.labels.create("bug")

    async def test_a_call_past_max_retry_after_does_not_stop_the_others(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(Answer(429, RL, {"Retry-After": "1e308"}))
        async with client_for(scripted, sleeps) as client:
            with pytest.raises(RateLimitError):
                await client.labels.create("a")
            await client.labels.create("b")
        assert len(scripted.requests) == 2  # the gate did not stop: "b" was sent

    def test_max_rate_limit_wait_is_checked(self) -> None:
        bad_values: tuple[Any, ...] = (-1, float("nan"), "60")
        for bad in bad_values:
            with pytest.raises(InvalidParameterError) as caught:
                KirimClient("tok", base_url="http://127.0.0.1:1/v1", max_rate_limit_wait=bad)
            assert caught.value.field == "max_rate_limit_wait"
