from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirim_async import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BulkError,
    BulkResult,
    CreateLabel,
    ExistsReason,
    Hooks,
    InvalidParameterError,
    KirimClient,
    LabelOutcome,
    MalformedResponseError,
    NotFoundError,
    OutcomeStatus,
    ProxyError,
    RateLimitError,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    ServerError,
    SkipReason,
    bulk_create_labels,
    iter_bulk_create_labels,
)
from kirim_async._sansio import build_create_label
from kirim_async.bulk import Planner
from kirim_async.testing import FakeClock, FakeKirimServer, Fault

from .conftest import (
    Answer,
    RecordingProxy,
    ScriptedServer,
    SleepRecorder,
    client_for,
    closed_port,
    label_body,
)

RL = {"error": {"code": "rate_limit_exceeded", "message": "slow down"}}


class TestInputs:
    """Items are CreateLabels, mappings or names, from an iterable or an async iterable."""

    async def test_every_kind_of_item(self, server: FakeKirimServer) -> None:
        items: list[Any] = [
            CreateLabel(name="a", color="red"),
            {"name": "b", "color": "sky"},
            {"name": "c", "color": None, "team_id": None},
            "d",
        ]
        async with client_for(server) as client:
            result = await bulk_create_labels(client, items)
        assert [o.status for o in result.outcomes] == [OutcomeStatus.CREATED] * 4
        assert {(label["name"], label["color"]) for label in server.labels} == {
            ("a", "red"),
            ("b", "sky"),
            ("c", "gray"),
            ("d", "gray"),
        }

    async def test_async_iterable(self, server: FakeKirimServer) -> None:
        async def names() -> AsyncIterator[str]:
            for i in range(30):
                yield f"n{i}"

        async with client_for(server) as client:
            result = await bulk_create_labels(client, names(), concurrency=4)
        assert len(result.created) == 30
        assert [o.index for o in result.outcomes] == list(range(30))

    @pytest.mark.parametrize("asynchronous", [False, True])
    async def test_each_index_is_the_items_position(
        self, server: FakeKirimServer, asynchronous: bool
    ) -> None:
        # The workers share the input: numbering must follow the order items are read.
        names = [f"n{i}" for i in range(200)]

        async def agen() -> AsyncIterator[str]:
            for name in names:
                await asyncio.sleep(0)  # let other workers queue on the reading lock
                yield name

        items = agen() if asynchronous else iter(names)
        async with client_for(server) as client:
            result = await bulk_create_labels(client, items, concurrency=16)
        assert [o.request.name for o in result.outcomes] == names
        assert {label["name"] for label in server.labels} == set(names)

    @pytest.mark.parametrize("hooked", [False, True], ids=["filed", "streamed"])
    @pytest.mark.parametrize("asynchronous", [False, True])
    async def test_an_input_that_raises_ends_the_job_with_its_error(
        self, asynchronous: bool, hooked: bool
    ) -> None:
        def names() -> Iterator[str]:
            for i in range(50):
                yield f"n{i}"
            raise ValueError("the input broke")

        async def agen() -> AsyncIterator[str]:
            for name in names():
                yield name

        seen: list[LabelOutcome] = []
        # The server runs on its own thread, so that this loop holds only the client's tasks.
        with FakeKirimServer().running_in_thread() as server:
            async with client_for(server) as client:
                with pytest.raises(ValueError, match="the input broke"):
                    await bulk_create_labels(
                        client,
                        agen() if asynchronous else names(),
                        on_outcome=seen.append if hooked else None,
                    )
                assert asyncio.all_tasks() == {asyncio.current_task()}
        assert len({o.index for o in seen}) == len(seen) <= 50

    @pytest.mark.parametrize("where", ["on_outcome", "async on_outcome", "on_response hook"])
    async def test_a_callback_that_raises_ends_the_job_with_its_error(self, where: str) -> None:
        calls = 0

        def broken(_: object) -> None:
            nonlocal calls
            calls += 1
            if calls == 5:
                raise ValueError("the callback broke")

        async def broken_async(event: object) -> None:
            broken(event)

        on_outcome = {"on_outcome": broken, "async on_outcome": broken_async}.get(where)
        hooks = Hooks(on_response=broken) if where == "on_response hook" else None
        with FakeKirimServer().running_in_thread() as server:
            async with client_for(server, hooks=hooks) as client:
                with pytest.raises(ValueError, match="the callback broke"):
                    await bulk_create_labels(
                        client, [f"n{i}" for i in range(50)], on_outcome=on_outcome
                    )
                assert asyncio.all_tasks() == {asyncio.current_task()}
        if where == "on_response hook":
            assert calls >= 5  # answers already in when it raised still reach the hook
        else:
            assert calls == 5  # no outcome is handed over after the one that raised

    async def test_iterator_yields_in_completion_order_with_index(self) -> None:
        async with FakeKirimServer() as server, client_for(server) as client:
            server.script(Fault.LATENCY)  # the first item answers last
            outcomes = [o async for o in iter_bulk_create_labels(client, ["slow", "a", "b"])]
        assert sorted(o.index for o in outcomes) == [0, 1, 2]
        assert outcomes[-1].index == 0

    async def test_input_is_read_lazily(self, server: FakeKirimServer) -> None:
        pulled = 0

        def names() -> Iterator[str]:
            nonlocal pulled
            for i in range(10_000):
                pulled += 1
                yield f"n{i}"

        concurrency = 4
        yielded = 0
        most_ahead = 0
        async with client_for(server) as client:
            stream = iter_bulk_create_labels(client, names(), concurrency=concurrency)
            async with contextlib.aclosing(stream):
                async for _ in stream:
                    yielded += 1
                    most_ahead = max(most_ahead, pulled - yielded)
                    if yielded == 300:
                        break
        assert most_ahead <= 2 * concurrency + 1
        assert pulled < 300 + 2 * concurrency + 2

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"concurrency": 0}, "concurrency"),
            ({"concurrency": True}, "concurrency"),
            ({"on_duplicate": "ignore"}, "on_duplicate"),
            ({"max_rate_limit_wait": -1}, "max_rate_limit_wait"),
            ({"max_rate": 0}, "max_rate"),
            ({"max_rate": float("inf")}, "max_rate"),
            ({"max_rate": "10"}, "max_rate"),
            ({"max_rate": 10**400}, "max_rate"),  # before: OverflowError
            ({"max_retries": -1}, "max_retries"),
            # Before: three labels created, then a TypeError that lost their outcomes.
            ({"on_outcome": "print"}, "on_outcome"),
            ({"dedupe": "no"}, "dedupe"),  # before: truthy, so de-duplicated
        ],
    )
    async def test_rejects_bad_options(
        self, server: FakeKirimServer, options: dict[str, Any], field: str
    ) -> None:
        async with client_for(server) as client:
            with pytest.raises(InvalidParameterError) as info:
                await bulk_create_labels(client, ["a"], **options)
        assert info.value.field == field
        assert server.stats.requests == 0

    async def test_concurrency_must_fit_the_clients_pool(self, server: FakeKirimServer) -> None:
        async with client_for(server, connection_limit=4) as client:
            with pytest.raises(InvalidParameterError, match="connection_limit") as info:
                await bulk_create_labels(client, ["a"], concurrency=5)
            assert info.value.field == "concurrency"
            result = await bulk_create_labels(client, ["a", "b", "c", "d"], concurrency=4)
        assert len(result.created) == 4

    @pytest.mark.parametrize(("limit", "fits"), [(2, False), (0, True)], ids=["2", "no limit"])
    async def test_concurrency_must_fit_a_callers_pool(
        self, server: FakeKirimServer, limit: int, fits: bool
    ) -> None:
        connector = aiohttp.TCPConnector(limit=limit)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            client_for(server, session=session) as client,
        ):
            if fits:
                result = await bulk_create_labels(client, ["a", "b", "c"], concurrency=3)
                assert len(result.created) == 3
            else:
                with pytest.raises(InvalidParameterError) as info:
                    await bulk_create_labels(client, ["a"], concurrency=3)
                assert info.value.field == "concurrency"

    @pytest.mark.parametrize(
        "items", ["bug", b"bug", {"name": "bug"}, CreateLabel(name="bug"), 42, None]
    )
    async def test_refuses_a_single_item_for_items(
        self, server: FakeKirimServer, items: Any
    ) -> None:
        # A name is iterable: read as items, "bug" would make the labels "b", "u" and "g".
        async with client_for(server) as client:
            with pytest.raises(InvalidParameterError) as info:
                await bulk_create_labels(client, items)
            assert info.value.field == "items"
            with pytest.raises(InvalidParameterError):
                async for _ in iter_bulk_create_labels(client, items):
                    pass  # pragma: no cover - nothing is yielded
        assert server.stats.requests == 0


