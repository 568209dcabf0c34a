"""Pacing: every attempt of a call waits its turn at a pacer before it is sent.

:class:`Pacer` is the protocol the request path sees; :class:`RateGate` is the pacer
that learns a server's limit locally, in this process (see its module for how);
:class:`RedisPacer` keeps what it learns in Redis, shared by every process with the
same token (the ``redis`` extra).
"""

from __future__ import annotations

from ._gate import RateGate
from ._protocol import Pacer, Ticket
from ._redis import RedisPacer, check_redis_url, shared_key

__all__ = ["Pacer", "RateGate", "RedisPacer", "Ticket", "check_redis_url", "shared_key"]
