"""One KirimClient for the lifetime of an aiohttp web app.

The client (and its connection pool, and its rate-limit pacing) is opened when the app
starts and closed when it stops; every request handler shares it.

Run: KIRIM_API_TOKEN=... python examples/aiohttp_service.py, then
     curl -X POST localhost:8080/labels -d '{"name": "bug", "color": "red"}'
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from kirim_async import InvalidParameterError, KirimClient, KirimError

CLIENT = web.AppKey("kirim_client", KirimClient)


async def kirim_client(app: web.Application) -> AsyncIterator[None]:
    """Open the app's one client at start-up; close it at shutdown."""
    async with KirimClient() as client:  # the token comes from KIRIM_API_TOKEN
        app[CLIENT] = client
        yield


async def create_label(request: web.Request) -> web.Response:
    body = await request.json()
    try:
        label = await request.app[CLIENT].labels.create(body.get("name"), color=body.get("color"))
    except InvalidParameterError as exc:  # refused before anything was sent
        return web.json_response({"error": str(exc), "field": exc.field}, status=400)
    except KirimError as exc:
        return web.json_response({"error": str(exc)}, status=502)
    return web.json_response({"id": label.id, "name": label.name}, status=201)


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(kirim_client)
    app.router.add_post("/labels", create_label)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), port=8080)
