"""Rate-limit hint headers, read by their meaning: no clock of its own, no I/O.

What an answer's headers say of the server's quota, in each style real APIs send:
``X-RateLimit-Limit/Remaining/Reset`` (``Reset`` as seconds, or as a Unix time, as
GitHub sends it), Discord's ``X-RateLimit-Reset-After``, the IETF draft's
``RateLimit-Policy``/``RateLimit`` and its earlier ``RateLimit-Limit/Remaining/Reset``.
The one home of reading them: a rate to pace at and what is left (for the pacers), and
the wait a 429 names there when it shows the quota spent (for the error, and so for
the retry policy's ``max_retry_after`` as well as the pacers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import attrs

__all__ = ["MAX_HINT_RESET", "BadHint", "Hint", "read_hint", "read_quota", "read_reset"]

MAX_HINT_RESET = 86400.0  # a quota restored more than a day away is no usable hint
_EPOCH_THRESHOLD = 1e8  # an X-RateLimit-Reset this large is a Unix time, not a delta
_X_PREFIX = "X-RateLimit-"  # GitHub's, Discord's, most APIs'
_DRAFT_PREFIX = "RateLimit-"  # the IETF draft's until 06 (express-rate-limit), GitLab's
_IETF_FIELD = re.compile(r"[;\s]([qrtw])=(\d+)")


@attrs.frozen
class Hint:
    """What an answer's hint headers say of the server's quota.

    Attributes:
        rate: Requests a second: the policy's (IETF), or the quota used over the time
            to restore it (``X-RateLimit-*`` with a delta reset), a noisy sample.
        limit: The quota's size (its burst).
        remaining: What is left of it now.
        is_stated: Whether the server stated the rate outright (IETF policy) rather than
            it being read from one answer's counters.
    """

    rate: float
    limit: float
    remaining: float
    is_stated: bool


@attrs.frozen
class BadHint:
    """A hint header that cannot be true (logged once, then ignored)."""

    header: str
    value: object


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _ietf_params(value: str | None) -> dict[str, int]:
    """The integer parameters of an IETF draft ``RateLimit``/``-Policy`` field's first item."""
    if not value:
        return {}
    first = value.split(",", 1)[0]
    return {key: int(number) for key, number in _IETF_FIELD.findall(";" + first)}


def read_hint(
    headers: Mapping[str, str], wall_now: float, *, unbiased: bool = False
) -> Hint | BadHint | None:
    """Read an answer's rate-limit hint headers by their meaning.

    ``X-RateLimit-Limit/Remaining`` with Discord's ``X-RateLimit-Reset-After`` or an
    ``X-RateLimit-Reset`` in seconds is a bucket: the quota used over the time to restore
    it is a sample of its rate (too few used say nothing: the counters are rounded). A
    ``Reset`` that is a Unix time (GitHub's meaning) ends a fixed window: whole seconds
    say nothing of a rate, so it is no hint. The IETF draft's ``RateLimit-Policy:
    "p";q=Q;w=W`` states the rate (Q per W seconds), with ``RateLimit: "p";r=R;t=T``.
    Its earlier fields (draft 06, which express-rate-limit sends, and GitLab with a
    Unix-time reset), ``RateLimit-Limit/Remaining/Reset``, read as ``X-RateLimit-*``.

    Args:
        headers: The answer's headers (looked up without regard to case).
        wall_now: Unix time now, for a Unix-time reset.
        unbiased: Read ``X-RateLimit-*`` samples without the rounding's bias. Rounded
            counters read the rate high, by up to one over the count used; that keeps a
            pacer that takes every sample from settling under the rate (a full bucket's
            samples then read high, and it speeds up), so only one that takes samples of
            answers with many used alone (``HintReader.min_used``) wants it.

    Returns:
        The hint; a :class:`BadHint` for one that cannot be true (a reset in the past or
        more than a day away, epoch milliseconds, NaN, a negative count); None for none.
    """
    if "X-RateLimit-Limit" in headers:
        return _read_counters(headers, _X_PREFIX, wall_now, unbiased=unbiased)
    ietf = _read_ietf(headers) if "RateLimit-Policy" in headers else None
    if not isinstance(ietf, Hint) and "RateLimit-Limit" in headers:
        return _read_counters(headers, _DRAFT_PREFIX, wall_now, unbiased=unbiased)
    return ietf


