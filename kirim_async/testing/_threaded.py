"""Serving from a background thread, for synchronous callers such as subprocess tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

__all__ = ["serving_in_thread"]

_STEP_TIMEOUT = 30.0


@contextlib.contextmanager
def serving_in_thread(
    start: Callable[[], Coroutine[Any, Any, None]],
    close: Callable[[], Coroutine[Any, Any, None]],
    *,
    name: str,
) -> Iterator[None]:
    """Await ``start()`` on a new event loop in a daemon thread; ``close()`` it on exit.

    The loop runs until the block ends, then is stopped and closed with its thread.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=_STEP_TIMEOUT)
        yield
    finally:
        asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=_STEP_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_STEP_TIMEOUT)
        loop.close()