class TestConcurrency:
    """At most ``concurrency`` requests are in flight, as the server counts them."""

    @pytest.mark.parametrize("concurrency", [1, 5, 16])
    async def test_bounded_in_flight(self, concurrency: int) -> None:
        async with FakeKirimServer(latency=0.01) as server, client_for(server) as client:
            names = [f"n{i}" for i in range(4 * concurrency)]
            await bulk_create_labels(client, names, concurrency=concurrency)
        assert server.stats.max_in_flight == concurrency


class TestOutcomes:
    """Exactly one outcome per item, with the status the issue names."""

    async def test_invalid_items_do_not_stop_the_job(self, server: FakeKirimServer) -> None:
        items: list[Any] = [
            "ok-1",
            "",
            {"name": "x" * 51},
            {"name": "ok-2", "color": "purple"},
            {"color": "red"},
            {"name": "ok-3", "size": 3},
            42,
            {"name": None, "color": "red"},
            "lone-\udc80",  # e.g. decoded with "surrogateescape": JSON cannot carry it
            {"name": "ok-4", "color": None, "team_id": None},  # None: not given
        ]
        async with client_for(server) as client:
            result = await bulk_create_labels(client, items)
        statuses = [o.status.value for o in result.outcomes]
        assert statuses == [
            "created",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "created",
        ]
        assert result.outcomes[-1].label is not None
        assert result.outcomes[-1].label.color == "gray"
        invalid = result.invalid
        assert [o.error.field for o in invalid if isinstance(o.error, InvalidParameterError)] == [
            "name",
            "name",
            "color",
            "name",
            "size",
            "item",
            "name",
            "name",
        ]
        assert invalid[0].request == ""
        assert all(o.attempts == 0 for o in invalid)
        assert server.stats.requests == 2

    @settings(max_examples=300)
    @given(
        st.dictionaries(
            st.sampled_from(["name", "color", "team_id"]) | st.text(max_size=3),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers()
                | st.floats()
                | st.lists(st.characters() | st.just("\udc80"), max_size=60).map("".join),
                lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(), inner),
                max_leaves=3,
            ),
        )
    )
    def test_any_mapping_is_a_request_or_an_invalid_outcome(self, item: dict[str, Any]) -> None:
        prepared = Planner(default_team_id=None, dedupe=False).prepare(0, item)
        if isinstance(prepared, LabelOutcome):
            assert prepared.status is OutcomeStatus.INVALID
            assert isinstance(prepared.error, InvalidParameterError)
        else:  # valid means sendable: it encodes
            assert build_create_label("https://api.kirim.chat/v1", prepared).body

    async def test_repeats_are_skipped_pointing_at_the_first(self) -> None:
        items: list[Any] = [
            "bug",
            {"name": "bug", "team_id": "b"},
            {"name": "bug", "color": "red"},
            CreateLabel(name="bug", team_id="a"),
            {"name": "bug", "team_id": "b"},
        ]
        async with (
            FakeKirimServer(teams=["a", "b"]) as server,
            client_for(server, team_id="a") as client,
        ):
            result = await bulk_create_labels(client, items)
        skipped = result.skipped
        assert [(o.index, o.skip_reason, o.first_index) for o in skipped] == [
            (2, SkipReason.REPEAT, 0),
            (3, SkipReason.REPEAT, 0),
            (4, SkipReason.REPEAT, 1),
        ]
        assert server.stats.requests == 2
        assert result.ok

    async def test_without_dedupe_repeats_are_sent(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            result = await bulk_create_labels(client, ["bug", "bug"], concurrency=1, dedupe=False)
        assert [o.status for o in result.outcomes] == [OutcomeStatus.CREATED, OutcomeStatus.EXISTS]

    async def test_pre_existing_name_is_exists(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            await client.labels.create("bug")
            result = await bulk_create_labels(client, ["bug"])
        (outcome,) = result.outcomes
        assert outcome.status is OutcomeStatus.EXISTS
        assert outcome.exists_reason is ExistsReason.PRE_EXISTING
        assert outcome.request_id is not None
        assert result.ok

    async def test_on_duplicate_error_fails_pre_existing_only(
        self, server: FakeKirimServer
    ) -> None:
        async with client_for(server, sleep=SleepRecorder()) as client:
            await client.labels.create("old")
            server.script(Fault.STORE_THEN_DROP)
            result = await bulk_create_labels(
                client, ["new", "old"], concurrency=1, on_duplicate="error"
            )
        new, old = result.outcomes
        assert new.status is OutcomeStatus.EXISTS
        assert new.exists_reason is ExistsReason.EARLIER_ATTEMPT
        assert new.attempts == 2
        assert old.status is OutcomeStatus.FAILED
        assert not result.ok

    async def test_lost_answer_is_exists_from_earlier_attempt(
        self, server: FakeKirimServer
    ) -> None:
        server.script(Fault.STORE_THEN_TRUNCATE)
        async with client_for(server, sleep=SleepRecorder()) as client:
            result = await bulk_create_labels(client, ["bug"])
        (outcome,) = result.outcomes
        assert outcome.status is OutcomeStatus.EXISTS
        assert outcome.exists_reason is ExistsReason.EARLIER_ATTEMPT
        assert result.counts[OutcomeStatus.EXISTS] == 1

    async def test_failed_after_retries(self, server: FakeKirimServer) -> None:
        server.script(Fault.SERVER_ERROR, Fault.SERVER_ERROR)
        async with client_for(server, sleep=SleepRecorder()) as client:
            result = await bulk_create_labels(client, ["bug"], max_retries=1)
        (outcome,) = result.outcomes
        assert outcome.status is OutcomeStatus.FAILED
        assert isinstance(outcome.error, ServerError)
        assert outcome.attempts == 2
        assert outcome.request_id is not None
        with pytest.raises(BulkError, match="1 of 1 items not done") as info:
            result.raise_for_failures()
        assert info.value.result is result

    async def test_a_result_s_repr_counts_its_outcomes_rather_than_listing_them(
        self, server: FakeKirimServer
    ) -> None:
        # Was the default attrs repr: every outcome, so logging a 20,000-item result
        # wrote megabytes.
        async with client_for(server) as client:
            result = await bulk_create_labels(client, [f"n{i}" for i in range(300)] + [""])
        text = repr(result)
        assert text.startswith("BulkResult(outcomes=<301 outcomes: 300 created, 1 invalid>, ")
        assert f"requests_sent={result.requests_sent}" in text
        assert len(text) < 200
        async with client_for(server) as client:
            one = await bulk_create_labels(client, ["solo"])
        assert repr(one).startswith("BulkResult(outcomes=<1 outcome: 1 created>, ")

    async def test_created_outcome_carries_label(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            result = await bulk_create_labels(client, [CreateLabel(name="bug", color="red")])
        (outcome,) = result.created
        assert outcome.label is not None
        assert outcome.label.id == server.labels[0]["id"]
        assert outcome.request == CreateLabel(name="bug", color="red")
        assert outcome.attempts == 1
        assert outcome.request_id == outcome.label.request_id

    async def test_authentication_error_stops_the_job(self) -> None:
        concurrency = 4
        async with (
            FakeKirimServer(latency=0.01) as server,
            KirimClient("wrong", base_url=server.url) as client,
        ):
            result = await bulk_create_labels(
                client, [f"n{i}" for i in range(200)], concurrency=concurrency
            )
        assert server.stats.requests <= concurrency
        assert len(result.outcomes) == 200
        assert len(result.failed) == server.stats.requests
        assert all(isinstance(o.error, AuthenticationError) for o in result.failed)
        stopped = result.skipped
        assert len(stopped) == 200 - server.stats.requests
        assert all(o.skip_reason is SkipReason.STOPPED for o in stopped)
        assert all(isinstance(o.error, AuthenticationError) for o in stopped)
        assert not result.ok

    async def test_a_job_that_never_reaches_the_api_stops(self, sleeps: SleepRecorder) -> None:
        # Before: a wrong base URL tried every item with all its retries, one by one
        # (300 rows took 30 s of refused connections); now the first failure stops it.
        concurrency = 4
        port = closed_port()
        async with KirimClient(
            "tok", base_url=f"http://127.0.0.1:{port}/v1", sleep=sleeps
        ) as client:
            result = await bulk_create_labels(
                client, [f"n{i}" for i in range(200)], concurrency=concurrency
            )
        assert len(result.outcomes) == 200
        assert 1 <= len(result.failed) <= concurrency  # the items already trying
        assert all(
            isinstance(o.error, APIConnectionError) and not o.error.request_may_have_been_sent
            for o in result.failed
        )
        assert all(not o.may_exist for o in result.failed)
        stopped = result.skipped
        assert len(stopped) == 200 - len(result.failed)
        assert all(o.skip_reason is SkipReason.STOPPED for o in stopped)
        assert all(isinstance(o.error, APIConnectionError) for o in stopped)
        assert len(sleeps.waits) <= concurrency * 2  # no item past the first ones retried

    async def test_a_base_url_without_the_endpoint_stops_the_job(
        self, server: FakeKirimServer
    ) -> None:
        # Was: every item sent and answered 404 (a base URL without its /v1).
        concurrency = 4
        async with KirimClient(server.token, base_url=server.url.removesuffix("/v1")) as client:
            result = await bulk_create_labels(
                client, [f"n{i}" for i in range(50)], concurrency=concurrency
            )
        assert 1 <= len(result.failed) <= concurrency
        assert all(isinstance(o.error, NotFoundError) for o in result.failed)
        assert len(result.skipped) == 50 - len(result.failed)
        assert all(o.skip_reason is SkipReason.STOPPED for o in result.skipped)
        assert server.labels == []

    async def test_a_404_in_the_apis_own_words_fails_only_its_item(
        self, scripted: ScriptedServer
    ) -> None:
        # An error body with a code is the API speaking of this request, not a wrong URL.
        gone = {"error": {"code": "team_not_found", "message": "No such team."}}
        scripted.script(Answer(404, gone), Answer(201, label_body()), Answer(404, gone))
        async with client_for(scripted) as client:
            result = await bulk_create_labels(client, ["a", "b", "c"], concurrency=1)
        assert [o.status for o in result.outcomes] == [
            OutcomeStatus.FAILED,
            OutcomeStatus.CREATED,
            OutcomeStatus.FAILED,
        ]
        assert len(scripted.requests) == 3

    async def test_a_proxy_refusing_the_tunnel_stops_the_job_without_retries(
        self, proxy: RecordingProxy, sleeps: SleepRecorder
    ) -> None:
        concurrency = 4
        async with KirimClient(
            "tok", base_url="https://api.kirim.example/v1", proxy=proxy.url, sleep=sleeps
        ) as client:
            result = await bulk_create_labels(
                client, [f"n{i}" for i in range(50)], concurrency=concurrency
            )
        assert 1 <= len(result.failed) <= concurrency
        assert all(
            isinstance(o.error, ProxyError) and o.error.proxy_status == 407 and o.attempts == 1
            for o in result.failed
        )
        assert len(result.skipped) == 50 - len(result.failed)
        assert all(o.skip_reason is SkipReason.STOPPED for o in result.skipped)
        assert sleeps.waits == []  # no item retried a refusal
        assert len(proxy.requests) == len(result.failed)

    async def test_a_proxy_that_starts_refusing_stops_the_job_after_the_api_answered(
        self, server: FakeKirimServer, proxy: RecordingProxy, sleeps: SleepRecorder
    ) -> None:
        # A failure to connect after the API has answered lets the job go on; a proxy's
        # 407 (its credentials rotated under the job, say) does not pass, so it stops.
        async def items() -> AsyncIterator[str]:
            yield "a"
            proxy.forward_status = 407  # a plain http:// request: answered, not tunnelled
            for name in ("b", "c", "d"):
                yield name

        async with client_for(server, sleeps, proxy=proxy.url) as client:
            result = await bulk_create_labels(client, items(), concurrency=1)
        assert [o.status for o in result.outcomes] == [
            OutcomeStatus.CREATED,
            OutcomeStatus.FAILED,
            OutcomeStatus.SKIPPED,
            OutcomeStatus.SKIPPED,
        ]
        failed = result.outcomes[1].error
        assert isinstance(failed, APIStatusError)
        assert failed.status == 407
        assert str(failed).startswith(
            "407: Proxy Authentication Required: check the user and password in the proxy's URL"
        )
        assert result.outcomes[2].error is failed
        assert len(proxy.requests) == 2
        assert sleeps.waits == []

    async def test_an_item_whose_retry_the_stop_cancels_is_failed_with_its_attempts(
        self,
    ) -> None:
        # Two items fail to connect. One retries at once and fails for good, which stops
        # the job; the other's retry waits until then, so the stop cancels it.
        first_outcome = asyncio.Event()
        sleeps: list[float] = []

        async def second_sleeper_waits_for_the_stop(seconds: float) -> None:
            sleeps.append(seconds)
            if len(sleeps) == 2:
                await first_outcome.wait()

        async with KirimClient(
            "tok",
            base_url=f"http://127.0.0.1:{closed_port()}/v1",
            sleep=second_sleeper_waits_for_the_stop,
            max_retries=1,
        ) as client:
            result = await bulk_create_labels(
                client, ["a", "b", "c"], concurrency=2, on_outcome=lambda _: first_outcome.set()
            )
        by_name = {o.request.name: o for o in result.outcomes if isinstance(o.request, CreateLabel)}
        assert by_name["c"].status is OutcomeStatus.SKIPPED  # never tried
        tried = sorted((by_name["a"], by_name["b"]), key=lambda o: o.attempts)
        # Was: skipped as "stopped", with 0 attempts, as if it had never been tried.
        assert [o.status for o in tried] == [OutcomeStatus.FAILED, OutcomeStatus.FAILED]
        assert [o.attempts for o in tried] == [1, 2]
        assert all(isinstance(o.error, APIConnectionError) for o in tried)
        assert not any(o.may_exist for o in tried)

    async def test_a_connection_failure_after_the_api_answered_does_not_stop_the_job(
        self, sleeps: SleepRecorder
    ) -> None:
        # Once the API has answered, a failure to connect may pass: each item is tried.
        server = FakeKirimServer()
        await server.start()

        async def items() -> AsyncIterator[str]:
            yield "a"
            await server.close()  # the first answer is in: the server goes away
            for name in ("b", "c", "d"):
                yield name

        try:
            async with client_for(server, sleeps) as client:
                result = await bulk_create_labels(client, items(), concurrency=1)
        finally:
            await server.close()
        assert [o.status for o in result.outcomes] == [
            OutcomeStatus.CREATED,
            OutcomeStatus.FAILED,
            OutcomeStatus.FAILED,
            OutcomeStatus.FAILED,
        ]
        assert all(isinstance(o.error, APIConnectionError) for o in result.failed)
        assert all(o.attempts == 3 for o in result.failed)

    async def test_an_item_stopped_after_an_ambiguous_attempt_is_failed_not_unsent(
        self, scripted: ScriptedServer
    ) -> None:
        # One request meets a 500 (its label may exist); while its retry waits, the other
        # meets a 401, which stops the job, so that the retry is never sent.
        result = await _stopped_by_a_401_after(scripted, Answer(500, b""))
        assert len(scripted.requests) == 2
        by_error = {type(o.error): o for o in result.outcomes}
        assert by_error[AuthenticationError].status is OutcomeStatus.FAILED
        tried = by_error[ServerError]  # was: skipped as "stopped", with 0 attempts
        assert tried.status is OutcomeStatus.FAILED
        assert tried.attempts == 1
        assert tried.may_exist

    async def test_an_item_stopped_while_it_waits_out_a_429_counts_its_attempt(
        self, scripted: ScriptedServer
    ) -> None:
        # One request meets a 429 (nothing created); while it waits at the gate, the other
        # meets a 401, which stops the job. The first is not done, but it was sent once.
        too_many = {"error": {"code": "rate_limited", "request_id": "req_429"}}
        result = await _stopped_by_a_401_after(
            scripted, Answer(429, too_many, {"Retry-After": "5"})
        )
        assert len(scripted.requests) == 2
        (waited,) = result.skipped
        assert waited.skip_reason is SkipReason.STOPPED
        assert isinstance(waited.error, AuthenticationError)
        # Was: 0 attempts and no request id, as if it had never been sent.
        assert waited.attempts == 1
        assert waited.request_id == "req_429"
        assert not waited.may_exist

    @pytest.mark.parametrize(
        ("answer", "may_exist"),
        [
            (Answer(500, b""), True),
            # a success whose body could not be read, twice: sent again, still unknown
            ((Answer(201, b"<html>"), Answer(200, b"<html>")), True),
            (Answer(400, {"error": {"code": "nope"}}), False),
            (Answer(404, b""), False),
            (Answer(201, label_body("a")), False),  # created: nothing left in doubt
        ],
    )
    async def test_may_exist_says_whether_a_failed_item_may_have_been_created(
        self, scripted: ScriptedServer, answer: Answer | tuple[Answer, ...], may_exist: bool
    ) -> None:
        scripted.script(*(answer if isinstance(answer, tuple) else (answer,)))
        async with client_for(scripted, max_retries=0) as client:
            result = await bulk_create_labels(client, ["a"])
        assert result.outcomes[0].may_exist is may_exist

    @pytest.mark.parametrize("fault", [Fault.STORE_THEN_MALFORM, Fault.STORE_THEN_GARBLE])
    async def test_an_unreadable_success_is_confirmed_by_sending_it_again(
        self, fault: Fault
    ) -> None:
        # The label was stored, but its answer cannot be read. Sending the item again
        # settles it: the duplicate proves the first attempt created it.
        names = ["a", "b", "c"]
        async with (
            FakeKirimServer(success_status=200, validation_status=422, extra_fields=True) as server,
            client_for(server) as client,
        ):
            server.script(None, fault)
            result = await bulk_create_labels(client, names, concurrency=1)
        statuses = [o.status for o in result.outcomes]
        assert statuses == [OutcomeStatus.CREATED, OutcomeStatus.EXISTS, OutcomeStatus.CREATED]
        confirmed = result.outcomes[1]
        assert confirmed.exists_reason is ExistsReason.EARLIER_ATTEMPT
        assert confirmed.attempts == 2
        assert len(server.labels) == 3

    async def test_an_unreadable_success_not_stored_is_created_by_the_second_send(
        self, scripted: ScriptedServer
    ) -> None:
        # A proxy's HTML page with a 200: nothing was stored; the second send creates it.
        scripted.script(Answer(200, b"<html>portal</html>"))
        async with client_for(scripted, max_retries=0) as client:
            result = await bulk_create_labels(client, ["a"])
        (outcome,) = result.outcomes
        assert (outcome.status, outcome.attempts) == (OutcomeStatus.CREATED, 2)
        assert len(scripted.requests) == 2

    async def test_an_item_still_unreadable_fails_in_doubt_and_a_rerun_finds_it(
        self, scripted: ScriptedServer
    ) -> None:
        scripted.script(Answer(201, b'{"id": '), Answer(201, b'{"id": '))
        async with client_for(scripted, max_retries=0) as client:
            first = await bulk_create_labels(client, ["a"])
            scripted.script(
                Answer(422, {"error": {"code": "invalid_field_value", "param": "name"}})
            )
            rerun = await bulk_create_labels(client, ["a"])
        (in_doubt,) = first.outcomes
        assert in_doubt.status is OutcomeStatus.FAILED
        assert isinstance(in_doubt.error, MalformedResponseError)
        assert (in_doubt.may_exist, in_doubt.attempts) == (True, 2)
        assert [o.status for o in rerun.outcomes] == [OutcomeStatus.EXISTS]

    async def test_result_views_and_figures(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            await client.labels.create("old")
            result = await bulk_create_labels(client, ["a", "old", "", "a", "b"])
        assert [o.index for o in result.outcomes] == [0, 1, 2, 3, 4]
        assert result.counts == {
            OutcomeStatus.CREATED: 2,
            OutcomeStatus.EXISTS: 1,
            OutcomeStatus.INVALID: 1,
            OutcomeStatus.FAILED: 0,
            OutcomeStatus.SKIPPED: 1,
        }
        assert [o.index for o in result.created] == [0, 4]
        assert [o.index for o in result.existing] == [1]
        assert [o.index for o in result.invalid] == [2]
        assert [o.index for o in result.skipped] == [3]
        assert result.failed == ()
        assert not result.ok  # an invalid item is not done
        assert result.requests_sent == 3
        assert result.rate_limited == 0
        assert result.elapsed >= 0

    async def test_on_outcome_sync_and_async_once_each(self, server: FakeKirimServer) -> None:
        seen: list[int] = []
        awaited: list[int] = []

        async def record(outcome: LabelOutcome) -> None:
            awaited.append(outcome.index)

        async with client_for(server) as client:
            await bulk_create_labels(
                client, ["a", "b", "", "a"], on_outcome=lambda o: seen.append(o.index)
            )
            await bulk_create_labels(client, ["c", "d"], on_outcome=record)
        assert sorted(seen) == [0, 1, 2, 3]
        assert sorted(awaited) == [0, 1]


class TestRateLimits:
    """One shared gate: 429s pause the job once; pacing avoids most of them."""

    async def test_rate_limit_waits_do_not_spend_retry_budget(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(*[Answer(429, RL, {"Retry-After": "1"})] * 5)
        async with client_for(scripted, sleeps) as client:
            result = await bulk_create_labels(client, ["bug"], max_retries=0)
        (outcome,) = result.outcomes
        assert outcome.status is OutcomeStatus.CREATED
        assert outcome.attempts == 6
        assert result.rate_limited == 5
        assert result.requests_sent == 6
        assert sum(sleeps.waits) >= 5

    async def test_on_retry_hook_sees_each_429_the_gate_waits_out(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        scripted.script(
            Answer(429, RL, {"Retry-After": "2"}),
            Answer(500, {"error": {"code": "internal_error", "message": "oops"}}),
            Answer(429, RL, {"Retry-After": "1"}),
        )
        retries: list[RetryEvent] = []
        hooks = Hooks(on_retry=retries.append)
        async with client_for(scripted, sleeps, hooks=hooks) as client:
            result = await bulk_create_labels(client, ["bug"])
        assert result.outcomes[0].status is OutcomeStatus.CREATED
        # Before, only the 500 was reported: a hook counting retries missed the 429s.
        seen = [(e.attempt, type(e.error)) for e in retries]
        assert seen == [(1, RateLimitError), (2, ServerError), (3, RateLimitError)]
        assert [retries[0].wait, retries[2].wait] == [2.0, 1.0]  # the gate's pauses

    @pytest.mark.parametrize(
        ("retry_after", "most_waited", "most_requests"),
        [
            ("10", 25, 5),  # the gate's closings spend the budget; nothing sent after
            # "Retry-After: 0" closes the gate for nothing: the unbroken run of 429s
            # spends it (and at most one paced turn past it). Unbounded, the pacer's
            # floor would go on for ever; blind cuts to 70 % each take it there.
            ("0", 25 + 2, 50),
        ],
        ids=["closings", "a run of 429s"],
    )
    async def test_throttled_too_long_fails_the_rest(
        self,
        scripted: ScriptedServer,
        sleeps: SleepRecorder,
        retry_after: str,
        most_waited: float,
        most_requests: int,
    ) -> None:
        scripted.script(*[Answer(429, RL, {"Retry-After": retry_after})] * 1000)
        async with client_for(scripted, sleeps) as client:
            result = await bulk_create_labels(
                client, [f"n{i}" for i in range(20)], concurrency=2, max_rate_limit_wait=25
            )
        assert len(result.failed) == 20
        assert all(isinstance(o.error, RateLimitError) for o in result.failed)
        assert sum(sleeps.waits) <= most_waited
        assert len(scripted.requests) <= most_requests

    async def test_a_retry_after_above_max_retry_after_stops_the_job(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        # Jobs ignored max_retry_after: with max_rate_limit_wait=inf, "Retry-After:
        # 1e308" or a date in the year 9999 waited forever.
        scripted.script(
            Answer(429, {"error": {"code": "rate_limit_exceeded"}}, {"Retry-After": "1e308"})
        )
        async with client_for(scripted, sleeps) as client:
            result = await bulk_create_labels(
                client, ["a", "b", "c"], concurrency=1, max_rate_limit_wait=math.inf
            )
        assert [o.status for o in result.outcomes] == [OutcomeStatus.FAILED] * 3
        assert all(isinstance(o.error, RateLimitError) for o in result.outcomes)
        assert len(scripted.requests) == 1  # the others were never sent
        assert sleeps.waits == []

    async def test_a_reset_the_hints_name_above_max_retry_after_stops_the_job(
        self, scripted: ScriptedServer, sleeps: SleepRecorder
    ) -> None:
        # The same with the wait named by GitHub's headers (no Retry-After): a day away.
        spent = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0"}
        spent["x-ratelimit-reset"] = str(1_800_000_000 + 86_000)
        scripted.script(Answer(429, RL, spent))
        async with client_for(scripted, sleeps, wall_clock=lambda: 1_800_000_000) as client:
            result = await bulk_create_labels(
                client, ["a", "b", "c"], concurrency=1, max_rate_limit_wait=math.inf
            )
        assert [o.status for o in result.outcomes] == [OutcomeStatus.FAILED] * 3
        assert all(isinstance(o.error, RateLimitError) for o in result.outcomes)
        assert len(scripted.requests) == 1
        assert sleeps.waits == []

    async def test_each_429_and_a_spent_budget_are_logged_at_debug(
        self, scripted: ScriptedServer, sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture
    ) -> None:
        limited = {"error": {"code": "rate_limit_exceeded", "message": "slow down"}}
        scripted.script(
            Answer(
                429,
                {"error": {**limited["error"], "request_id": "req_first"}},
                {"Retry-After": "2"},
            ),
            Answer(
                429,
                {"error": {**limited["error"], "request_id": "req_last"}},
                {"Retry-After": "60"},
            ),
        )
        caplog.set_level(logging.DEBUG, logger="kirim_async")
        async with client_for(scripted, sleeps) as client:
            result = await bulk_create_labels(client, ["a"], max_rate_limit_wait=30)
        assert isinstance(result.outcomes[0].error, RateLimitError)
        messages = [r.getMessage() for r in caplog.records if r.name == "kirim_async"]
        decision, pause, spent = messages
        # Each pacing decision says why: one item's send measures no rate to pace at.
        assert decision.startswith("pace not set: too few sends to measure a rate (1)")
        assert pause.startswith("rate limited (request_id=req_first): the job pauses for 2.000s")
        assert "2.0s of its 30s budget spent" in pause
        assert spent.startswith("rate limited (request_id=req_last): waiting 60.000s more")
        assert "30s budget (max_rate_limit_wait)" in spent

    async def test_max_rate_spaces_every_send_of_the_job(
        self, server: FakeKirimServer, sleeps: SleepRecorder, clock: FakeClock
    ) -> None:
        sent_at: list[float] = []
        hooks = Hooks(on_request=lambda _: sent_at.append(clock()))
        async with client_for(server, sleeps, hooks=hooks) as client:
            result = await bulk_create_labels(
                client, [f"n{i}" for i in range(21)], concurrency=8, max_rate=10
            )
        assert len(result.created) == 21
        gaps = [later - earlier for earlier, later in itertools.pairwise(sent_at)]
        assert min(gaps) == pytest.approx(0.1)  # evenly spaced: no burst at the start
        assert sent_at[-1] - sent_at[0] == pytest.approx(2.0)

    async def test_paced_job_meets_few_429s(self) -> None:
        async with FakeKirimServer(rate=400, burst=20) as server, client_for(server) as client:
            result = await bulk_create_labels(client, [f"n{i}" for i in range(600)], concurrency=32)
        assert len(result.created) == 600
        assert server.stats.rate_limited <= 0.05 * 600
        assert result.rate_limited == server.stats.rate_limited

    async def test_paced_without_rate_limit_headers(self) -> None:
        async with (
            FakeKirimServer(rate=400, burst=20, rate_limit_headers=False) as server,
            client_for(server) as client,
        ):
            result = await bulk_create_labels(client, [f"n{i}" for i in range(600)], concurrency=32)
        assert len(result.created) == 600
        # How few 429s it takes is timing, measured by benchmarks/ratelimit.py (a bound
        # here failed one CI run in four on a loaded machine); what is counted is exact.
        assert result.rate_limited == server.stats.rate_limited


async def test_faulty_rate_limited_job_accounts_for_every_item() -> None:
    """2,000 items at concurrency 32 against 200/s, with 500s, drops and truncations."""
    faults = {
        Fault.SERVER_ERROR: 0.05,
        Fault.STORE_THEN_DROP: 0.02,
        Fault.STORE_THEN_TRUNCATE: 0.01,
    }
    valid = [f"label-{i}" for i in range(2000)]
    items: list[Any] = []
    for i, name in enumerate(valid):
        items.append(name)
        if i % 100 == 0:
            items.append({"name": name, "color": "red"})  # a repeat
        if i % 150 == 0:
            items.append({"name": "", "color": "red"})  # invalid
    async with (
        FakeKirimServer(rate=200, burst=20, faults=faults, seed=4) as server,
        client_for(server, max_retries=6) as client,
    ):
        result = await bulk_create_labels(client, items, concurrency=32)
    assert [o.index for o in result.outcomes] == list(range(len(items)))
    assert {label["name"] for label in server.labels} == set(valid)
    assert len(server.labels) == len(valid)
    created = {o.request.name for o in result.created}
    from_lost_answers = {
        o.request.name for o in result.existing if o.exists_reason is ExistsReason.EARLIER_ATTEMPT
    }
    assert created | from_lost_answers == set(valid)
    assert not created & from_lost_answers
    assert result.failed == ()
    assert server.stats.rate_limited <= 0.10 * server.stats.requests
    assert server.stats.dropped + server.stats.truncated > 0


async def test_cancellation_stops_at_once_and_leaves_nothing_running() -> None:
    done: list[LabelOutcome] = []
    sent: list[RequestEvent] = []
    sent_at_cancel: list[int] = []
    concurrency = 8
    job: asyncio.Future[Any] | None = None

    def record_then_cancel(outcome: LabelOutcome) -> None:
        done.append(outcome)
        if len(done) == 40 and job is not None:
            sent_at_cancel.append(len(sent))
            job.cancel()

    # The server runs on its own thread, so that this loop holds only the client's tasks.
    with FakeKirimServer(latency=0.02).running_in_thread() as server:
        async with client_for(server, hooks=Hooks(on_request=sent.append)) as client:
            job = asyncio.ensure_future(
                bulk_create_labels(
                    client,
                    [f"n{i}" for i in range(500)],
                    concurrency=concurrency,
                    on_outcome=record_then_cancel,
                )
            )
            with pytest.raises(asyncio.CancelledError):
                await job
            assert asyncio.all_tasks() == {asyncio.current_task()}
    # cancel() takes effect at the job's next suspension: outcomes that had already
    # finished may still be handed over before it, but none sent after it.
    assert 40 <= len(done) <= 40 + concurrency
    # Requests already dispatched when cancel() was called may still go out in that same
    # loop tick; nothing beyond that in-flight window does.
    assert len(sent) <= sent_at_cancel[0] + concurrency
    # Up to `concurrency` finished outcomes may wait to be handed over (the README's
    # bound) besides those in flight: a slow hook on a loaded machine fills that queue.
    # (Was `done + concurrency`, which one clean-clone CI run in nine broke: 49 > 48.)
    assert len(sent) <= len(done) + 2 * concurrency
    # Closing the server let its in-flight handlers finish: what they stored is there.
    stored = {label["name"] for label in server.labels}
    reported = {o.request.name for o in done if o.status is OutcomeStatus.CREATED}
    assert reported <= stored
    assert len(stored - reported) <= concurrency  # answers lost to the cancellation


async def test_cancelling_a_job_without_hook_leaves_nothing_running() -> None:
    """Without on_outcome the workers file outcomes themselves; cancelling still ends them."""
    sent: list[RequestEvent] = []
    concurrency = 8
    job: asyncio.Future[Any] | None = None

    def record_then_cancel(event: RequestEvent) -> None:
        sent.append(event)
        if len(sent) == 40 and job is not None:
            job.cancel()

    with FakeKirimServer(latency=0.02).running_in_thread() as server:
        async with client_for(server, hooks=Hooks(on_request=record_then_cancel)) as client:
            job = asyncio.ensure_future(
                bulk_create_labels(client, [f"n{i}" for i in range(500)], concurrency=concurrency)
            )
            with pytest.raises(asyncio.CancelledError):
                await job
            assert asyncio.all_tasks() == {asyncio.current_task()}
    assert 40 <= len(sent) <= 40 + concurrency


async def _stopped_by_a_401_after(scripted: ScriptedServer, first: Answer) -> BulkResult:
    """Run a job of two items: one meets *first*, and the other's 401 stops the job.

    Every wait (a retry's, the gate's) lasts until the 401 is in, so the first item is
    waiting to try again when the job stops.
    """
    scripted.script(first, Answer(401, b""))
    stopped = asyncio.Event()

    async def sleep_until_stopped(_: float) -> None:
        await stopped.wait()

    def on_response(event: ResponseEvent) -> None:
        if event.status == 401:
            stopped.set()

    hooks = Hooks(on_response=on_response)
    async with client_for(scripted, sleep=sleep_until_stopped, hooks=hooks) as client:
        return await bulk_create_labels(client, ["a", "b"], concurrency=2)
