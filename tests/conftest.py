"""Shared fixtures: fake servers and a raw aiohttp session to talk to them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from hypothesis import settings

from kirim_async import KirimClient
from kirim_async.testing import FakeClock, FakeKirimServer
from kirim_async.testing._threaded import serving_in_thread

from .redis_server import RedisServer

pytest_plugins = ["kirim_async.testing.pytest_plugin"]

# Property tests draw the same examples on every run, so that CI is deterministic: a
# random draw once found a new counterexample in one CI run of three (issue 33). Run
# `HYPOTHESIS_PROFILE=explore python -m pytest` to search afresh, with more examples.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

T = TypeVar("T")


def run_on_its_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run *coroutine* on a new event loop, as ``asyncio.run()`` does, for a sync test.

    It leaves the thread's current loop alone. ``asyncio.run()`` sets it to None on
    leaving, and pytest-asyncio before 1.4 then loses its own loop without closing it:
    a later test's garbage collection reports that loop's socket as unclosed.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture
async def server() -> AsyncIterator[FakeKirimServer]:
    """A FakeKirimServer on this test's event loop, every knob off."""
    async with FakeKirimServer(token="tok_test") as fake:
        yield fake


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own (skipped without one; a failure under CI)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session, for speaking to servers without the client."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def clock() -> FakeClock:
    """A clock for the code's own time hooks, so that no test really waits."""
    return FakeClock()


class Answer:
    """One scripted answer: status, headers, body, optionally streamed without a length."""

    def __init__(
        self,
        status: int = 201,
        body: bytes | Mapping[str, object] | None = None,
        headers: dict[str, str] | None = None,
        *,
        chunked: bool = False,
    ) -> None:
        self.status = status
        self.body = json.dumps(dict(body)).encode() if isinstance(body, Mapping) else (body or b"")
        self.headers = headers or {}
        self.chunked = chunked


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def label_body(name: str = "bug", request_id: str = "req_1") -> dict[str, object]:
    """A valid success body."""
    return {
        "data": {
            "id": "lbl_01HXYZABCDEFGHJKMNPQRSTVWX",
            "object": "label",
            "name": name,
            "color": "gray",
            "team_id": "team_1",
            "created_at": "2025-01-02T03:04:05Z",
            "updated_at": "2025-01-02T03:04:05Z",
        },
        "request_id": request_id,
    }


class ScriptedServer:
    """An aiohttp test server that answers from a script and records each request."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.url = ""

    def script(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        answer = self.answers.pop(0) if self.answers else Answer(201, label_body())
        if answer.chunked:
            response = web.StreamResponse(status=answer.status, headers=answer.headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(answer.body)
            await response.write_eof()
            return response
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    """A ScriptedServer on loopback; ``.url`` is the base URL to give a client."""
    fake = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    yield fake
    await runner.cleanup()


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
"""The proxy variables (read in either case) that tests clear to be hermetic."""


class RecordingProxy:
    """A forward HTTP proxy on loopback that records what reaches it.

    A request in absolute form (``POST http://host:port/v1/labels``) is forwarded and
    its answer relayed, unless *forward_status* is set: then it is answered with that
    status (as a proxy that wants credentials answers 407). A ``CONNECT`` (the tunnel an
    ``https`` URL needs) is answered with *connect_status* and no tunnel: tests have no
    TLS server to reach.
    """

    def __init__(self, connect_status: int = 407, forward_status: int | None = None) -> None:
        self.connect_status = connect_status
        self.forward_status = forward_status
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.url = ""
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def credentialed_url(self, user: str, password: str) -> str:
        """This proxy's URL with credentials in it."""
        return self.url.replace("http://", f"http://{user}:{password}@")

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.requests.append((request.method, request.raw_path, dict(request.headers)))
        if request.method == "CONNECT":
            return web.Response(status=self.connect_status)
        if self.forward_status is not None:
            return web.Response(status=self.forward_status)
        assert self._session is not None
        skipped = ("host", "content-length", "proxy-authorization")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skipped}
        async with self._session.request(
            request.method, request.raw_path, data=await request.read(), headers=headers
        ) as answer:
            relayed = {k: v for k, v in answer.headers.items() if k.lower() == "content-type"}
            return web.Response(status=answer.status, body=await answer.read(), headers=relayed)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._runner = web.ServerRunner(web.Server(self._handle), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[RecordingProxy]:
        """Serve from a background thread, for tests that run the CLI as a subprocess."""
        with serving_in_thread(self.start, self.close, name="RecordingProxy"):
            yield self


@pytest.fixture
async def proxy() -> AsyncIterator[RecordingProxy]:
    """A RecordingProxy on this test's event loop."""
    recording = RecordingProxy()
    await recording.start()
    yield recording
    await recording.close()


class SleepRecorder:
    """A sleep hook that records each wait and moves a FakeClock instead of waiting."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.waits: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)


@pytest.fixture
def sleeps(clock: FakeClock) -> SleepRecorder:
    """A sleep hook tied to the test's FakeClock."""
    return SleepRecorder(clock)


@pytest.fixture(scope="module")
def standalone_server() -> Iterator[str]:
    """``python -m kirim_async.testing`` in its own process; yields its base URL.

    Its memory (the stored labels) is then not the test's, which measures the client's.
    It runs untraced by coverage, which would slow it several times over: it only serves
    load here (``test_standalone_module_serves_until_sigint`` covers the module).
    """
    env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_CONFIG"}
    with subprocess.Popen(
        [sys.executable, "-m", "kirim_async.testing", "--port", "0", "--token", "tok"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        match = re.search(r"(http://\S+)", proc.stdout.readline())
        assert match, "the standalone server did not print its URL"
        try:
            yield match.group(1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def client_for(
    server: Any, sleeps: SleepRecorder | None = None, *, token: str = "tok", **options: Any
) -> KirimClient:
    """A client for *server*: a fake server's own token (else *token*), and *sleeps*'s
    sleep and clock when given, so that retries never really wait."""
    if sleeps is not None:
        options.setdefault("sleep", sleeps)
        if sleeps.clock is not None:
            options.setdefault("clock", sleeps.clock)
    return KirimClient(getattr(server, "token", token), base_url=server.url, **options)
