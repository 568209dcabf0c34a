from __future__ import annotations

import asyncio
import email.utils
import json
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp
import attrs
import pytest

from kirim_async._converters import label_from_envelope, parse_rfc3339
from kirim_async.errors import InvalidParameterError
from kirim_async.testing import FakeClock, FakeKirimServer, Fault

from .conftest import run_on_its_own_loop

ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
AUTH = {"Authorization": "Bearer tok_test"}


async def post(
    http: aiohttp.ClientSession,
    server: FakeKirimServer,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """POST to the fake server; return status, decoded JSON (or raw bytes) and response.

    *raw* is sent as it is: labelled as JSON when *headers* are not given, else with
    the Content-Type they give, or none (aiohttp would add application/octet-stream).
    """
    if headers is None:
        headers = AUTH if raw is None else {**AUTH, "Content-Type": "application/json"}
    async with http.post(
        f"{server.url}/labels",
        json=body if raw is None else None,
        data=raw,
        headers=headers,
        skip_auto_headers=None if raw is None else ["Content-Type"],
    ) as resp:
        content = await resp.read()
        try:
            decoded: Any = json.loads(content)
        except ValueError:
            decoded = content
        return resp.status, decoded, resp


class TestSuccess:
    """A valid create answers 201 with the documented envelope."""

    async def test_answers_201_with_full_label(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        status, body, _ = await post(http, server, {"name": "bug", "color": "red"})
        assert status == 201
        data = body["data"]
        assert re.fullmatch(f"lbl_{ULID}", data["id"])
        assert re.fullmatch(f"req_{ULID}", body["request_id"])
        assert data["object"] == "label"
        assert (data["name"], data["color"], data["team_id"]) == ("bug", "red", "team_default")
        assert parse_rfc3339(data["created_at"]).tzinfo is not None
        assert parse_rfc3339(data["updated_at"]) == parse_rfc3339(data["created_at"])
        assert label_from_envelope(body).name == "bug"
        assert server.labels == [data]

    async def test_color_defaults_to_gray(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        _, body, _ = await post(http, server, {"name": "bug"})
        assert body["data"]["color"] == "gray"

    async def test_ids_are_unique(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        bodies = [(await post(http, server, {"name": f"n{i}"}))[1] for i in range(20)]
        assert len({b["data"]["id"] for b in bodies}) == 20
        assert len({b["request_id"] for b in bodies}) == 20

    async def test_ignores_unknown_request_fields(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        status, _, _ = await post(http, server, {"name": "bug", "description": "x"})
        assert status == 201


class TestAuthentication:
    """Every request needs ``Authorization: Bearer <token>``."""

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "tok_test"},
            {"Authorization": "Basic tok_test"},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearertok_test"},
            {"Authorization": "Bearer tok_test extra"},
            {"Authorization": "Bearer TOK_TEST"},
        ],
    )
    async def test_rejects_with_401(
        self, server: FakeKirimServer, http: aiohttp.ClientSession, headers: dict[str, str]
    ) -> None:
        status, body, _ = await post(http, server, {"name": "bug"}, headers=headers)
        assert status == 401
        assert body["error"]["type"] == "authentication_error"
        assert body["error"]["request_id"].startswith("req_")
        assert server.labels == []

    @pytest.mark.parametrize("value", ["bearer tok_test", "BEARER tok_test", "Bearer   tok_test"])
    async def test_scheme_is_case_insensitive(
        self, server: FakeKirimServer, http: aiohttp.ClientSession, value: str
    ) -> None:
        """RFC 9110 sections 11.1 and 11.4: the scheme's case and the spaces after it are free."""
        status, _, _ = await post(http, server, {"name": "bug"}, headers={"Authorization": value})
        assert status == 201

    async def test_random_token_by_default(self) -> None:
        async with FakeKirimServer() as one, FakeKirimServer() as two:
            assert one.token != two.token
            assert one.token not in repr(one)


class TestValidation:
    """Bad bodies answer 400 with ``param`` naming the field; nothing is stored."""

    @pytest.mark.parametrize(
        ("body", "code", "param"),
        [
            ({}, "missing_field", "name"),
            ({"color": "red"}, "missing_field", "name"),
            ({"name": ""}, "string_too_short", "name"),
            ({"name": "x" * 51}, "string_too_long", "name"),
            ({"name": 5}, "invalid_type", "name"),
            ({"name": None}, "invalid_type", "name"),
            ({"name": "ok", "color": "purple"}, "invalid_enum_value", "color"),
            ({"name": "ok", "color": 1}, "invalid_type", "color"),
            ({"name": "ok", "team_id": "t" * 65}, "string_too_long", "team_id"),
            ({"name": "ok", "team_id": ""}, "string_too_short", "team_id"),
            ({"name": "ok", "team_id": 9}, "invalid_type", "team_id"),
            ([{"name": "ok"}], "invalid_body", None),
            ("name", "invalid_body", None),
        ],
    )
    async def test_rejects_field(
        self,
        server: FakeKirimServer,
        http: aiohttp.ClientSession,
        body: Any,
        code: str,
        param: str | None,
    ) -> None:
        status, answer, _ = await post(http, server, body)
        assert status == 400
        error = answer["error"]
        assert (error["code"], error.get("param")) == (code, param)
        assert error["type"] == "invalid_request_error"
        assert error["message"]
        assert error["request_id"].startswith("req_")
        assert server.labels == []

    async def test_accepts_limits(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        async with FakeKirimServer(token="tok_test", teams=["t" * 64]) as wide:
            status, _, _ = await post(http, wide, {"name": "x" * 50, "team_id": "t" * 64})
        assert status == 201

    @pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"])
    async def test_rejects_non_json(
        self, server: FakeKirimServer, http: aiohttp.ClientSession, raw: bytes
    ) -> None:
        status, answer, _ = await post(http, server, raw=raw)
        assert status == 400
        assert answer["error"]["code"] == "invalid_json"

    @pytest.mark.parametrize(
        "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "json"]
    )
    async def test_rejects_a_body_not_labelled_json(
        self, server: FakeKirimServer, http: aiohttp.ClientSession, content_type: str | None
    ) -> None:
        headers = dict(AUTH)
        if content_type is not None:
            headers["Content-Type"] = content_type
        status, answer, _ = await post(http, server, raw=b'{"name": "bug"}', headers=headers)
        assert status == 400
        assert (answer["error"]["code"], answer["error"].get("param")) == (
            "invalid_content_type",
            None,
        )
        assert server.labels == []

    @pytest.mark.parametrize(
        "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json "]
    )
    async def test_json_in_any_case_and_with_parameters(
        self, server: FakeKirimServer, http: aiohttp.ClientSession, content_type: str
    ) -> None:
        headers = {**AUTH, "Content-Type": content_type}
        status, _, _ = await post(http, server, raw=b'{"name": "bug"}', headers=headers)
        assert status == 201


class TestTeamsAndUniqueness:
    """Names are unique per team; single-team orgs resolve team_id, multi-team ones need it."""

    async def test_duplicate_name_is_invalid_field_value_on_name(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        await post(http, server, {"name": "bug"})
        status, answer, _ = await post(http, server, {"name": "bug", "color": "red"})
        assert status == 400
        assert (answer["error"]["code"], answer["error"]["param"]) == (
            "invalid_field_value",
            "name",
        )
        assert len(server.labels) == 1

    async def test_same_name_in_another_team_is_fine(self, http: aiohttp.ClientSession) -> None:
        async with FakeKirimServer(token="tok_test", teams=["a", "b"]) as server:
            assert (await post(http, server, {"name": "bug", "team_id": "a"}))[0] == 201
            assert (await post(http, server, {"name": "bug", "team_id": "b"}))[0] == 201
            assert (await post(http, server, {"name": "bug", "team_id": "a"}))[0] == 400
            assert {(label["team_id"], label["name"]) for label in server.labels} == {
                ("a", "bug"),
                ("b", "bug"),
            }

    async def test_multi_team_org_requires_team_id(self, http: aiohttp.ClientSession) -> None:
        async with FakeKirimServer(token="tok_test", teams=["a", "b"]) as server:
            status, answer, _ = await post(http, server, {"name": "bug"})
        assert status == 400
        assert (answer["error"]["code"], answer["error"]["param"]) == ("missing_field", "team_id")

    async def test_single_team_org_resolves_and_accepts_its_id(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        _, auto, _ = await post(http, server, {"name": "one"})
        _, explicit, _ = await post(http, server, {"name": "two", "team_id": "team_default"})
        assert auto["data"]["team_id"] == explicit["data"]["team_id"] == "team_default"

    async def test_unknown_team_is_rejected(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        status, answer, _ = await post(http, server, {"name": "bug", "team_id": "nope"})
        assert status == 400
        assert answer["error"]["param"] == "team_id"


class TestAnswerVariants:
    """The answers may vary the ways API.md says the real API's do; the default is one."""

    async def test_success_status_200(self, http: aiohttp.ClientSession) -> None:
        async with FakeKirimServer(token="tok_test", success_status=200) as server:
            status, body, _ = await post(http, server, {"name": "bug"})
        assert status == 200
        assert label_from_envelope(body).name == "bug"
        assert server.stats.by_status == {200: 1}

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"name": ""}, "string_too_short"),
            ({"name": "bug", "team_id": "nope"}, "invalid_field_value"),  # unknown team
            ({"name": "bug"}, "invalid_field_value"),  # the duplicate
            ("name", "invalid_body"),
        ],
    )
    async def test_validation_status_422(
        self, http: aiohttp.ClientSession, body: Any, code: str
    ) -> None:
        async with FakeKirimServer(token="tok_test", validation_status=422) as server:
            assert (await post(http, server, {"name": "bug"}))[0] == 201
            status, answer, _ = await post(http, server, body)
            bad_json, _, _ = await post(http, server, raw=b"{not json")
        assert (status, bad_json) == (422, 422)
        assert (answer["error"]["type"], answer["error"]["code"]) == ("invalid_request_error", code)
        assert len(server.labels) == 1

    async def test_extra_fields_in_every_answer(self, http: aiohttp.ClientSession) -> None:
        async with FakeKirimServer(token="tok_test", extra_fields=True, rate=1, burst=2) as server:
            _, created, _ = await post(http, server, {"name": "bug"})
            _, duplicate, _ = await post(http, server, {"name": "bug"})
            status, limited, _ = await post(http, server, {"name": "feature"})
        assert created["warnings"] == []
        assert created["data"]["description"] is None
        assert created["data"]["usage_count"] == 0
        assert created["data"]["archived"] is False
        assert label_from_envelope(created).name == "bug"
        assert duplicate["error"]["doc_url"].endswith("#invalid_field_value")
        assert status == 429
        assert limited["error"]["doc_url"].endswith("#rate_limit_exceeded")
        # What the API documents is stored, and no more.
        assert set(server.labels[0]) == {
            "id", "object", "name", "color", "team_id", "created_at", "updated_at"
        }  # fmt: skip

    async def test_every_knob_off_answers_no_extra_field(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        _, created, _ = await post(http, server, {"name": "bug"})
        _, duplicate, _ = await post(http, server, {"name": "bug"})
        assert set(created) == {"data", "request_id"}
        assert set(created["data"]) == set(server.labels[0])
        assert set(duplicate["error"]) == {"type", "code", "message", "param", "request_id"}


class TestRateLimit:
    """A token bucket answers 429 with Retry-After and X-RateLimit-* headers."""

    async def test_burst_then_429_then_refill(
        self, http: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        async with FakeKirimServer(token="tok_test", rate=2, burst=3, clock=clock) as server:
            statuses = [(await post(http, server, {"name": f"n{i}"}))[0] for i in range(4)]
            assert statuses == [201, 201, 201, 429]
            status, answer, resp = await post(http, server, {"name": "late"})
            assert status == 429
            assert answer["error"]["type"] == "rate_limit_error"
            assert answer["error"]["code"] == "rate_limit_exceeded"
            assert float(resp.headers["Retry-After"]) == pytest.approx(0.5)
            assert resp.headers["X-RateLimit-Limit"] == "3"
            assert resp.headers["X-RateLimit-Remaining"] == "0"
            assert float(resp.headers["X-RateLimit-Reset"]) == pytest.approx(1.5)
            clock.advance(0.5)
            status, _, resp = await post(http, server, {"name": "late"})
            assert status == 201
            assert resp.headers["X-RateLimit-Remaining"] == "0"
            assert server.stats.rate_limited == 2
            assert len(server.labels) == 4

    async def test_burst_defaults_to_rate(
        self, http: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        async with FakeKirimServer(token="tok_test", rate=2.5, clock=clock) as server:
            statuses = [(await post(http, server, {"name": f"n{i}"}))[0] for i in range(4)]
        assert statuses == [201, 201, 201, 429]

    @pytest.mark.parametrize(
        ("style", "check"),
        [
            ("integer", lambda v: v == "1"),
            ("http-date", lambda v: email.utils.parsedate_to_datetime(v).tzinfo is not None),
            ("none", lambda v: v is None),
        ],
    )
    async def test_retry_after_styles(
        self, http: aiohttp.ClientSession, clock: FakeClock, style: Any, check: Any
    ) -> None:
        async with FakeKirimServer(
            token="tok_test", rate=10, burst=1, retry_after=style, clock=clock
        ) as server:
            await post(http, server, {"name": "a"})
            status, _, resp = await post(http, server, {"name": "b"})
        assert status == 429
        assert check(resp.headers.get("Retry-After"))

    async def test_rejected_requests_do_not_spend_tokens(
        self, http: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        async with FakeKirimServer(token="tok_test", rate=1, burst=1, clock=clock) as server:
            await post(http, server, {"name": "a"})
            for _ in range(5):
                await post(http, server, {"name": "b"})
            clock.advance(1.0)
            assert (await post(http, server, {"name": "b"}))[0] == 201


class TestRateLimitStyles:
    """The limiters and hint headers real APIs use, for judging a client against each."""

    async def test_a_fixed_window_resets_its_count_when_the_window_ends(
        self, http: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        clock.advance(0.25)  # a quarter into a window aligned on the clock
        async with FakeKirimServer(
            token="tok_test", rate=3, limiter="fixed-window", clock=clock
        ) as server:
            statuses = [(await post(http, server, {"name": f"n{i}"}))[0] for i in range(4)]
            assert statuses == [201, 201, 201, 429]
            _, _, resp = await post(http, server, {"name": "late"})
            assert float(resp.headers["Retry-After"]) == pytest.approx(0.75)
            clock.advance(0.75)
            statuses = [(await post(http, server, {"name": f"m{i}"}))[0] for i in range(4)]
            assert statuses == [201, 201, 201, 429]

    async def test_a_sliding_window_counts_the_last_window(
        self, http: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        async with FakeKirimServer(
            token="tok_test", rate=2, limiter="sliding-window", window=1.0, clock=clock
        ) as server:
            assert (await post(http, server, {"name": "a"}))[0] == 201
            clock.advance(0.5)
            assert (await post(http, server, {"name": "b"}))[0] == 201
            clock.advance(0.1)
            status, _, resp = await post(http, server, {"name": "c"})
            assert status == 429
            assert float(resp.headers["Retry-After"]) == pytest.approx(0.4)
            clock.advance(0.4)
            assert (await post(http, server, {"name": "c"}))[0] == 201

    async def test_github_hints_reset_at_a_unix_second(
        self, http: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        async with FakeKirimServer(
            token="tok_test", rate=5, burst=5, hints="github", clock=clock
        ) as server:
            _, _, resp = await post(http, server, {"name": "a"})
        headers = resp.headers
        assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("5", "4")
        assert headers["x-ratelimit-used"] == "1"
        reset = int(headers["x-ratelimit-reset"])
        assert time.time() <= reset <= time.time() + 2
        assert "X-RateLimit-Reset-After" not in headers

    async def test_discord_hints_give_the_reset_both_ways(
        self, http: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        async with FakeKirimServer(
            token="tok_test", rate=4, burst=4, hints="discord", clock=clock
        ) as server:
            _, _, resp = await post(http, server, {"name": "a"})
        assert float(resp.headers["X-RateLimit-Reset-After"]) == pytest.approx(0.25)
        assert float(resp.headers["X-RateLimit-Reset"]) == pytest.approx(time.time() + 0.25, abs=1)

    async def test_ietf_hints_are_the_drafts_structured_fields(
        self, http: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        async with FakeKirimServer(
            token="tok_test", rate=10, limiter="fixed-window", window=60, hints="ietf", clock=clock
        ) as server:
            _, _, resp = await post(http, server, {"name": "a"})
        assert resp.headers["RateLimit-Policy"] == '"default";q=600;w=60'
        assert re.fullmatch(r'"default";r=599;t=\d+', resp.headers["RateLimit"])
        assert "X-RateLimit-Limit" not in resp.headers

    async def test_another_callers_429_comes_whatever_the_rate(
        self, http: aiohttp.ClientSession
    ) -> None:
        async with FakeKirimServer(token="tok_test") as server:
            server.script(Fault.RATE_LIMITED)
            status, answer, resp = await post(http, server, {"name": "a"})
            assert (status, answer["error"]["code"]) == (429, "rate_limit_exceeded")
            assert resp.headers["Retry-After"] == "0.100"
            assert server.labels == []

    async def test_faults_for_ends_the_random_faults_on_the_server_s_clock(
        self, http: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        # Other callers' 429s for the first 20 s of a job, then none: what a client's
        # recovery is measured against.
        faults = {Fault.RATE_LIMITED: 1.0}
        async with FakeKirimServer(
            token="tok_test", faults=faults, faults_for=20, clock=clock
        ) as server:
            statuses = [(await post(http, server, {"name": "a"}))[0]]
            clock.advance(19.9)
            statuses.append((await post(http, server, {"name": "b"}))[0])
            clock.advance(0.1)
            statuses.append((await post(http, server, {"name": "c"}))[0])
        assert statuses == [429, 429, 201]

    @pytest.mark.parametrize(("spend", "after_fault"), [(True, 429), (False, 201)])
    async def test_faults_spend_quota_or_not(
        self, http: aiohttp.ClientSession, clock: FakeClock, spend: bool, after_fault: int
    ) -> None:
        async with FakeKirimServer(
            token="tok_test", rate=1, burst=1, faults_spend_quota=spend, clock=clock
        ) as server:
            server.script(Fault.SERVER_ERROR)
            assert (await post(http, server, {"name": "a"}))[0] == 500
            assert (await post(http, server, {"name": "a"}))[0] == after_fault

    def test_the_style_options_are_checked(self) -> None:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"rate": 1, "limiter": "leaky"}, "limiter"),
            ({"rate": 1, "window": 0}, "window"),
            ({"faults_for": 0}, "faults_for"),
            ({"hints": "x-rate"}, "hints"),
            ({"faults_spend_quota": "no"}, "faults_spend_quota"),
        ]
        for options, field in cases:
            with pytest.raises(InvalidParameterError) as caught:
                FakeKirimServer(**options)
            assert caught.value.field == field


class TestOptions:
    """Each option is checked by its attrs validator, when built and when set later."""

    @pytest.mark.parametrize(
        ("options", "field", "rule"),
        [
            ({"rate": 0}, "rate", "must be a finite number > 0"),
            ({"rate": float("nan")}, "rate", "must be a finite number > 0"),
            ({"rate": 5, "burst": 0}, "burst", "must be a whole number >= 1"),  # was: ceil(rate)
            ({"burst": 5}, "burst", "applies only with a rate"),  # was: ignored
            ({"latency": -1}, "latency", "must be a finite number >= 0"),
            ({"answer_delay": float("inf")}, "answer_delay", "must be a finite number >= 0"),
            ({"port": 70000}, "port", "must be 0-65535"),
            ({"token": "tok en"}, "token", "must not contain whitespace"),  # no client could
            ({"token": 123}, "token", "must be a non-empty string"),  # was: taken as is
            ({"retry_after": "minutes"}, "retry_after", "must be one of seconds, integer"),
            ({"success_status": 204}, "success_status", "must be one of 201, 200"),
            ({"success_status": 201.0}, "success_status", "must be one of 201, 200"),
            ({"success_status": "201"}, "success_status", "must be one of 201, 200"),
            ({"validation_status": 409}, "validation_status", "must be one of 400, 422"),
            ({"extra_fields": 1}, "extra_fields", "must be True or False"),
            # Was: taken as truthy, so "no" left the headers on.
            ({"rate_limit_headers": "no"}, "rate_limit_headers", "must be True or False"),
            ({"teams": ()}, "teams", "must be a non-empty sequence"),
            ({"teams": "team_a"}, "teams", "must be a non-empty sequence"),  # was: 6 teams
            ({"teams": ["team_a", ""]}, "teams", "must be a string of 1-64 characters"),
            ({"faults": {"bogus": 0.1}}, "faults", "keys must be one of 500, 502"),
            ({"faults": {Fault.SERVER_ERROR: 1.5}}, "faults", "probabilities 0-1"),
            ({"faults": {Fault.SERVER_ERROR: 0.6, Fault.UNAVAILABLE: 0.6}}, "faults", "at most 1"),
        ],
    )
    def test_rejects_bad_options(self, options: dict[str, Any], field: str, rule: str) -> None:
        with pytest.raises(InvalidParameterError) as info:
            FakeKirimServer(**options)
        assert info.value.field == field
        assert rule in info.value.rule
        assert isinstance(info.value, ValueError)  # what callers caught before

    def test_fault_kinds_may_be_given_by_value(self) -> None:
        server = FakeKirimServer(faults={"500": 0.25})
        assert server.faults == {Fault.SERVER_ERROR: 0.25}  # was: kept as "500", never drawn

    def test_knobs_are_checked_when_set_later(self) -> None:
        server = FakeKirimServer()
        server.latency = 0.5
        with pytest.raises(InvalidParameterError, match="latency: must be a finite number >= 0"):
            server.latency = -1
        with pytest.raises(InvalidParameterError, match="retry_after: must be one of"):
            server.retry_after = "minutes"  # type: ignore[assignment]
        with pytest.raises(InvalidParameterError, match="rate_limit_headers: must be True or"):
            server.rate_limit_headers = "no"  # type: ignore[assignment]
        server.validation_status = 422
        with pytest.raises(InvalidParameterError, match="validation_status: must be one of"):
            server.validation_status = 404  # type: ignore[assignment]
        with pytest.raises(InvalidParameterError, match="token: must not contain control"):
            server.token = "tok\r\nX-Evil: 1"
        assert server.latency == 0.5
        assert server.retry_after == "seconds"
        assert server.rate_limit_headers is True
        assert server.validation_status == 422

    def test_options_read_at_build_time_cannot_change(self) -> None:
        server = FakeKirimServer(rate=5)
        with pytest.raises(attrs.exceptions.FrozenAttributeError):
            server.rate = 50  # the bucket would go on at 5/s
        with pytest.raises(attrs.exceptions.FrozenAttributeError):
            server.faults = {Fault.SERVER_ERROR: 1.0}

    def test_token_is_random_when_left_out_and_never_in_repr(self) -> None:
        first, second = FakeKirimServer(), FakeKirimServer(token=None)
        assert first.token.startswith("kirim_test_")
        assert first.token != second.token
        assert first.token not in repr(first)
        assert repr(first) == "<FakeKirimServer not started>"


class TestFaults:
    """Faults misbehave as named, by script or by probability."""

    async def test_500_has_json_error_and_stores_nothing(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        server.script(Fault.SERVER_ERROR)
        status, answer, _ = await post(http, server, {"name": "bug"})
        assert status == 500
        assert answer["error"]["type"] == "api_error"
        assert answer["error"]["request_id"].startswith("req_")
        assert server.labels == []

    async def test_502_is_html(self, server: FakeKirimServer, http: aiohttp.ClientSession) -> None:
        server.script(Fault.BAD_GATEWAY)
        status, answer, resp = await post(http, server, {"name": "bug"})
        assert status == 502
        assert resp.content_type == "text/html"
        assert answer.startswith(b"<html>")
        assert server.labels == []

    async def test_503_is_empty(self, server: FakeKirimServer, http: aiohttp.ClientSession) -> None:
        server.script(Fault.UNAVAILABLE)
        status, answer, _ = await post(http, server, {"name": "bug"})
        assert (status, answer) == (503, b"")
        assert server.labels == []

    @pytest.mark.parametrize(
        ("fault", "stored"), [(Fault.STORE_THEN_DROP, ["bug"]), (Fault.DROP, [])]
    )
    async def test_drop_with_or_without_storing(
        self, server: FakeKirimServer, http: aiohttp.ClientSession, fault: Fault, stored: list[str]
    ) -> None:
        server.script(fault)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(http, server, {"name": "bug"})
        assert [label["name"] for label in server.labels] == stored
        assert (server.stats.dropped, server.stats.faults[fault]) == (1, 1)
        assert sum(server.stats.by_status.values()) == 0

    async def test_store_then_truncate(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        server.script(Fault.STORE_THEN_TRUNCATE)
        with pytest.raises(aiohttp.ClientPayloadError):
            await post(http, server, {"name": "bug"})
        assert [label["name"] for label in server.labels] == ["bug"]
        assert server.stats.truncated == 1

    async def test_store_then_malform_answers_the_vendor_example(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        server.script(Fault.STORE_THEN_MALFORM, Fault.STORE_THEN_MALFORM)
        status, answer, _ = await post(http, server, {"name": "bug", "color": "red"})
        stored = server.labels[0]
        assert status == 201
        assert answer == {"data": {"id": stored["id"], "object": "label", "color": "red"}}
        assert stored["name"] == "bug"
        # An error answer is not the fault's to change.
        status, answer, _ = await post(http, server, {"name": "bug"})
        assert (status, answer["error"]["code"]) == (400, "invalid_field_value")
        assert server.stats.faults[Fault.STORE_THEN_MALFORM] == 2

    async def test_store_then_delay_stores_before_answering(
        self, http: aiohttp.ClientSession
    ) -> None:
        async with FakeKirimServer(token="tok_test", answer_delay=60) as server:
            server.script(Fault.STORE_THEN_DELAY)
            with pytest.raises(asyncio.TimeoutError):
                await post_with_timeout(http, server, 0.2)
            assert [label["name"] for label in server.labels] == ["bug"]
            # Closing ends the pending answer instead of waiting out the delay.
            await asyncio.wait_for(server.close(), timeout=10)

    async def test_latency_then_normal_answer(self, http: aiohttp.ClientSession) -> None:
        async with FakeKirimServer(token="tok_test", fault_latency=0.01) as server:
            server.script(Fault.LATENCY)
            status, _, _ = await post(http, server, {"name": "bug"})
        assert status == 201
        assert server.stats.faults[Fault.LATENCY] == 1

    async def test_script_runs_in_order_then_stops(
        self, server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        server.script(Fault.UNAVAILABLE, None, Fault.SERVER_ERROR)
        statuses = [(await post(http, server, {"name": f"n{i}"}))[0] for i in range(4)]
        assert statuses == [503, 201, 500, 201]

    async def test_probabilities_are_seeded(self, http: aiohttp.ClientSession) -> None:
        async def run() -> list[int]:
            faults = {Fault.SERVER_ERROR: 0.3, Fault.UNAVAILABLE: 0.2}
            async with FakeKirimServer(token="tok_test", faults=faults, seed=7) as server:
                return [(await post(http, server, {"name": f"n{i}"}))[0] for i in range(60)]

        first, second = await run(), await run()
        assert first == second
        assert {500, 503, 201} == set(first)


async def post_with_timeout(
    http: aiohttp.ClientSession, server: FakeKirimServer, seconds: float
) -> None:
    async with http.post(
        f"{server.url}/labels",
        json={"name": "bug"},
        headers=AUTH,
        timeout=aiohttp.ClientTimeout(total=seconds),
    ) as resp:
        await resp.read()


class TestIntrospection:
    """Counters tell tests what the server saw."""

    async def test_counts_requests_statuses_and_concurrency(
        self, http: aiohttp.ClientSession
    ) -> None:
        async with FakeKirimServer(token="tok_test", latency=0.05) as server:
            await asyncio.gather(*(post(http, server, {"name": f"n{i}"}) for i in range(8)))
            await post(http, server, {"name": "n0"})
        stats = server.stats
        assert stats.requests == 9
        assert stats.by_status == {201: 8, 400: 1}
        assert stats.max_in_flight == 8
        assert stats.in_flight == 0

    async def test_url_needs_a_started_server(self) -> None:
        server = FakeKirimServer()
        with pytest.raises(RuntimeError, match="not started"):
            _ = server.url
        async with server:
            assert server.url.startswith("http://127.0.0.1:")
            assert server.url.endswith("/v1")
            with pytest.raises(RuntimeError, match="already started"):
                await server.start()


class TestThreadAndFixture:
    """The server also runs on its own thread, and as a pytest fixture."""

    async def test_running_in_thread(self, http: aiohttp.ClientSession) -> None:
        with FakeKirimServer(token="tok_test").running_in_thread() as server:
            status, _, _ = await post(http, server, {"name": "bug"})
            assert status == 201
            assert len(server.labels) == 1

    async def test_fixture(
        self, kirim_server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        status, _, _ = await post(
            http,
            kirim_server,
            {"name": "bug"},
            headers={"Authorization": f"Bearer {kirim_server.token}"},
        )
        assert status == 201

    @pytest.mark.kirim_server(teams=["a", "b"], token="tok_test")
    async def test_fixture_marker_configures_server(
        self, kirim_server: FakeKirimServer, http: aiohttp.ClientSession
    ) -> None:
        assert kirim_server.teams == ("a", "b")
        status, _, _ = await post(http, kirim_server, {"name": "bug"})
        assert status == 400


def test_standalone_module_serves_until_sigint() -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kirim_async.testing",
            "--port",
            "0",
            "--token",
            "tok_test",
            "--rate",
            "5",
            "--fault",
            "503=0.0",
            "--success-status",
            "200",
            "--validation-status",
            "422",
            "--extra-fields",
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"(http://\S+)", first)
        assert url, first
        assert proc.stdout.readline().strip() == "token: tok_test"

        async def create() -> list[tuple[int, Any]]:
            answers = []
            async with aiohttp.ClientSession() as http:
                for _ in range(2):
                    async with http.post(
                        f"{url.group(1)}/labels", json={"name": "bug"}, headers=AUTH
                    ) as resp:
                        answers.append((resp.status, await resp.json()))
            return answers

        (created, body), (duplicate, _) = run_on_its_own_loop(create())
        assert (created, duplicate) == (200, 422)
        assert "usage_count" in body["data"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_standalone_module_says_when_its_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "kirim_async.testing", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert f"error: cannot listen on 127.0.0.1 port {port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_standalone_module_rejects_bad_fault() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kirim_async.testing", "--fault", "boom=1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "KIND=PROBABILITY" in result.stderr


def test_standalone_module_checks_faults_for() -> None:
    # The flag reaches the server's option, and its rule: a bad value exits 2, named.
    result = subprocess.run(
        [sys.executable, "-m", "kirim_async.testing", "--faults-for", "0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "faults_for" in result.stderr
