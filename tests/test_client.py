from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import logging
import pickle
import re
import time
import traceback
import warnings
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

import aiohttp
import attrs
import pytest

from kirim_async import (
    APIStatusError,
    AuthenticationError,
    CreateLabel,
    DuplicateLabelError,
    Hooks,
    InvalidParameterError,
    InvalidRequestError,
    KirimClient,
    KirimError,
    Label,
    LabelColor,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    ProxyError,
    RateLimitError,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    ServerError,
)
from kirim_async.testing import FakeKirimServer, Fault

from . import conftest
from .conftest import (
    Answer,
    RecordingProxy,
    ScriptedServer,
    SleepRecorder,
    closed_port,
    label_body,
    run_on_its_own_loop,
)

SECRET = "sk_live_SECRET_TOKEN_7f3a"


def client_for(server: Any, **options: Any) -> KirimClient:
    """conftest's client_for, with this module's secret for servers that have no token."""
    return conftest.client_for(server, token=SECRET, **options)


_WHITESPACE_RULE = "must not contain whitespace or control characters"


async def _async_clock() -> float:
    """A clock written as a coroutine function, which no clock may be."""
    return 0.0


class TestConstruction:
    """The token and base URL come from arguments, then the environment, then defaults."""

    def test_token_and_base_url_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KIRIM_API_TOKEN", "tok_env")
        monkeypatch.setenv("KIRIM_BASE_URL", "http://127.0.0.1:9/v1/")
        client = KirimClient()
        assert client.base_url == "http://127.0.0.1:9/v1"
        assert client._config.token == "tok_env"

    def test_a_bad_base_url_from_the_environment_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("KIRIM_BASE_URL", "https://api.kirim.chat/v1\r")
        with pytest.raises(InvalidParameterError) as info:
            KirimClient("tok")
        assert info.value.field == "KIRIM_BASE_URL"
        assert str(info.value).startswith("KIRIM_BASE_URL: must not contain whitespace")

    def test_arguments_win_over_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KIRIM_API_TOKEN", "tok_env")
        monkeypatch.setenv("KIRIM_BASE_URL", "http://127.0.0.1:9/v1")
        client = KirimClient("tok_arg", base_url="https://example.test/v2")
        assert client.base_url == "https://example.test/v2"
        assert client._config.token == "tok_arg"

    def test_default_base_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("KIRIM_BASE_URL", raising=False)
        assert KirimClient("tok").base_url == "https://api.kirim.chat/v1"

    def test_missing_token_is_a_clear_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("KIRIM_API_TOKEN", raising=False)
        with pytest.raises(InvalidParameterError, match="KIRIM_API_TOKEN") as info:
            KirimClient()
        assert info.value.field == "token"
        assert "token=" in str(info.value)

    @pytest.mark.parametrize("suffix", ["\r\nX-Evil: 1", "\n", "\x00", "\x7f"])
    def test_token_with_control_characters_is_rejected(self, suffix: str) -> None:
        with pytest.raises(InvalidParameterError, match="control characters") as info:
            KirimClient(SECRET + suffix)
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value.value)

    @pytest.mark.parametrize("token", [f" {SECRET}", f"{SECRET} ", "tok en", f"{SECRET}\u00a0"])
    def test_token_with_whitespace_is_rejected(self, token: str) -> None:
        # Before: sent as is, and every request was answered 401 by the server, about a
        # token that looks right when printed.
        with pytest.raises(InvalidParameterError, match="token: must not contain whitespace"):
            KirimClient(token)

    @pytest.mark.parametrize(
        ("url", "rule"),
        [
            ("http://api.kirim.chat/v1", "must use https"),
            ("http://10.0.0.5/v1", "must use https"),
            ("ftp://x/v1", "must be an absolute http(s) URL"),
            ("not a url", "must be an absolute http(s) URL"),
            ("https://user:pw@api.kirim.chat/v1", "must not carry credentials"),
            ("https://[::1/v1", "must be an absolute http(s) URL"),
            ("https://api.kirim.chat:99999/v1", "must be an absolute http(s) URL"),
            ("https://api.kirim.chat:port/v1", "must be an absolute http(s) URL"),
            # Whitespace was sent as is: ".../v1 /labels" came back as a puzzling 404.
            ("https://api.kirim.chat/v1 ", _WHITESPACE_RULE),
            (" https://api.kirim.chat/v1", _WHITESPACE_RULE),
            ("https://api.kirim.chat/v1\r", _WHITESPACE_RULE),  # a .env with Windows line ends
            ("https://api.kirim.chat/v 1", _WHITESPACE_RULE),
        ],
    )
    def test_refuses_unsafe_base_urls(self, url: str, rule: str) -> None:
        with pytest.raises(InvalidParameterError) as info:
            KirimClient("tok", base_url=url)
        assert info.value.field == "base_url"
        assert info.value.rule.startswith(rule)

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://user:s3cret@api.kirim.chat:8443/v1", "https://***@api.kirim.chat:8443/v1"),
            ("ftp://user:s3cret@api.kirim.chat/v1", "ftp://***@api.kirim.chat/v1"),  # any rule
        ],
    )
    def test_a_base_url_with_credentials_is_refused_without_echoing_them(
        self, url: str, shown: str
    ) -> None:
        with pytest.raises(InvalidParameterError) as info:
            KirimClient("tok", base_url=url)
        assert "s3cret" not in str(info.value)
        assert "s3cret" not in repr(info.value.value)
        assert f"got '{shown}'" in str(info.value)

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8080/v1", "http://localhost/v1", "http://[::1]:80/v1"]
    )
    def test_plain_http_is_fine_on_loopback(self, url: str) -> None:
        assert KirimClient("tok", base_url=url).base_url == url

    def test_plain_http_elsewhere_needs_opt_in(self) -> None:
        client = KirimClient("tok", base_url="http://kirim.internal/v1", allow_insecure_http=True)
        assert client.base_url == "http://kirim.internal/v1"

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"timeout": 0}, "timeout"),
            ({"timeout": -1}, "timeout"),
            ({"max_retries": -1}, "max_retries"),
            ({"max_retries": 1.5}, "max_retries"),
            ({"deadline": 0}, "deadline"),
            ({"team_id": ""}, "team_id"),
            ({"max_retry_after": float("nan")}, "max_retry_after"),
            ({"connection_limit": 0}, "connection_limit"),  # aiohttp: 0 is no limit
            ({"connection_limit": -1}, "connection_limit"),
            ({"connection_limit": "5"}, "connection_limit"),
            ({"max_response_bytes": -1}, "max_response_bytes"),
            ({"hooks": {"on_request": print}}, "hooks"),  # before: a bare AttributeError
            ({"sleep": 0.5}, "sleep"),  # before: a TypeError at the first retry
            ({"sleep": time.sleep}, "sleep"),  # before: blocked the loop, then a TypeError
            ({"clock": None}, "clock"),
            ({"clock": asyncio.sleep}, "clock"),  # before: a TypeError and a warning
            ({"wall_clock": "now"}, "wall_clock"),
            ({"wall_clock": _async_clock}, "wall_clock"),
            # Before: any truthy value, "no" and "false" among them, turned plain http ON.
            ({"allow_insecure_http": "no"}, "allow_insecure_http"),
            ({"allow_insecure_http": "false"}, "allow_insecure_http"),
            ({"allow_insecure_http": 1}, "allow_insecure_http"),
            # Before: OverflowError; an int past float's range is no finite number.
            ({"timeout": 10**400}, "timeout"),
            ({"max_retry_after": 10**400}, "max_retry_after"),
            ({"deadline": 10**400}, "deadline"),
            ({"session": "x"}, "session"),  # before: AttributeError
            ({"session": 5}, "session"),
            ({"trace_configs": "x"}, "trace_configs"),  # before: failed at the first call
            ({"trace_configs": [object()]}, "trace_configs"),
        ],
    )
    def test_rejects_bad_options(self, options: dict[str, Any], field: str) -> None:
        with pytest.raises(InvalidParameterError) as info:
            KirimClient("tok", **options)
        assert info.value.field == field


