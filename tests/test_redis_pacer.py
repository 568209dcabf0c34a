"""The Redis pacer (kirim_async.pacing.RedisPacer) against a real redis-server."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from kirim_async import (
    Hooks,
    InvalidParameterError,
    KirimClient,
    RateLimitError,
    RetryPolicy,
    bulk_create_labels,
)
from kirim_async._retry import Retrier
from kirim_async.pacing import RateGate, RedisPacer, shared_key
from kirim_async.pacing import _redis as pacing_redis
from kirim_async.pacing._measure import (
    MEASURED_PROBE_PER_SECOND,
    PROBE_PER_SECOND,
    WINDOW_PROBE_PER_SECOND,
)
from kirim_async.testing import FakeClock, FakeKirimServer

from .redis_server import REQUIRE_ENV, RedisServer, free_port, redis_binary

TOKEN = "tok_redis_secret_0123456789"


class GatedSleep:
    """A sleep that records each delay, and returns only once released (or cancelled)."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.released = asyncio.Event()
        self._called = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.calls.append(delay)
        self._called.set()
        await self.released.wait()

    async def asked(self, count: int) -> None:
        """Return once *count* sleeps have been asked for."""
        while len(self.calls) < count:
            self._called.clear()
            await self._called.wait()


class SleepLog:
    """A sleep that records each delay with the monotonic time it was asked at."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    async def __call__(self, delay: float) -> None:
        self.calls.append((time.monotonic(), delay))


def pacer(
    url: str, key: str = "kirim-async:pacer:test", sleep: SleepLog | GatedSleep | None = None
) -> RedisPacer:
    """A Redis pacer with the default retry policy's backoff."""
    retrier = Retrier(policy=RetryPolicy(), sleep=asyncio.sleep, clock=time.monotonic)
    return RedisPacer(
        url,
        key,
        sleep=asyncio.sleep if sleep is None else sleep,
        clock=time.monotonic,
        wall_clock=time.time,
        backoff=retrier.exponential_waits,
    )


@pytest.fixture
async def limited_server() -> AsyncIterator[FakeKirimServer]:
    """A fake server limiting to 300 requests/s (burst 30), fractional Retry-After."""
    async with FakeKirimServer(token=TOKEN, rate=300, burst=30) as fake:
        yield fake


def _rl(retry_after: float | None) -> RateLimitError:
    return RateLimitError(status=429, message="slow down", retry_after=retry_after)


def _field(url: str, key: str, name: str) -> str:
    """One field of the shared state's hash, as the scripts left it ('' if none)."""
    client = redis.Redis.from_url(url)
    try:
        value = client.hget(key, name)
    finally:
        client.close()
    return "" if value is None else pacing_redis._text(value)


async def test_a_429_in_one_process_closes_the_gate_for_another(
    redis_server: RedisServer,
) -> None:
    other = textwrap.dedent(
        f"""
        import asyncio
        from kirim_async import RateLimitError
        from tests.test_redis_pacer import pacer

        async def main():
            gate = pacer({redis_server.url!r})
            ticket = await gate.turn()
            gate.rate_limited(ticket, RateLimitError(status=429, message="x", retry_after=30))
            await gate.aclose()

        asyncio.run(main())
        """
    )
    # The other process runs to its end before this one turns: no waiting on timing.
    subprocess.run(  # noqa: ASYNC221 - this test's loop has nothing else to run
        [sys.executable, "-c", other], check=True, cwd=Path(__file__).parent.parent
    )
    sleeps = SleepLog()
    here = pacer(redis_server.url, sleep=sleeps)
    await here.turn()
    await here.aclose()
    # The other process's 429 named 30 s: this one sleeps until then (Redis's time),
    # then confirms its turn once.
    assert len(sleeps.calls) == 1
    assert 25 < sleeps.calls[0][1] <= 30


async def test_a_429_s_hints_reset_closes_the_shared_gate_without_retry_after(
    redis_server: RedisServer,
) -> None:
    # GitHub's primary limit names its wait in x-ratelimit-reset, not Retry-After: the
    # error carries it (reset_after), and every process waits for it, not a backoff.
    there = pacer(redis_server.url, key="kirim-async:pacer:reset")
    ticket = await there.turn()
    spent = RateLimitError(status=429, message="x", reset_after=30.0)
    assert there.rate_limited(ticket, spent) == 30.0
    await there.aclose()  # its closing is written to Redis before it closes
    sleeps = SleepLog()
    here = pacer(redis_server.url, key="kirim-async:pacer:reset", sleep=sleeps)
    await here.turn()
    await here.aclose()
    assert len(sleeps.calls) == 1
    assert 25 < sleeps.calls[0][1] <= 30


