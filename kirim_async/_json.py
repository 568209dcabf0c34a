"""JSON encoding for the wire: orjson when installed (the ``fast`` extra), else stdlib.

Both refuse a document nested too deeply with a ``ValueError``: orjson stops at 1,024
levels; the stdlib's decoder would raise ``RecursionError``, which is turned into a
``ValueError`` here, so that a hostile answer is a typed error like any other bad JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["JSONDecodeError", "dumps", "loads", "stdlib_loads"]

dumps: Callable[[Any], bytes]
loads: Callable[[bytes], Any]

# orjson.JSONDecodeError and UnicodeDecodeError both subclass ValueError.
JSONDecodeError: tuple[type[Exception], ...] = (ValueError,)


def stdlib_loads(data: bytes | str, **options: Any) -> Any:
    """:func:`json.loads`, with a document nested too deeply refused as a ``ValueError``.

    Raises:
        ValueError: Not JSON, or nested deeper than the interpreter's recursion limit.
    """
    try:
        return json.loads(data, **options)
    except RecursionError:
        raise ValueError("JSON document nested too deeply") from None


try:
    import orjson
except ImportError:  # pragma: no cover - exercised when the extra is not installed

    def dumps(obj: Any) -> bytes:
        """Encode *obj* as compact UTF-8 JSON."""
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    loads = stdlib_loads
else:
    dumps = orjson.dumps
    loads = orjson.loads