def test_time_sleep_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidParameterError) as info:
        KirimClient("tok", sleep=time.sleep)  # type: ignore[arg-type]
    assert info.value.rule.startswith("must return an awaitable, like asyncio.sleep")
    assert "time.sleep blocks the event loop" in info.value.rule


async def test_a_plain_function_that_returns_an_awaitable_is_a_sleep(
    scripted: ScriptedServer,
) -> None:
    # Only built-ins are refused: a lambda handing back a coroutine is a fine sleep.
    waits: list[float] = []

    def record_then_wait(seconds: float) -> Awaitable[None]:
        waits.append(seconds)
        return asyncio.sleep(0)

    scripted.script(Answer(503, b""), Answer(201, label_body("bug")))
    async with client_for(scripted, sleep=record_then_wait) as client:
        label = await client.labels.create("bug")
    assert label.name == "bug"
    assert len(waits) == 1


@pytest.mark.parametrize("hook", ["on_request", "on_response", "on_retry"])
def test_hooks_must_be_callable(hook: str) -> None:
    # Before: the first request was sent, then the call failed with a TypeError.
    with pytest.raises(InvalidParameterError, match=f"{hook}: must be callable"):
        Hooks(**{hook: "log"})  # type: ignore[arg-type]


class _AsyncCallable:
    async def __call__(self, event: object) -> None:
        """An object whose calls are coroutines, like an async function."""


