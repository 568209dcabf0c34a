"""Pacing: every attempt of a call waits its turn at a pacer before it is sent.

:class:`Pacer` is the protocol the request path sees; :class:`RateGate` is the pacer
that learns a server's limit locally, in this process (see its module for how).
"""

from __future__ import annotations

from ._gate import RateGate
from ._protocol import Pacer, Ticket

__all__ = ["Pacer", "RateGate", "Ticket"]
