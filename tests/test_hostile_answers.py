"""Hostile answers: what a server (or something posing as one) may send back.

Each answer is written byte for byte by a raw asyncio server, so that nothing between the
test and the client tidies it up: bombs, oversized headers, deep nesting, cookies.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from kirim_async import (
    APIConnectionError,
    ClientClosedError,
    KirimClient,
    KirimError,
    MalformedResponseError,
    PoolTimeoutError,
    RateLimitError,
    ServerError,
    _json,
)

from .conftest import Answer, ScriptedServer, label_body

TOKEN = "kirim_live_0123456789abcdef0123456789abcdef"


class RawServer:
    """Answers each request on loopback with bytes a test chooses, and counts requests.

    ``answer(request_number)`` gives the bytes to write (None: hold the connection open
    until the server closes). The request is read up to the end of its body first.
    """

    def __init__(self, answer: Callable[[int], bytes | None]) -> None:
        self.answer = answer
        self.requests = 0
        self.url = ""
        self.received = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                async with self.received:
                    self.requests += 1
                    self.received.notify_all()
                data = self.answer(self.requests)
                if data is None:
                    await self._release.wait()
                    return
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def wait_for_requests(self, count: int) -> None:
        """Wait until *count* requests have come in (10 s at most)."""
        async with self.received:
            await asyncio.wait_for(self.received.wait_for(lambda: self.requests >= count), 10)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def close(self) -> None:
        self._release.set()
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def http_answer(
    status: int, body: bytes, headers: dict[str, str] | None = None, *, chunked: bool = False
) -> bytes:
    """An HTTP/1.1 answer as bytes; chunked, or with a Content-Length of the body as given."""
    lines = [f"HTTP/1.1 {status} Whatever"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        step = 16 * 1024
        payload = b"".join(
            f"{len(body[i : i + step]):x}\r\n".encode() + body[i : i + step] + b"\r\n"
            for i in range(0, len(body), step)
        )
        payload += b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def raw_server(answer: Callable[[int], bytes | None]) -> RawServer:
    server = RawServer(answer)
    await server.start()
    return server


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[Callable[[int], bytes | None]], Any]]:
    started: list[RawServer] = []

    async def start(answer: Callable[[int], bytes | None]) -> RawServer:
        server = await raw_server(answer)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


def gzipped(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


BOMB_SIZE = 256 * 1024 * 1024  # decoded; a few hundred KiB on the wire


def bomb(encoding: str) -> bytes:
    """*BOMB_SIZE* zero bytes inside a JSON string, compressed as *encoding*."""
    wbits = {"gzip": 31, "deflate": 15}[encoding]
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b"0" * (1024 * 1024)
    parts = [packer.compress(b'{"data": "')]
    parts += [packer.compress(block) for _ in range(BOMB_SIZE // len(block))]
    parts.append(packer.compress(b'"}') + packer.flush())
    return b"".join(parts)


_BOMBS = {encoding: bomb(encoding) for encoding in ("gzip", "deflate")}


class TestCompressionBomb:
    """The body cap holds on the decoded size: a bomb costs at most about the cap."""

    @pytest.mark.parametrize("encoding", ["gzip", "deflate"])
    @pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
    @pytest.mark.parametrize("status", [201, 500])
    async def test_a_bomb_is_refused_within_bounded_memory(
        self, raw: Any, encoding: str, chunked: bool, status: int
    ) -> None:
        body = _BOMBS[encoding]
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        server = await raw(lambda _n: http_answer(status, body, headers, chunked=chunked))
        async with KirimClient(TOKEN, base_url=server.url, max_retries=0) as client:
            gc.collect()
            tracemalloc.start()
            try:
                with pytest.raises(MalformedResponseError, match="exceeds the 1048576-byte limit"):
                    await client.labels.create("bug")
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert len(body) < 1024 * 1024  # small on the wire...
        assert peak < 8 * 1024 * 1024, peak  # ...and the client held about the cap, no more

    @pytest.mark.parametrize(
        ("encoding", "wbits", "members"),
        [("gzip", 31, 1), ("gzip", 31, 3), ("deflate", 15, 1), ("deflate", -15, 1)],
        ids=["gzip", "gzip-members", "deflate", "raw-deflate"],
    )
    @pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
    async def test_a_compressed_answer_is_read(
        self, raw: Any, encoding: str, wbits: int, members: int, chunked: bool
    ) -> None:
        document = _json.dumps(label_body("bug"))
        step = -(-len(document) // members)
        body = b""
        for start in range(0, len(document), step):
            packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
            body += packer.compress(document[start : start + step]) + packer.flush()
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        server = await raw(lambda _n: http_answer(201, body, headers, chunked=chunked))
        async with KirimClient(TOKEN, base_url=server.url) as client:
            label = await client.labels.create("bug")
        assert label.name == "bug"

    @pytest.mark.parametrize(
        ("encoding", "body", "says"),
        [
            ("br", b"\x0b\x02\x80{}\x03", "Content-Encoding 'br', which was not offered"),
            ("gzip", b"not gzip at all", "is not valid gzip"),
            ("gzip", gzipped(b'{"data": {}}' * 50)[:20], "was cut short"),
        ],
        ids=["not-offered", "not-gzip", "cut-short"],
    )
    async def test_a_body_that_does_not_decode_is_malformed(
        self, raw: Any, encoding: str, body: bytes, says: str
    ) -> None:
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        server = await raw(lambda _n: http_answer(201, body, headers))
        async with KirimClient(TOKEN, base_url=server.url) as client:
            with pytest.raises(MalformedResponseError, match=says) as caught:
                await client.labels.create("bug")
        assert caught.value.status == 201  # a success that cannot be read: it may exist

    async def test_only_what_it_decodes_is_offered(self, scripted: ScriptedServer) -> None:
        async with KirimClient(TOKEN, base_url=scripted.url) as client:
            await client.labels.create("bug")
        assert scripted.requests[0][1]["Accept-Encoding"] == "gzip, deflate"


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not other for other in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _everything_shown(error: BaseException) -> str:
    """All that the error's chain shows: str, repr, args and their attributes' reprs."""
    shown = []
    for link in _chain(error):
        shown += [str(link), repr(link), repr(link.args)]
        shown += [repr(value) for value in vars(link).values()]
        info = getattr(link, "request_info", None)
        if info is not None:
            shown.append(repr(dict(info.headers)))
    return "\n".join(shown)


class TestTheTokenStaysHidden:
    @pytest.mark.parametrize(
        "answer",
        [
            b"HTTP/1.1 201 Created\r\nX-Huge: " + b"a" * 20_000 + b"\r\n\r\n",
            b"NOT HTTP AT ALL\r\n\r\n",
            b"HTTP/1.1 abc Bad\r\nContent-Length: 0\r\n\r\n",
        ],
        ids=["header-over-8190-bytes", "bad-status-line", "bad-status-code"],
    )
    async def test_not_in_a_protocol_errors_chain(self, raw: Any, answer: bytes) -> None:
        server = await raw(lambda _n: answer)
        async with KirimClient(TOKEN, base_url=server.url, max_retries=0) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.labels.create("bug")
        chain = _chain(caught.value)
        assert len(chain) > 1  # the cause is still chained, for diagnosis
        assert TOKEN not in _everything_shown(caught.value)
        assert "<redacted>" in _everything_shown(caught.value)

    @pytest.mark.parametrize("status", [400, 401, 429, 500])
    async def test_not_in_an_error_that_echoes_it(
        self, scripted: ScriptedServer, status: int
    ) -> None:
        echo = {
            "error": {
                "code": "invalid_api_key",
                "message": f"Bearer {TOKEN} is not valid",
                "param": TOKEN,
                "request_id": "req_1",
                "details": [{"token": TOKEN}],
            }
        }
        scripted.script(Answer(status, echo))
        async with KirimClient(
            TOKEN, base_url=scripted.url, max_retries=0, max_rate_limit_wait=0
        ) as client:
            with pytest.raises(KirimError) as caught:
                await client.labels.create("bug")
        shown = _everything_shown(caught.value)
        assert TOKEN not in shown
        assert "Bearer *** is not valid" in str(caught.value)

    async def test_not_in_a_malformed_success_that_echoes_it(
        self, scripted: ScriptedServer
    ) -> None:
        scripted.script(Answer(201, f"<html>{TOKEN}</html>".encode()))
        async with KirimClient(TOKEN, base_url=scripted.url) as client:
            with pytest.raises(MalformedResponseError) as caught:
                await client.labels.create("bug")
        assert TOKEN not in _everything_shown(caught.value)


async def test_no_cookies_are_kept(scripted: ScriptedServer) -> None:
    scripted.script(
        *(Answer(201, label_body(f"l{i}"), {"Set-Cookie": f"c{i}=v{i}; Path=/"}) for i in range(5))
    )
    # By name: aiohttp's default jar takes no cookies from a bare IP address anyway.
    url = scripted.url.replace("127.0.0.1", "localhost")
    async with KirimClient(TOKEN, base_url=url) as client:
        for i in range(5):
            await client.labels.create(f"l{i}")
    assert all("Cookie" not in headers for _, headers, _ in scripted.requests)


def _nested(depth: int) -> bytes:
    return b'{"error": ' + b"[" * depth + b"]" * depth + b"}"


class TestDeeplyNestedJSON:
    """Nesting past any parser's limit is bad JSON, never a RecursionError."""

    @pytest.fixture(params=["orjson-or-stdlib", "stdlib"])
    def decoder(self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
        if request.param == "stdlib":  # as without the fast extra
            monkeypatch.setattr(_json, "loads", _json.stdlib_loads)

    @pytest.mark.parametrize(
        ("status", "error"),
        [(201, MalformedResponseError), (429, RateLimitError), (500, ServerError)],
    )
    async def test_in_an_answer(
        self, decoder: None, scripted: ScriptedServer, status: int, error: type[KirimError]
    ) -> None:
        scripted.script(Answer(status, _nested(100_000), {"Retry-After": "0"}))
        async with KirimClient(
            TOKEN, base_url=scripted.url, max_retries=0, max_rate_limit_wait=0
        ) as client:
            with pytest.raises(error):
                await client.labels.create("bug")

    def test_the_stdlib_loader_says_value_error(self) -> None:
        with pytest.raises(ValueError, match="nested too deeply"):
            _json.stdlib_loads(_nested(100_000))


class TestThePool:
    async def test_a_wait_for_a_connection_is_not_a_send(self, raw: Any) -> None:
        server = await raw(lambda _n: None)  # holds every request unanswered
        async with KirimClient(
            TOKEN, base_url=server.url, connection_limit=1, max_retries=0, timeout=30
        ) as client:
            first = asyncio.ensure_future(client.labels.create("first"))
            await server.wait_for_requests(1)
            with pytest.raises(PoolTimeoutError) as caught:
                await client.labels.create("second", timeout=0.05)
            first.cancel()
        assert caught.value.request_may_have_been_sent is False
        assert "connections of the pool stayed busy" in str(caught.value)
        assert server.requests == 1

    async def test_aclose_ends_every_call_with_a_typed_error(self, raw: Any) -> None:
        server = await raw(lambda _n: None)
        client = KirimClient(TOKEN, base_url=server.url, connection_limit=2, max_retries=3)
        calls = [asyncio.ensure_future(client.labels.create(f"l{i}")) for i in range(5)]
        await server.wait_for_requests(2)
        await client.aclose()
        errors = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(error, ClientClosedError) for error in errors), errors
        sent = [e.request_may_have_been_sent for e in errors if isinstance(e, ClientClosedError)]
        assert sorted(sent) == [False, False, False, True, True]
        assert all(isinstance(e, KirimError) and e.attempts == 1 for e in errors)
        assert server.requests == 2
        with pytest.raises(ClientClosedError, match="the client is closed") as after:
            await client.labels.create("after")
        assert after.value.request_may_have_been_sent is False
        assert isinstance(after.value, RuntimeError)
