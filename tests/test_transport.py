"""The transport alone: one pooled session, bounded bodies, errors without the token."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest

from kirim_async._sansio import OutgoingRequest
from kirim_async._transport import BoundedBody, PoolSlots, RawResponse, Transport
from kirim_async.errors import (
    APIConnectionError,
    ClientClosedError,
    MalformedResponseError,
)

from .conftest import Answer, ScriptedServer, closed_port

TOKEN = "sk_transport_secret_123"


def post(url: str) -> OutgoingRequest:
    return OutgoingRequest("POST", f"{url}/labels", {"X-Own": "1"}, b'{"name": "bug"}')


class TestBoundedBody:
    def test_plain_bytes_pass_whole(self) -> None:
        body = BoundedBody(cap=10, status=201, encoding=None)
        body.feed(b"12345")
        body.feed(b"67890")
        assert body.finish() == b"1234567890"

    def test_one_byte_past_the_cap_is_refused(self) -> None:
        body = BoundedBody(cap=10, status=201, encoding=None)
        with pytest.raises(MalformedResponseError):
            body.feed(b"12345678901")

    @pytest.mark.parametrize("encoding", ["gzip", "deflate"])
    def test_the_cap_holds_on_the_decoded_size(self, encoding: str) -> None:
        # A bomb: 10 MiB of zeros in a few KiB; refused once the decoded size passes
        # the cap, never inflated whole.
        raw = b"\0" * (10 * 1024 * 1024)
        packed = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
        body = BoundedBody(cap=1024, status=201, encoding=encoding)
        with pytest.raises(MalformedResponseError):
            body.feed(packed)

    def test_an_encoding_not_offered_is_refused(self) -> None:
        with pytest.raises(MalformedResponseError, match="br"):
            BoundedBody(cap=1024, status=201, encoding="br")

    def test_a_compressed_stream_cut_short_is_refused(self) -> None:
        packed = gzip.compress(b'{"data": {}}' * 100)
        body = BoundedBody(cap=1 << 20, status=201, encoding="gzip")
        body.feed(packed[: len(packed) // 2])
        with pytest.raises(MalformedResponseError, match="cut short"):
            body.finish()


class TestPoolSlots:
    async def test_waiters_are_served_in_order(self) -> None:
        slots = PoolSlots(free=1)
        assert slots.take_now()
        served: list[int] = []

        async def wait(n: int) -> None:
            await slots.take(timeout=5)
            served.append(n)

        waiters = [asyncio.ensure_future(wait(n)) for n in range(3)]
        await asyncio.sleep(0)
        for _ in range(3):
            slots.give_back()
            await asyncio.sleep(0)
        await asyncio.gather(*waiters)
        assert served == [0, 1, 2]

    async def test_closing_fails_every_waiter_at_once(self) -> None:
        slots = PoolSlots(free=0)
        waiters = [asyncio.ensure_future(slots.take(timeout=60)) for _ in range(2)]
        await asyncio.sleep(0)
        slots.fail_waiters(lambda: ClientClosedError("closed"))
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert [type(result) for result in results] == [ClientClosedError] * 2
        assert results[0] is not results[1]


class TestTransport:
    async def test_sends_the_request_with_every_request_s_headers(
        self, scripted: ScriptedServer
    ) -> None:
        scripted.script(Answer(201, b"{}", {"X-Request-Id": "req_9"}))
        transport = Transport(headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            raw = await transport.send(post(scripted.url), timeout=5)
        finally:
            await transport.aclose()
        assert isinstance(raw, RawResponse)
        assert (raw.status, raw.body, raw.headers["X-Request-Id"]) == (201, b"{}", "req_9")
        path, headers, body = scripted.requests[0]
        assert path == "/v1/labels"
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["X-Own"] == "1"
        assert body == b'{"name": "bug"}'

    async def test_a_body_past_max_response_bytes_is_refused(
        self, scripted: ScriptedServer
    ) -> None:
        scripted.script(Answer(201, b"x" * 2048))
        transport = Transport(max_response_bytes=1024)
        try:
            with pytest.raises(MalformedResponseError):
                await transport.send(post(scripted.url), timeout=5)
        finally:
            await transport.aclose()

    async def test_a_refused_connection_is_a_connection_error_without_the_token(self) -> None:
        transport = Transport(headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with pytest.raises(APIConnectionError) as info:
                await transport.send(post(f"http://127.0.0.1:{closed_port()}/v1"), timeout=5)
        finally:
            await transport.aclose()
        assert info.value.request_may_have_been_sent is False
        seen = [info.value, info.value.__cause__, info.value.__context__]
        assert not any(TOKEN in repr(error) for error in seen if error is not None)

    async def test_a_closed_transport_refuses_to_send(self, scripted: ScriptedServer) -> None:
        transport = Transport()
        await transport.aclose()
        assert transport.closed
        with pytest.raises(ClientClosedError):
            await transport.send(post(scripted.url), timeout=5)

    def test_its_repr_holds_neither_token_nor_proxy_password(self) -> None:
        transport = Transport(
            headers={"Authorization": f"Bearer {TOKEN}"}, proxy="http://u:hunter22@proxy:3128"
        )
        assert TOKEN not in repr(transport)
        assert "hunter22" not in repr(transport)

    def test_pool_limit_is_the_connection_limit_of_its_own_session(self) -> None:
        assert Transport(connection_limit=7).pool_limit == 7
