"""Create labels against an in-process FakeKirimServer: no account, no network.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from kirim_async import DuplicateLabelError, InvalidParameterError, KirimClient, LabelColor
from kirim_async.testing import FakeKirimServer


async def main() -> None:
    async with (
        FakeKirimServer(rate=20, burst=5) as server,
        KirimClient(server.token, base_url=server.url) as client,
    ):
        for name, color in [("bug", "red"), ("feature", LabelColor.GREEN), ("docs", "sky")]:
            label = await client.labels.create(name, color=color)
            print(f"created {label.name!r} ({label.color}) as {label.id}")

        try:
            await client.labels.create("bug")
        except DuplicateLabelError as exc:
            print(f"duplicate: {exc}")

        try:
            await client.labels.create("x" * 60)
        except InvalidParameterError as exc:
            print(f"refused before sending: {exc}")

        print(f"the server holds {len(server.labels)} labels")


if __name__ == "__main__":
    asyncio.run(main())
