"""The README's "In a service" examples run as written, against a FakeKirimServer."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from kirim_async.testing import FakeKirimServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def kirim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeKirimServer]:
    """A fake server the examples reach through the environment, as they would the API."""
    server = FakeKirimServer()
    await server.start()
    monkeypatch.setenv("KIRIM_API_TOKEN", server.token)
    monkeypatch.setenv("KIRIM_BASE_URL", server.url)
    yield server
    await server.close()


async def test_the_aiohttp_service_shares_one_client(kirim: FakeKirimServer) -> None:
    service = load("aiohttp_service")
    async with TestClient(TestServer(service.make_app())) as http:
        first = await http.post("/labels", json={"name": "bug", "color": "red"})
        second = await http.post("/labels", json={"name": "docs"})
        refused = await http.post("/labels", json={"name": ""})
        taken = await http.post("/labels", json={"name": "bug"})
        assert (first.status, second.status) == (201, 201)
        assert (await first.json())["name"] == "bug"
        assert refused.status == 400
        assert (await refused.json())["field"] == "name"
        assert taken.status == 502
    assert [label["name"] for label in kirim.labels] == ["bug", "docs"]
    # One client, so one connection pool: both creates came over the same connection.
    assert kirim.stats.requests == 3


async def test_the_fastapi_service_holds_its_client_in_the_lifespan(
    kirim: FakeKirimServer,
) -> None:
    service = load("fastapi_service")
    async with service.lifespan(service.app):
        transport = httpx.ASGITransport(app=service.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            created = await http.post("/labels", json={"name": "bug", "color": "red"})
            refused = await http.post("/labels", json={"name": "x" * 60})
        client = service.app.state.kirim
        assert created.status_code == 201
        assert created.json()["name"] == "bug"
        assert refused.status_code == 400
        assert "name: must be a string of 1-50" in refused.json()["detail"]
    assert client.is_closed
    assert [label["name"] for label in kirim.labels] == ["bug"]