def read_quota(headers: Mapping[str, str]) -> float | None:
    """What is left of the quota by an answer's hint headers, whatever they say of a rate.

    ``X-RateLimit-Remaining`` (with a valid ``X-RateLimit-Limit``), the IETF draft's
    ``RateLimit: ...;r=R``, or its earlier ``RateLimit-Remaining``; None when none is
    there or they cannot be true.
    """
    if "X-RateLimit-Limit" in headers:
        counters = _counters(headers, _X_PREFIX)
        return None if isinstance(counters, BadHint) else counters[1]
    remaining = _ietf_params(headers.get("RateLimit")).get("r")
    if remaining is not None:
        return float(remaining)
    if "RateLimit-Limit" in headers:
        counters = _counters(headers, _DRAFT_PREFIX)
        return None if isinstance(counters, BadHint) else counters[1]
    return None


def read_reset(headers: Mapping[str, str], wall_now: float) -> float | None:
    """Seconds until the quota is back, by hint headers that show it spent; else None.

    A 429 without ``Retry-After`` names its wait there: GitHub's ``x-ratelimit-reset``
    (a Unix time) with ``x-ratelimit-remaining: 0``, Discord's ``Reset-After``, a delta
    ``Reset``, the IETF draft's ``RateLimit: ...;r=0;t=T``. A reset in the past or more
    than a day away says nothing.
    """
    for prefix in (_X_PREFIX, _DRAFT_PREFIX):
        if prefix + "Remaining" in headers:
            if _header_float(headers, prefix + "Remaining") != 0:
                return None
            reset, _ = _reset_in(headers, prefix, wall_now)
            return reset if reset is not None and 0 <= reset <= MAX_HINT_RESET else None
    current = _ietf_params(headers.get("RateLimit"))
    reset = current.get("t")
    if current.get("r") == 0 and reset is not None and reset <= MAX_HINT_RESET:
        return float(reset)
    return None


def _counters(headers: Mapping[str, str], prefix: str) -> tuple[float, float] | BadHint:
    """*prefix* ``Limit`` and ``Remaining``, or the :class:`BadHint` they are."""
    limit = _header_float(headers, prefix + "Limit")
    remaining = _header_float(headers, prefix + "Remaining")
    if limit is None or remaining is None or limit < 1 or remaining > limit:
        return BadHint(prefix + "Limit/Remaining", (limit, remaining))
    return limit, remaining


def _reset_in(
    headers: Mapping[str, str], prefix: str, wall_now: float
) -> tuple[float | None, bool]:
    """Seconds until *prefix* ``Reset``, and whether it was a Unix time (GitHub, GitLab).

    Discord's ``Reset-After`` (a delta) first, when there.
    """
    after = _header_float(headers, prefix + "Reset-After")
    if after is not None:
        return after, False
    reset = _header_float(headers, prefix + "Reset")
    if reset is not None and reset > _EPOCH_THRESHOLD:
        return reset - wall_now, True
    return reset, False


def _read_counters(
    headers: Mapping[str, str], prefix: str, wall_now: float, *, unbiased: bool
) -> Hint | BadHint | None:
    """*prefix* ``Limit/Remaining/Reset`` (``X-RateLimit-`` or ``RateLimit-``)."""
    counters = _counters(headers, prefix)
    if isinstance(counters, BadHint):
        return counters
    limit, remaining = counters
    reset, epoch = _reset_in(headers, prefix, wall_now)
    if reset is None or not 0 <= reset <= MAX_HINT_RESET:
        return BadHint(prefix + "Reset", headers.get(prefix + "Reset"))
    used = limit - remaining
    # A fixed window's end says nothing of a rate; a reset of 0 neither; and the
    # counters are rounded, so only answers with several tokens used give a sample.
    if epoch or reset <= 0 or used < max(2.0, 0.1 * limit):
        return None
    # What the bucket holds is in [remaining, remaining + 1): used is high by half a
    # request on the whole, which reads the rate high. Unbiased, only on request.
    return Hint((used - 0.5 * unbiased) / (reset + 0.0005), limit, remaining, is_stated=False)


def _read_ietf(headers: Mapping[str, str]) -> Hint | BadHint:
    policy = _ietf_params(headers.get("RateLimit-Policy"))
    current = _ietf_params(headers.get("RateLimit"))
    quota, window = policy.get("q"), policy.get("w")
    remaining, reset = current.get("r"), current.get("t")
    if not quota or not window or window > MAX_HINT_RESET or remaining is None:
        return BadHint("RateLimit-Policy", headers.get("RateLimit-Policy"))
    if reset is None or reset > MAX_HINT_RESET or remaining > quota:
        return BadHint("RateLimit", headers.get("RateLimit"))
    return Hint(quota / window, float(quota), float(remaining), is_stated=True)