async def test_turns_are_spaced_at_the_shared_pace_on_redis_time(
    redis_server: RedisServer,
) -> None:
    sleeps = SleepLog()
    gate = pacer(redis_server.url, sleep=sleeps)
    hint = {"RateLimit-Policy": '"p";q=4;w=4', "RateLimit": '"p";r=0;t=4'}
    gate.learn(await gate.turn(), 200, hint)  # the policy states 1 request/s, burst 4
    await gate.aclose()  # the hint is written
    assert gate.rate is None  # not seen yet: the next turn reads it
    for _ in range(8):
        await gate.turn()
    await gate.aclose()
    assert gate.rate == pytest.approx(1.0)
    # The first hint's schedule starts from an empty quota (the sends before it may
    # have spent it): one turn a second from the first, each slot reserved in Redis,
    # so the sleeps end one second apart.
    slots = [asked_at + delay for asked_at, delay in sleeps.calls]
    assert len(slots) == 8
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert gaps == pytest.approx([1.0] * 7, abs=0.1)


def _x_ratelimit(remaining: int, reset: str) -> dict[str, str]:
    """X-RateLimit-* hints of a bucket of 30."""
    return {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": reset,
    }


async def test_the_first_contact_sends_one_request_then_the_quota_its_answer_showed(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each hold lasts half a second of Redis's clock from the last answer; on a loaded
    # machine (CI, coverage, two workers) the dozens of round trips between two answers
    # outlasted one, and the turn went on unheld. Every wait here must end on an answer.
    monkeypatch.setattr(pacing_redis, "_FIRST_HOLD", 30.0)
    sleeps = GatedSleep()
    first, second = pacer(redis_server.url, sleep=sleeps), pacer(redis_server.url, sleep=sleeps)

    async def contact() -> None:
        probe = await first.turn()
        other = await second.turn()  # each process's first send goes
        held = asyncio.ensure_future(first.turn())
        await sleeps.asked(1)  # the rest wait for an answer, a hold at most
        assert 0 < sleeps.calls[0] <= 30.0
        first.learn(probe, 200, _x_ratelimit(29, "0.003"))
        await held  # the answer ends the wait before the sleep does
        # It showed 29 left, less the other process's send and this one: 27 go at once.
        tickets = [await (first if i % 2 else second).turn() for i in range(27)]
        assert len(sleeps.calls) == 1
        # Then, with the quota spent and no rate known yet, a turn waits ...
        waiting = asyncio.ensure_future(second.turn())
        await sleeps.asked(2)
        # ... until an answer shows quota left again (20: the quota refilled, too few used
        # to read a rate from), granted at once: this turn and 19 more go.
        second.learn(tickets[-1], 201, _x_ratelimit(20, "0.033"))
        await waiting
        for _ in range(19):
            await second.turn()
        assert len(sleeps.calls) == 2
        # Spent again: a turn waits until a hint brings a rate.
        waiting = asyncio.ensure_future(second.turn())
        await sleeps.asked(3)
        second.learn(other, 200, _x_ratelimit(10, "0.067"))  # 19.5 used in 0.0675 s
        await sleeps.asked(4)  # the hint ends the wait: now a turn at the pace
        sleeps.released.set()
        await waiting
        # A sample's rate, read without the rounding's bias, 2 % under: 283 requests/s.
        assert second.rate == pytest.approx(0.98 * 19.5 / 0.0675)
        assert 0 < sleeps.calls[3] <= 1.5 / 283  # the schedule starts from an empty quota

    # Every wait here ends on an answer, none on the clock: 10 s means one never came.
    await asyncio.wait_for(contact(), 10)
    await first.aclose()
    await second.aclose()


async def test_a_turn_waits_one_hold_out_at_most_whatever_its_clock(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()  # a test's clock: its sleeps end at once, Redis's time goes on
    retrier = Retrier(policy=RetryPolicy(), sleep=clock.sleep, clock=clock)
    gate = RedisPacer(
        redis_server.url,
        "kirim-async:pacer:test",
        sleep=clock.sleep,
        clock=clock,
        wall_clock=time.time,
        backoff=retrier.exponential_waits,
    )
    probe = await gate.turn()
    gate.learn(probe, 201, _x_ratelimit(0, "0"))  # nothing left, and no rate
    await gate.aclose()
    await gate.turn()  # waits for a rate: half a second, by Redis's clock
    await gate.aclose()
    # One wait of half a second, not one after another until Redis's time has passed.
    assert 0 < clock.slept <= 0.5


async def test_a_closing_leaves_no_burst_behind(redis_server: RedisServer) -> None:
    sleeps = SleepLog()
    gate = pacer(redis_server.url, sleep=sleeps)
    hint = {"RateLimit-Policy": '"p";q=4;w=4', "RateLimit": '"p";r=4;t=0'}
    gate.learn(await gate.turn(), 200, hint)  # 1 request/s, burst 4
    await gate.aclose()
    await gate.turn()  # reads the pace: the schedule reserves a turn a second from now
    gate.rate_limited(await gate.turn(), _rl(5.0))
    await gate.aclose()  # the closing is written
    sleeps.calls.clear()
    for _ in range(4):
        await gate.turn()
    await gate.aclose()
    # The server's bucket may be as empty at the reopening as at the 429: one turn at
    # the reopening, then one a second, not the burst of 4 at once.
    slots = [asked_at + delay for asked_at, delay in sleeps.calls]
    assert len(slots) == 4
    assert 4.5 < sleeps.calls[0][1] <= 5.0
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert gaps == pytest.approx([1.0] * 3, abs=0.1)


async def test_the_first_cut_is_shared_and_429s_in_flight_cut_no_more(
    redis_server: RedisServer,
) -> None:
    first, second = pacer(redis_server.url), pacer(redis_server.url)
    tickets = [await (first if i % 2 else second).turn() for i in range(20)]
    assert first.rate is None
    # Two 429s for sends of the same congestion event, seen by two processes.
    first.rate_limited(tickets[-1], _rl(0.0))
    await first.aclose()
    second.rate_limited(tickets[-2], _rl(0.0))
    await second.aclose()
    await second.turn()
    cut = second.rate
    assert cut is not None
    await first.turn()
    # Shared, and cut once (a second cut would halve it): the pace climbs a little (a
    # slow start) between the two reads.
    assert first.rate == pytest.approx(cut, rel=0.05)
    await first.aclose()
    await second.aclose()


async def test_a_burst_of_429s_without_retry_after_draws_one_backoff_an_event(
    redis_server: RedisServer,
) -> None:
    # 32 sends in flight when the limit is met come back 429 together, naming no wait.
    # Each drew the next of the client's growing backoffs, and the closing was the
    # longest of them: one burst closed every process for up to 8 s (a job against a
    # 300/s bucket took 14x its ideal time). One event, one backoff.
    sleeps = SleepLog()
    gate = pacer(redis_server.url, sleep=sleeps)
    tickets = [await gate.turn() for _ in range(32)]
    waits = [gate.rate_limited(ticket, _rl(None)) for ticket in tickets]
    assert 0 < waits[0] <= RetryPolicy().initial_wait
    assert waits[1:] == [0.0] * 31
    await gate.aclose()  # the cut is written: a new epoch
    # The next event is a new one: the next backoff of the run.
    assert gate.rate_limited(await gate.turn(), _rl(None)) > 0
    await gate.aclose()


async def test_a_slot_reserved_at_an_older_pace_is_asked_again_whatever_other_turns_read(
    redis_server: RedisServer,
) -> None:
    # The version a turn confirms is the one it reserved its slot at. It sent the
    # process's latest: once any other turn had read the new pace, every slot reserved
    # before it went as reserved, and the 31 turns waiting out a first closing went
    # together at its end (a 429 at once against a bucket of 30; one process at
    # concurrency 32 over a 300/s bucket took 1.2-3x its ideal time).
    key = "kirim-async:pacer:version"
    there = pacer(redis_server.url, key=key, sleep=SleepLog())
    tickets = [await there.turn() for _ in range(20)]
    there.rate_limited(tickets[-1], _rl(5.0))  # the first cut: a new pace, closed 5 s
    await there.aclose()
    sleeps = GatedSleep()
    here = pacer(redis_server.url, key=key, sleep=sleeps)
    reserved = asyncio.ensure_future(here.turn())
    await sleeps.asked(1)  # a slot at the first cut's pace, after the closing
    # Another event, and another pace; the closing stands as it was.
    there.rate_limited(await there.turn(), _rl(0.0))
    await there.aclose()
    later = asyncio.ensure_future(here.turn())
    await sleeps.asked(2)  # this turn read the new pace
    sleeps.released.set()
    await asyncio.gather(reserved, later)
    await here.aclose()
    # The first slot is asked again at the new pace before it goes.
    assert len(sleeps.calls) == 3


async def test_the_first_phase_is_read_less_the_refusals_answered_after_its_cut(
    redis_server: RedisServer,
) -> None:
    # The first phase goes unpaced: when its first 429 is answered, a concurrency's
    # worth of sends after the refused one's turn is out, and the 429 handled first is
    # not the first refused. Counted by send numbers alone, it read 66 admitted where
    # the server took 44, and the next cut read a 300/s bucket as 94/s.
    key = "kirim-async:pacer:first-phase"
    gate = pacer(redis_server.url, key=key, sleep=SleepLog())
    tickets = [await gate.turn() for _ in range(20)]
    gate.rate_limited(tickets[-1], _rl(0.0))  # the first cut: 19 sends before it
    await gate.aclose()
    for ticket in tickets[14:]:  # its other refusals come in: five before it, one itself
        gate.rate_limited(ticket, _rl(0.0))
    await gate.aclose()
    assert _field(redis_server.url, key, "first_admitted") == "14"


async def test_a_phase_starts_with_its_first_send_not_the_planned_reopening(
    redis_server: RedisServer,
) -> None:
    # The turns waiting out a closing go a sleep and a round trip after it ends: a
    # phase timed from the reopening read the rate low (a 300/s bucket as 281/s).
    key = "kirim-async:pacer:phase-start"
    gate = pacer(redis_server.url, key=key)
    tickets = [await gate.turn() for _ in range(20)]
    gate.rate_limited(tickets[-1], _rl(0.05))
    await gate.aclose()
    first = await gate.turn()  # the sleep until the reopening, then the confirming call
    await gate.turn()
    await gate.aclose()
    assert first.epoch == 1
    assert float(_field(redis_server.url, key, "phase_start")) == first.sent_at


@pytest.mark.parametrize(("refused", "cuts"), [(1, False), (3, True)])
async def test_sparse_429s_soon_after_a_cut_close_the_gate_and_cut_nothing(
    redis_server: RedisServer, refused: int, cuts: bool
) -> None:
    # A fractional Retry-After costs a few milliseconds: each 429 just after a cut was
    # a new event, and the shared pace halved four times in 80 ms (a job over a 300/s
    # bucket took 5-7x its ideal time). As the local gate: one 429 in 20 answers
    # within a second of the cut is that event still; three are a new one.
    key = f"kirim-async:pacer:sparse{refused}"
    gate = pacer(redis_server.url, key=key, sleep=SleepLog())
    tickets = [await gate.turn() for _ in range(20)]
    gate.rate_limited(tickets[-1], _rl(0.001))  # the first cut
    await gate.aclose()
    tickets = [await gate.turn() for _ in range(20)]
    measured = pacing_redis._SharedPace(
        290.0, tickets[0].sent_at, MEASURED_PROBE_PER_SECOND, False, 0.0, None, 1
    )
    gate._pace = measured  # a measured pace, as a cut that read the rate writes it
    for ticket in tickets[:-refused]:
        gate.learn(ticket, 201, {})
    for ticket in tickets[-refused:]:
        gate.learn(ticket, 429, {})
        gate.rate_limited(ticket, _rl(0.001))
    await gate.aclose()
    assert _field(redis_server.url, key, "epoch") == ("2" if cuts else "1")


def test_a_shared_pace_probing_a_window_creeps_up_and_a_blind_one_doubles() -> None:
    # After a window's reading the shared pace probes up 3 % a second, as the local
    # gate's does, and the 429 it meets bounds the rate. It doubled each second (a
    # slow start's), met a 429 within a second, was read as the window again, and a job
    # over a fixed window of 300/s took 1.75x its ideal time.
    window = pacing_redis._SharedPace(274.0, 10.0, WINDOW_PROBE_PER_SECOND, False, 9.0, None, 1)
    assert not window.is_climbing
    assert window.probes_a_window
    assert window.at(11.0) == pytest.approx(274.0 * 1.03, rel=1e-3)
    blind = pacing_redis._SharedPace(100.0, 10.0, PROBE_PER_SECOND, False, 9.0, None, 1)
    assert blind.is_climbing
    assert blind.at(12.0) == pytest.approx(400.0)


@pytest.mark.parametrize("probe", [PROBE_PER_SECOND, WINDOW_PROBE_PER_SECOND])
def test_a_shared_pace_is_the_cut_s_own_until_the_reopening(probe: float) -> None:
    # Turns reserved while the gate is closed are spaced at the pace of then. It ran
    # the probe back from the reopening: a slow start's doubling put it at half the
    # cut's rate a second before, and four processes sent the first 0.2 s of the phase
    # at half the pace (its reading 10-15 % low). It probes from the reopening only.
    pace = pacing_redis._SharedPace(200.0, 10.0, probe, False, 9.0, None, 1)
    assert pace.at(9.0) == pace.at(10.0) == pytest.approx(200.0)


async def test_a_client_with_redis_url_paces_every_call_through_redis(
    redis_server: RedisServer, limited_server: FakeKirimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kirim_async")
    async with KirimClient(
        TOKEN, base_url=limited_server.url, redis_url=redis_server.url
    ) as client:
        assert isinstance(client.pacer, RedisPacer)
        assert client.pacer.is_shared
        report = await bulk_create_labels(
            client, [f"label-{i}" for i in range(300)], concurrency=16
        )
        assert len(report.created) == 300
        await client.labels.create("one-more")
    store = redis.Redis.from_url(redis_server.url)
    try:
        keys = store.keys("*")
        assert keys == [shared_key(limited_server.url, TOKEN).encode()]
        dumped = repr(keys) + repr(store.hgetall(keys[0]))
    finally:
        store.close()
    # The token is in no key, no value and no log line.
    assert TOKEN not in dumped
    assert TOKEN not in caplog.text
    assert "shared pace from the hints" in caplog.text
    assert "WARNING" not in caplog.text


async def test_the_key_expires_when_idle(redis_server: RedisServer) -> None:
    gate = pacer(redis_server.url)
    await gate.turn()
    await gate.aclose()
    store = redis.Redis.from_url(redis_server.url)
    try:
        assert 0 < store.pttl("kirim-async:pacer:test") <= 60_000
    finally:
        store.close()


async def test_redis_stopped_and_started_mid_job_loses_no_item_and_rejoins(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kirim_async")
    names = [f"label-{i}" for i in range(900)]
    answered = 0

    def on_response(_event: object) -> None:
        nonlocal answered
        answered += 1
        if answered == 150:
            redis_server.stop()
        elif answered == 200:
            redis_server.start()

    async with FakeKirimServer(token=TOKEN, rate=300, burst=30) as fake:
        async with KirimClient(
            TOKEN,
            base_url=fake.url,
            redis_url=redis_server.url,
            hooks=Hooks(on_response=on_response),
        ) as client:
            report = await bulk_create_labels(client, names, concurrency=16)
            shared_at_end = client.pacer.is_shared  # type: ignore[attr-defined]
        # Every item has exactly one outcome, and none was sent twice (a second send
        # of a name would have met a 409 duplicate).
        assert sorted(outcome.request.name for outcome in report.created) == sorted(names)
        assert fake.stats.by_status[409] == 0
        assert len(fake.labels) == 900
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "pacing locally" in warnings[0].getMessage()
    assert "pacing is shared again" in caplog.text
    assert shared_at_end


async def test_a_lost_redis_is_tried_each_second_for_ten_then_less_often() -> None:
    clock = FakeClock(start=0.0)
    tried: list[float] = []

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tried.append(clock())  # a Redis that closes every connection at once
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    retrier = Retrier(policy=RetryPolicy(), sleep=asyncio.sleep, clock=clock)
    gate = RedisPacer(
        f"redis://127.0.0.1:{port}/0",
        "kirim-async:pacer:test",
        sleep=asyncio.sleep,
        clock=clock,
        wall_clock=time.time,
        backoff=retrier.exponential_waits,
    )
    try:
        for _ in range(100):  # a turn each half second for 50 s
            await gate.turn()
            clock.advance(0.5)
    finally:
        await gate.aclose()
        server.close()
        await server.wait_closed()
    assert not gate.is_shared
    # Each second for the first ten (processes come back together after a restart),
    # then after 2, 4, 8, 16 s (a Redis that stays down is not hammered).
    assert sorted(set(tried)) == [*range(11), 12, 16, 24, 40]


async def test_unreachable_redis_falls_back_with_one_warning(
    limited_server: FakeKirimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kirim_async")
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    async with KirimClient(TOKEN, base_url=limited_server.url, redis_url=url) as client:
        report = await bulk_create_labels(client, [f"l-{i}" for i in range(100)])
        assert len(report.created) == 100
        assert not client.pacer.is_shared  # type: ignore[attr-defined]
        assert "hunter2" not in repr(client.pacer)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "pacing locally" in warnings[0]
    assert "hunter2" not in caplog.text


class TestOptions:
    """How a client is given a shared pacer, and the errors for bad ones."""

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "", "redis://host:port/0"]
    )
    def test_a_url_that_is_not_redis_is_refused_naming_the_option(self, url: str) -> None:
        with pytest.raises(InvalidParameterError) as raised:
            KirimClient(TOKEN, redis_url=url)
        assert raised.value.field == "redis_url"

    def test_the_environment_variable_is_read_and_named_in_errors(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("KIRIM_REDIS_URL", "redis://127.0.0.1:1/0")
        assert isinstance(KirimClient(TOKEN).pacer, RedisPacer)
        monkeypatch.setenv("KIRIM_REDIS_URL", "memcached://127.0.0.1:1")
        with pytest.raises(InvalidParameterError) as raised:
            KirimClient(TOKEN)
        assert raised.value.field == "KIRIM_REDIS_URL"

    def test_the_password_in_a_url_is_never_shown(self) -> None:
        with pytest.raises(InvalidParameterError) as raised:
            KirimClient(TOKEN, redis_url="http://user:hunter2@127.0.0.1:6379")
        assert "hunter2" not in str(raised.value)
        assert "hunter2" not in repr(KirimClient(TOKEN, redis_url="redis://:hunter2@h:1/0").pacer)

    def test_without_the_extra_the_error_says_what_to_install(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "redis.asyncio.connection", None)
        with pytest.raises(InvalidParameterError) as raised:
            KirimClient(TOKEN, redis_url="redis://127.0.0.1:6379/0")
        assert "pip install 'kirim-async[redis]'" in str(raised.value)

    def test_a_pacer_of_ones_own_is_used_and_left_open(self) -> None:
        retrier = Retrier(policy=RetryPolicy(), sleep=asyncio.sleep, clock=time.monotonic)
        own = RateGate(asyncio.sleep, time.monotonic, time.time, retrier.exponential_waits)
        assert KirimClient(TOKEN, pacer=own).pacer is own

    def test_a_pacer_and_a_redis_url_together_are_refused(self) -> None:
        retrier = Retrier(policy=RetryPolicy(), sleep=asyncio.sleep, clock=time.monotonic)
        own = RateGate(asyncio.sleep, time.monotonic, time.time, retrier.exponential_waits)
        with pytest.raises(InvalidParameterError) as raised:
            KirimClient(TOKEN, pacer=own, redis_url="redis://127.0.0.1:6379/0")
        assert raised.value.field == "pacer"

    def test_something_that_is_not_a_pacer_is_refused(self) -> None:
        with pytest.raises(InvalidParameterError) as raised:
            KirimClient(TOKEN, pacer=object())  # type: ignore[arg-type]
        assert raised.value.field == "pacer"

    def test_the_key_is_a_hash_of_url_and_token(self) -> None:
        key = shared_key("https://api.kirim.chat/v1", TOKEN)
        assert TOKEN not in key
        assert key != shared_key("https://api.kirim.chat/v1", TOKEN + "x")
        assert key != shared_key("https://other.example/v1", TOKEN)


class TestTheServerFixture:
    """Without redis-server the tests skip, naming the package; under CI they fail."""

    def test_a_missing_binary_skips_naming_the_package(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.delenv(REQUIRE_ENV, raising=False)
        with pytest.raises(pytest.skip.Exception, match="apt-get install redis-server"):
            redis_binary()

    def test_a_missing_binary_fails_under_ci(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.setenv(REQUIRE_ENV, "1")
        with pytest.raises(pytest.fail.Exception, match="redis-server is not installed"):
            redis_binary()
