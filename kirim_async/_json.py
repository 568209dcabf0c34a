"""JSON encoding for the wire: orjson when installed (the ``fast`` extra), else stdlib."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["JSONDecodeError", "dumps", "loads"]

dumps: Callable[[Any], bytes]
loads: Callable[[bytes], Any]

try:
    import orjson
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    JSONDecodeError: tuple[type[Exception], ...] = (ValueError,)

    def dumps(obj: Any) -> bytes:
        """Encode *obj* as compact UTF-8 JSON."""
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    loads = json.loads
else:
    # orjson.JSONDecodeError subclasses ValueError; UnicodeDecodeError is one too.
    JSONDecodeError = (ValueError,)
    dumps = orjson.dumps
    loads = orjson.loads