async def _async_hook(event: object) -> None:
    """A hook written as a coroutine function."""


@pytest.mark.parametrize("hook", ["on_request", "on_response", "on_retry"])
@pytest.mark.parametrize("async_hook", [_async_hook, _AsyncCallable()], ids=["function", "object"])
def test_hooks_must_not_be_async(hook: str, async_hook: Any) -> None:
    # Hooks are called inline and never awaited: an async one only made a coroutine
    # that never ran, with a RuntimeWarning at best.
    with pytest.raises(InvalidParameterError) as info:
        Hooks(**{hook: async_hook})
    assert info.value.field == hook
    assert info.value.rule.startswith("must not be async: hooks are called inline")


class TestLifecycle:
    """One session per client, closed by aclose; a caller's session is never closed."""

    async def test_async_with_closes(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            await client.labels.create("bug")
            session = client._transport._session
            assert session is not None
        assert client.is_closed
        assert session.closed

    async def test_reuses_one_session(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            await client.labels.create("a")
            first = client._transport._session
            await client.labels.create("b")
            assert client._transport._session is first

    async def test_aclose_is_idempotent_and_use_after_close_fails(
        self, server: FakeKirimServer
    ) -> None:
        client = client_for(server)
        await client.labels.create("bug")
        await client.aclose()
        await client.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await client.labels.create("again")

    def test_a_second_event_loop_gets_a_clear_error(self) -> None:
        # The usual slip: one client, a fresh asyncio.run() per call (a second loop here).
        with FakeKirimServer().running_in_thread() as server:
            client = client_for(server)
            first = asyncio.new_event_loop()
            try:
                first.run_until_complete(client.labels.create("a"))
                with pytest.raises(RuntimeError, match="belongs to the event loop it first sent"):
                    run_on_its_own_loop(client.labels.create("b"))
                first.run_until_complete(client.aclose())
            finally:
                first.close()
            assert [label["name"] for label in server.labels] == ["a"]

    async def test_callers_session_is_used_and_left_open(self, server: FakeKirimServer) -> None:
        async with aiohttp.ClientSession() as session:
            async with client_for(server, session=session) as client:
                await client.labels.create("bug")
            assert not session.closed
            assert server.stats.requests == 1

    async def test_callers_session_gets_the_clients_headers(self, scripted: ScriptedServer) -> None:
        own = {"Authorization": "Bearer someone-else", "X-Caller": "kept"}
        async with (
            aiohttp.ClientSession(headers=own) as session,
            client_for(scripted, session=session) as client,
        ):
            await client.labels.create("bug")
        _, headers, _ = scripted.requests[0]
        assert headers["Authorization"] == f"Bearer {SECRET}"
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"].startswith("kirim-async/")
        assert headers["X-Caller"] == "kept"

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"trace_configs": [aiohttp.TraceConfig()]}, "trace_configs"),
            ({"connection_limit": 5}, "connection_limit"),
        ],
    )
    async def test_options_for_the_clients_own_session_refused_with_a_callers(
        self, options: dict[str, Any], field: str
    ) -> None:
        # Before: quietly ignored, so the caller's tracing or pool size never applied.
        async with aiohttp.ClientSession() as session:
            with pytest.raises(InvalidParameterError, match="configure your session") as info:
                KirimClient("tok", session=session, **options)
            assert info.value.field == field
            KirimClient("tok", session=session, trace_configs=[])  # no tracing asked for

    async def test_a_callers_session_that_cannot_send_is_refused(self) -> None:
        # Before: every request failed with aiohttp's bare RuntimeError or ValueError.
        async with aiohttp.ClientSession() as session:
            pass
        with pytest.raises(InvalidParameterError, match="session: is closed"):
            KirimClient("tok", session=session)
        with warnings.catch_warnings():  # aiohttp 3.14 deprecates auth=, earlier ones not
            warnings.simplefilter("ignore", DeprecationWarning)
            authenticating = aiohttp.ClientSession(auth=aiohttp.BasicAuth("user", "password"))
        async with authenticating:
            with pytest.raises(InvalidParameterError, match="has a default auth") as info:
                KirimClient("tok", session=authenticating)
        assert "password" not in str(info.value)

    def test_transport_repr_has_no_token(self) -> None:
        client = KirimClient(SECRET)
        assert SECRET not in repr(client._transport)

    async def test_callers_session_raising_for_status_still_gives_typed_errors(
        self, server: FakeKirimServer
    ) -> None:
        # Before: aiohttp raised ClientResponseError inside the transport, which made
        # every 4xx and 5xx a retryable "connection failed" APIConnectionError.
        server.script(Fault.SERVER_ERROR)
        async with (
            aiohttp.ClientSession(raise_for_status=True) as session,
            client_for(server, session=session, sleep=SleepRecorder()) as client,
        ):
            label = await client.labels.create("bug")
            assert label.name == "bug"  # the 500 was retried as a ServerError
            with pytest.raises(DuplicateLabelError) as info:
                await client.labels.create("bug")
        assert info.value.attempts == 1
        assert server.stats.requests == 3

    async def test_never_used_client_closes_cleanly(self) -> None:
        async with KirimClient("tok", base_url="http://127.0.0.1:9/v1"):
            pass

    async def test_no_unclosed_session_warning(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            await client.labels.create("bug")
        del client
        gc.collect()  # filterwarnings=error turns a ResourceWarning here into a failure


class TestCreate:
    """labels.create sends the request and returns the Label."""

    async def test_by_name(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            label = await client.labels.create("bug", color="red")
        assert isinstance(label, Label)
        assert (label.name, label.color, label.team_id) == ("bug", LabelColor.RED, "team_default")
        assert label.id == server.labels[0]["id"]
        assert label.request_id is not None
        assert label.request_id.startswith("req_")

    async def test_with_a_create_label(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            label = await client.labels.create(CreateLabel(name="bug", color=LabelColor.SKY))
        assert label.color is LabelColor.SKY

    async def test_create_label_and_fields_together_is_misuse(
        self, server: FakeKirimServer
    ) -> None:
        async with client_for(server) as client:
            with pytest.raises(TypeError, match="not both"):
                await client.labels.create(CreateLabel(name="bug"), color="red")

    async def test_invalid_input_fails_before_sending(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            with pytest.raises(InvalidParameterError, match="name"):
                await client.labels.create("x" * 51)
            with pytest.raises(InvalidParameterError, match="color"):
                await client.labels.create("ok", color="purple")
        assert server.stats.requests == 0

    async def test_client_team_id_applies_when_call_gives_none(self) -> None:
        async with (
            FakeKirimServer(teams=["a", "b"]) as server,
            client_for(server, team_id="b") as client,
        ):
            default = await client.labels.create("one")
            explicit = await client.labels.create("two", team_id="a")
            in_request = await client.labels.create(CreateLabel(name="three", team_id="a"))
        assert (default.team_id, explicit.team_id, in_request.team_id) == ("b", "a", "a")

    async def test_create_with_response(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            response = await client.labels.create_with_response("bug")
        assert response.status == 201
        assert response.attempts == 1
        assert response.request_id == response.label.request_id
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.elapsed >= 0

    async def test_sends_the_documented_request(self, scripted: ScriptedServer) -> None:
        async with client_for(scripted) as client:
            await client.labels.create("bug", team_id="t1")
        path, headers, body = scripted.requests[0]
        assert path == "/v1/labels"
        assert headers["Authorization"] == f"Bearer {SECRET}"
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"name": "bug", "color": "gray", "team_id": "t1"}
        assert re.fullmatch(
            r"kirim-async/\d+\.\d+\.\d+\S* aiohttp/\S+ python/\d+\.\d+\.\d+\S*",
            headers["User-Agent"],
        )

    async def test_200_is_success_too(self, scripted: ScriptedServer) -> None:
        scripted.script(Answer(200, label_body("bug")))
        async with client_for(scripted) as client:
            assert (await client.labels.create("bug")).name == "bug"

    async def test_unknown_color_and_fields_in_answer(self, scripted: ScriptedServer) -> None:
        body = label_body()
        body["data"]["color"] = "ultraviolet"  # type: ignore[index]
        body["data"]["archived"] = False  # type: ignore[index]
        scripted.script(Answer(201, body))
        async with client_for(scripted) as client:
            assert (await client.labels.create("bug")).color == "ultraviolet"


class TestErrors:
    """Error answers become the typed error the status names, whatever the body."""

    @pytest.mark.parametrize(
        ("answer", "cls"),
        [
            (
                Answer(400, {"error": {"code": "invalid_type", "param": "name"}}),
                InvalidRequestError,
            ),
            (Answer(422, {"error": {"code": "x"}}), InvalidRequestError),
            (Answer(401, {"error": {"code": "invalid_api_key"}}), AuthenticationError),
            (Answer(403, b"forbidden"), PermissionDeniedError),
            (Answer(404, b""), NotFoundError),
            (Answer(409, b"conflict"), APIStatusError),
            (Answer(501, b"<html>not implemented</html>"), ServerError),
        ],
    )
    async def test_status_picks_class_and_is_not_retried(
        self, scripted: ScriptedServer, answer: Answer, cls: type[APIStatusError]
    ) -> None:
        scripted.script(answer)
        async with client_for(scripted) as client:
            with pytest.raises(APIStatusError) as info:
                await client.labels.create("bug")
        assert type(info.value) is cls
        assert info.value.status == answer.status
        assert len(scripted.requests) == 1

    async def test_duplicate_from_the_fake_server(self, server: FakeKirimServer) -> None:
        async with client_for(server) as client:
            await client.labels.create("bug")
            with pytest.raises(DuplicateLabelError) as info:
                await client.labels.create("bug")
        err = info.value
        assert (err.status, err.code, err.param) == (400, "invalid_field_value", "name")
        assert err.after_ambiguous_attempt is False
        assert err.request_id is not None
        assert err.request_id.startswith("req_")
        assert isinstance(err, InvalidRequestError)

    async def test_every_answer_variant_of_the_fake_server(self) -> None:
        async with (
            FakeKirimServer(success_status=200, validation_status=422, extra_fields=True) as fake,
            client_for(fake) as client,
        ):
            response = await client.labels.create_with_response("bug", color="red")
            with pytest.raises(DuplicateLabelError) as info:
                await client.labels.create("bug")
        assert (response.status, response.label.name, response.label.color) == (200, "bug", "red")
        assert response.request_id is not None
        assert (info.value.status, info.value.param) == (422, "name")

    async def test_the_vendor_example_as_a_success_is_malformed(self) -> None:
        async with FakeKirimServer() as fake, client_for(fake) as client:
            fake.script(Fault.STORE_THEN_MALFORM)
            with pytest.raises(MalformedResponseError) as info:
                await client.labels.create("bug")
        assert (info.value.status, info.value.attempts) == (201, 1)  # never retried
        assert "name" in str(info.value)  # what is missing
        assert [label["name"] for label in fake.labels] == ["bug"]

    async def test_wrong_token(self, server: FakeKirimServer) -> None:
        async with KirimClient("wrong", base_url=server.url) as client:
            with pytest.raises(AuthenticationError):
                await client.labels.create("bug")

    @pytest.mark.parametrize(
        "answer",
        [Answer(201, b"<html>"), Answer(201, b""), Answer(201, {"data": {"id": 1}})],
    )
    async def test_malformed_success(self, scripted: ScriptedServer, answer: Answer) -> None:
        scripted.script(answer)
        async with client_for(scripted) as client:
            with pytest.raises(MalformedResponseError):
                await client.labels.create("bug")
        assert len(scripted.requests) == 1  # the label may exist: never retried

    async def test_errors_pickle(self, scripted: ScriptedServer) -> None:
        scripted.script(Answer(429, {"error": {"code": "rl"}}, {"Retry-After": "500"}))
        async with client_for(scripted) as client:
            with pytest.raises(RateLimitError) as info:
                await client.labels.create("bug")
        copy = pickle.loads(pickle.dumps(info.value))
        assert (copy.status, copy.code, copy.named_wait, str(copy)) == (
            429,
            "rl",
            500.0,
            str(info.value),
        )


class TestSecurity:
    """The token never leaks; redirects are not followed; huge bodies are not read."""

    async def test_token_appears_nowhere(
        self, scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        scripted.script(
            Answer(500, b""),
            Answer(429, {"error": {"code": "rl"}}, {"Retry-After": "0"}),
            Answer(401, {"error": {"code": "bad"}}),
        )
        seen: list[str] = []
        recorder = SleepRecorder()
        hooks = Hooks(
            on_request=lambda e: seen.append(repr(e)),
            on_response=lambda e: seen.append(repr(e)),
            on_retry=lambda e: seen.append(repr(e)),
        )
        client = client_for(scripted, sleep=recorder, hooks=hooks)
        seen += [repr(client), str(client), repr(client._config), repr(client._transport)]
        with pytest.raises(AuthenticationError) as info:
            await client.labels.create("bug")
        await client.aclose()
        err = info.value
        seen += [str(err), repr(err), repr(err.headers), repr(err.body), repr(err.__dict__)]
        seen += [record.getMessage() for record in caplog.records]
        seen += [repr(record.args) for record in caplog.records]
        assert len(scripted.requests) == 3
        assert any("retrying" in text for text in seen)
        assert not [text for text in seen if SECRET in text]

    async def test_redirect_is_not_followed(self, scripted: ScriptedServer) -> None:
        scripted.script(Answer(307, b"", {"Location": f"{scripted.url}/elsewhere"}))
        async with client_for(scripted) as client:
            with pytest.raises(APIStatusError) as info:
                await client.labels.create("bug")
        assert type(info.value) is APIStatusError
        assert info.value.status == 307
        assert [path for path, _, _ in scripted.requests] == ["/v1/labels"]

    @pytest.mark.parametrize("chunked", [False, True])
    async def test_oversized_body_is_refused_and_its_connection_given_back(
        self, scripted: ScriptedServer, chunked: bool
    ) -> None:
        # One connection in the pool: had the refused answer kept it, the next call
        # would wait for it until its timeout.
        scripted.script(Answer(201, b"x" * (2 << 20), chunked=chunked))
        async with client_for(scripted, connection_limit=1, timeout=5, max_retries=0) as client:
            with pytest.raises(MalformedResponseError, match="exceeds"):
                await client.labels.create("bug")
            await client.labels.create("next")
        assert [json.loads(body)["name"] for _, _, body in scripted.requests] == ["bug", "next"]

    async def test_body_cap_is_configurable(self, scripted: ScriptedServer) -> None:
        scripted.script(Answer(201, label_body()))
        async with client_for(scripted, max_response_bytes=100) as client:
            with pytest.raises(MalformedResponseError, match="100-byte"):
                await client.labels.create("bug")


PROXY_PASSWORD = "pr0xy_SECRET_9c1e"


def _everything_shown(error: BaseException) -> str:
    """What a user can see of an error: its str, repr and the whole printed traceback."""
    return "".join([str(error), repr(error), *traceback.format_exception(error)])


class TestProxy:
    """``proxy=`` sends every request through an HTTP proxy; its password never shows."""

    @pytest.mark.parametrize("own_session", [False, True])
    async def test_creates_through_the_proxy_with_its_credentials(
        self, server: FakeKirimServer, proxy: RecordingProxy, own_session: bool
    ) -> None:
        async with contextlib.AsyncExitStack() as stack:
            session = (
                await stack.enter_async_context(aiohttp.ClientSession()) if own_session else None
            )
            client = await stack.enter_async_context(
                client_for(
                    server,
                    proxy=proxy.credentialed_url("kirim", PROXY_PASSWORD),
                    session=session,
                )
            )
            label = await client.labels.create("through-the-proxy")
        assert [entry["name"] for entry in server.labels] == [label.name]
        [(method, target, headers)] = proxy.requests
        assert (method, target) == ("POST", f"{server.url}/labels")  # absolute form
        assert headers["Authorization"] == f"Bearer {server.token}"
        credentials = base64.b64encode(f"kirim:{PROXY_PASSWORD}".encode()).decode()
        assert headers["Proxy-Authorization"] == f"Basic {credentials}"

    async def _create_through_a_tunnel(
        self, proxy: RecordingProxy, sleeps: SleepRecorder
    ) -> ProxyError:
        client = KirimClient(
            "tok",
            base_url="https://api.kirim.example/v1",
            proxy=proxy.credentialed_url("kirim", PROXY_PASSWORD),
            max_retries=1,
            sleep=sleeps,
        )
        async with client:
            with pytest.raises(ProxyError) as info:
                await client.labels.create("bug")
        return info.value

    async def test_a_tunnel_refused_for_its_credentials_is_not_retried_nor_shown(
        self, proxy: RecordingProxy, sleeps: SleepRecorder
    ) -> None:
        error = await self._create_through_a_tunnel(proxy, sleeps)
        assert (error.proxy_status, error.is_refusal) == (407, True)
        assert not error.request_may_have_been_sent
        assert error.attempts == 1  # no retry can pass it
        assert sleeps.waits == []
        assert str(error) == (
            "the proxy refused to connect to https://api.kirim.example/v1/labels: "
            "407 Proxy Authentication Required "
            "(check the user and password in the proxy's URL)"
        )
        assert [(m, t) for m, t, _ in proxy.requests] == [("CONNECT", "api.kirim.example:443")]
        assert PROXY_PASSWORD not in _everything_shown(error)
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), copy.proxy_status, str(copy)) == (ProxyError, 407, str(error))
        assert not copy.request_may_have_been_sent

    async def test_a_tunnel_the_proxy_could_not_open_is_retried(
        self, proxy: RecordingProxy, sleeps: SleepRecorder
    ) -> None:
        proxy.connect_status = 502  # the proxy could not reach the API: it may pass
        error = await self._create_through_a_tunnel(proxy, sleeps)
        assert (error.proxy_status, error.is_refusal) == (502, False)
        assert error.attempts == 2
        assert len(sleeps.waits) == 1
        assert "the proxy refused to connect to https://api.kirim.example/v1/labels: 502" in (
            str(error)
        )
        assert "check the user" not in str(error)
        assert len(proxy.requests) == 2
        assert PROXY_PASSWORD not in _everything_shown(error)

    async def test_a_proxy_that_cannot_be_reached_is_named(self) -> None:
        unreachable = f"http://kirim:{PROXY_PASSWORD}@127.0.0.1:{closed_port()}"
        async with KirimClient("tok", proxy=unreachable, max_retries=0) as client:
            with pytest.raises(ProxyError) as info:
                await client.labels.create("bug")
        assert "could not connect to the proxy for https://api.kirim.chat/v1/labels" in str(
            info.value
        )
        assert (info.value.proxy_status, info.value.is_refusal) == (None, False)
        assert not info.value.request_may_have_been_sent
        assert PROXY_PASSWORD not in _everything_shown(info.value)

    @pytest.mark.parametrize(
        ("value", "rule"),
        [
            ("", "must be an absolute http(s) URL"),
            ("proxy.corp:3128", "must be an absolute http(s) URL"),
            (3128, "must be an absolute http(s) URL"),
            ("socks5://proxy.corp:1080", "must be an http:// or https:// proxy"),
            ("http://proxy.corp:3128/path", "with no path, query or fragment"),
            ("http://proxy.corp:3128?x=1", "with no path, query or fragment"),
            ("http://proxy.corp :3128", _WHITESPACE_RULE),
            ("http://proxy.corp:99999", "must be an absolute http(s) URL"),
        ],
    )
    def test_a_bad_proxy_is_refused_naming_the_rule(self, value: object, rule: str) -> None:
        with pytest.raises(InvalidParameterError) as info:
            KirimClient("tok", proxy=value)  # type: ignore[arg-type]
        assert info.value.field == "proxy"
        assert rule in info.value.rule

    def test_its_credentials_are_masked_in_errors_and_reprs(self) -> None:
        with pytest.raises(InvalidParameterError) as info:
            KirimClient("tok", proxy=f"http://kirim:{PROXY_PASSWORD}@proxy.corp:3128/x")
        assert "http://***@proxy.corp:3128/x" in str(info.value)
        client = KirimClient("tok", proxy=f"http://kirim:{PROXY_PASSWORD}@proxy.corp:3128")
        shown = [repr(client), repr(client._config), repr(client._transport)]
        assert "proxy='http://***@proxy.corp:3128'" in shown[0]
        assert not [text for text in shown if PROXY_PASSWORD in text]
        assert "proxy=" not in repr(KirimClient("tok"))


class TestObservability:
    """Hooks see every request, answer and retry; aiohttp trace configs pass through."""

    async def test_hooks(self, server: FakeKirimServer) -> None:
        events: list[object] = []
        hooks = Hooks(on_request=events.append, on_response=events.append, on_retry=events.append)
        server.script(Fault.UNAVAILABLE)
        async with client_for(server, hooks=hooks, sleep=SleepRecorder()) as client:
            await client.labels.create("bug")
        kinds = [type(e).__name__ for e in events]
        assert kinds == [
            "RequestEvent",
            "ResponseEvent",
            "RetryEvent",
            "RequestEvent",
            "ResponseEvent",
        ]
        first, answer, retry = events[0], events[1], events[2]
        assert isinstance(first, RequestEvent)
        assert (first.method, first.url, first.attempt) == ("POST", f"{server.url}/labels", 1)
        assert isinstance(answer, ResponseEvent)
        assert answer.status == 503
        assert isinstance(retry, RetryEvent)
        assert retry.attempt == 1
        assert isinstance(retry.error, ServerError)
        assert isinstance(events[4], ResponseEvent)
        assert events[4].status == 201

    async def test_trace_configs_pass_through(self, server: FakeKirimServer) -> None:
        started: list[str] = []

        async def on_start(_s: object, _ctx: SimpleNamespace, params: Any) -> None:
            started.append(str(params.url))

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(on_start)
        async with client_for(server, trace_configs=[trace]) as client:
            await client.labels.create("bug")
        assert started == [f"{server.url}/labels"]


def test_label_is_frozen_value() -> None:
    label = Label(
        id="lbl_1",
        object="label",
        name="n",
        color="red",
        team_id="t",
        created_at=attrs.NOTHING,  # type: ignore[arg-type]
        updated_at=attrs.NOTHING,  # type: ignore[arg-type]
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        label.name = "x"  # type: ignore[misc]


def test_kirim_error_is_base_of_all() -> None:
    import kirim_async

    for name in kirim_async.__all__:
        obj = getattr(kirim_async, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, KirimError), name
