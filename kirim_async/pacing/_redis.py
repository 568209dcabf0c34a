"""RedisPacer: one pacer shared by every process that uses the same token.

Several replicas of a service, or the workers of one seeding job, each have a client
and one token. Each process's own :class:`~kirim_async.pacing.RateGate` would learn
the limit alone: N first bursts, N probing streams, N times the 429s. This pacer keeps
what the gate learns in one Redis hash instead, changed only by Lua scripts, which Redis
runs atomically and times by its own ``TIME``: the clocks of the processes never meet.

The shared state and what changes it:

- **The closing.** A 429 met by any process moves the shared ``open_at`` to its
  ``Retry-After`` deadline (the later of the two): no process sends before it.
- **The schedule.** Turns are spaced by GCRA (the "virtual scheduling" form of a token
  bucket): the hash keeps the theoretical arrival time ``tat`` of the next turn; a turn
  is the later of now, the closing, and ``tat`` less the allowed burst; taking it moves
  ``tat`` on by one interval. A closing leaves no burst: it builds up again from the
  reopening (the local gate empties its bucket at a 429 too), else the burst and a pace
  a few per cent under the limit drew a 429 a second after each reopening. A process
  that must wait reserves its slot and sleeps until it (no polling); waking, it
  confirms the slot in one more call, which re-reserves only if a closing came since.
- **The first contact.** A fresh state (a first job, an idle expiry, a restart) knows
  no pace: every process's first send goes alone, and its other turns wait until its
  answer is shared (half a second at most). The first answer shared, if it carries
  hints, grants the quota it shows left (less the other sends so far) at once, and
  what remains waits for the first rate its sends' answers bring (again half a second
  at most, then unpaced). While turns wait so, each answer's quota left is granted
  anew (less the sends after it): a quota spent slowly refills, and its answers show
  too few used for a sample of the rate. Without this, four processes at
  concurrency 8 sent 32 requests into a bucket of 30, and the one 429 closed everyone
  for a whole second (5 % of the job).
- **The pace.** Unpaced until the first congestion event. Every send carries the shared
  *epoch*; a 429 for a send of the current epoch is a new event: the script advances the
  epoch (so the 429s of sends already in flight, in any process, cut nothing more) and
  hands that process what it needs to measure: the sends, their times, the phase since
  the last cut, timed from its first send (the turns waiting out a closing go a sleep
  and a round trip after it). The first phase, unpaced, is read at the second cut, less
  each 429 of its sends before the refused one answered since: a concurrency's worth
  were out when its first 429 came back. Within a second of a cut, a 429 is a new event
  only if this process saw 3 or more, a tenth of its answers since (``is_sparse``, the
  local gate's rule, judged from each process's own answers): else it closes the gate
  and cuts nothing. Without ``Retry-After``, a process draws one backoff an event, not
  one a 429. The process handed the event computes the new pace
  (:mod:`kirim_async.pacing._measure`) and writes it back, only if no later event came
  first, as a new *version*: a turn reserved at an older pace is refused and asked again
  (the version it reserved at, not the latest another turn of its process read), so that
  the sends waiting out a closing do not all go at its end. Each process computes the
  pace from the shared parameters (with the local gate's probe) and hands it to the turn
  script; it probes upwards from the reopening, not during the closing.
- **Blind cuts and the slow start.** A cut that measured nothing halves the pace, which
  then doubles each second until the next event (TCP's slow start); that event reads
  the limiter's rate from the two phases, counting the refill the ramp wasted while
  under it (``Ramp``). A measured cut paces 3 % under the rate measured and creeps up,
  as the local gate does.
- **Hints.** A process that reads a hint of the rate (the IETF policy, or the median of
  its last ``X-RateLimit-*`` samples) writes it when it moves by more than 5 %: a rate
  the server states replaces the shared one, a sample moves it a fifth of the way (the
  processes' medians differ). It paces everyone, with the quota as burst; the first
  one starts the schedule from an empty quota (the sends before it spent it). Samples
  are taken only from answers with half the quota used, and read without the rounded
  counters' upward bias: a process's reading high would pace them all over the limit.
  So a sampled rate is the limiter's own, and is shared 2 % under it, which the
  samples' noise then does not cross. (The local gate keeps every sample, and their
  bias: under its pace the bucket fills, its samples read high and it speeds up again;
  unbiased, it settled under the rate. Here, with no samples from a filling bucket, the
  pace stays.) Each congestion event despite the hints paces 3 % further under.

What the local gate does beyond this, it does not do here. It climbs once more after a
rate read from a short phase (a low rate's): not yet tried with many processes, whose
climbs would all meet the one limit. Its admitted-rate floor and
its climb back to the best second need every answer counted by when it came, which
would cost each answer a round trip to Redis (counted at each turn, they arrive late and
bunched, and a floor read from them drew 429s). Instead the hash **expires** after
``idle_expiry`` seconds without a turn, so a pace guessed for one job is not the next
one's: it re-learns.

**When Redis fails** (not reachable, a timeout, a restart), no call fails for it: the
pacer logs one warning and goes on through a local gate capped at this process's share
of the last shared pace (its share of the sends it saw), and tries Redis again each
second for 10 s, then after 2 s, 4 s, up to 30 s (processes that rejoin far apart pace
both locally and shared at once). When Redis answers again it rejoins (one info line)
and the local gate is dropped. A restarted Redis has lost the state: the processes
re-learn.

The key is ``kirim-async:pacer:`` and a SHA-256 of the base URL and token: the same
token on the same API shares a pacer; the token is never in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from .._config import masked
from .._hints import Hint, read_quota
from ..errors import InvalidParameterError, RateLimitError
from ._gate import RateGate
from ._measure import (
    MEASURED_MARGIN,
    MIN_RATE,
    MIN_SENDS,
    PROBE_PER_SECOND,
    WINDOW_PROBE_PER_SECOND,
    Estimate,
    HintReader,
    Ramp,
    bound_at,
    cut_to,
    estimate_rate,
    is_cheap,
    is_sparse,
    probed_rate,
    send_rate,
)
from ._protocol import Ticket

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["REDIS_SCHEMES", "RedisPacer", "check_redis_url", "shared_key"]

logger = logging.getLogger("kirim_async")

REDIS_SCHEMES = ("redis", "rediss", "unix")
_INSTALL = "pip install 'kirim-async[redis]'"
_HINT_MOVE = 0.05  # a hint rate is shared again when it moves by more than this share
# Only samples of answers with half the quota used are shared: one process's reading
# high paces them all, and the first hint is a pace at once (no median to temper it).
_SHARED_USED = 0.5
# A rate read from X-RateLimit-* samples (without bias) is the limiter's own: paced at
# it, the samples' noise draws a 429 now and then. It is shared a little under. (A rate
# the server states is exact: shared as it is.)
_HINT_MARGIN = 0.98
_HINT_WEIGHT = 0.2  # a process's median of samples moves the shared hint rate this much
# Seconds between tries to rejoin Redis: each second for the first ten (a restart takes
# a second or two, and processes that rejoin far apart overlap a shared pace with their
# local ones), then doubling up to the last.
_REJOIN_FIRST = 1.0
_REJOIN_STEADY = 10.0
_REJOIN_LAST = 30.0
_MIN_HINT_SCALE = 0.5  # 429s despite the hints pace at least half what they say
_SLOW_START_CUT = 0.5  # a blind cut halves the pace; the slow start that follows measures
_MIN_SHARE = 0.05  # a process's share of the pace, falling back, is at least this
# Seconds the other turns of a fresh shared state wait for the first send's answer (its
# hints pace them): about one round trip to a distant API. Bounded: an answer without
# hints, or none, costs each process this once at most.
_FIRST_HOLD = 0.5

# The fields a turn reads back for the pacer's own computation of the pace.
_PACE_FIELDS = "'cut_rate', 'cut_at', 'probe', 'cheap', 'limited_at', 'hint_rate', "
_PACE_FIELDS += "'hint_scale', 'version', 'epoch'"

# KEYS[1]: the hash. ARGV: the slot to confirm ('' for none); the expiry in ms; the pace
# the caller computed ('' for none) and the version of the pace it computed it from; the
# first contact's hold in seconds; '1' if the caller's first send is out, unanswered;
# '1' if the caller has waited a hold out already (a turn waits one out at most: its
# clock and Redis's may disagree, as a test's fake clock does, and it must not spin).
# Returns {kind, now, x, y, answered, pace...}: {'go', now, epoch, seq, ...}, {'wait',
# now, slot, '', ...}, {'hold', now, until, '', ...} (no pace yet, and no first send
# answered, or the quota the first answer showed spent: ask again when this process
# shares an answer, or at *until*) or, when the caller's pace is not the current one (a
# cut came, or the first hint), {'stale', now, '', '', ...} without a turn: it computes
# the pace again and asks again. *answered* is '' until a first send is answered. Numbers
# as strings (Lua numbers returned to Redis lose their fraction), a missing field nil.
_TURN = (
    """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local f = redis.call('HMGET', key, 'open_at', 'tat', 'burst', """
    + _PACE_FIELDS
    + """, 'answered', 'credit')
local open_at = tonumber(f[1]) or 0
local tat = tonumber(f[2]) or 0
local rate = tonumber(ARGV[3])
local confirm = tonumber(ARGV[1])
local answered = f[13] or ''
if tonumber(ARGV[4]) ~= (tonumber(f[11]) or 0) then
  return {'stale', tostring(now), '', '', answered, unpack(f, 4, 12)}
end
if not rate and not confirm and ARGV[7] ~= '1' then
  local credit, hold = tonumber(f[14]), nil
  if answered == '' then
    -- The first contact: each process's first send alone, until one is answered ...
    if ARGV[6] == '1' then hold = now + tonumber(ARGV[5]) end
  elseif credit and credit > 0 then
    redis.call('HINCRBY', key, 'credit', -1)
  elseif credit then
    -- ... then the quota its answer showed left, until a hint paces the rest.
    hold = tonumber(answered) + tonumber(ARGV[5])
  end
  if hold and now < hold then
    redis.call('PEXPIRE', key, ARGV[2])
    return {'hold', tostring(now), tostring(hold), '', answered, unpack(f, 4, 12)}
  end
end
if not (confirm and open_at <= confirm) then
  local slot = math.max(now, open_at)
  if rate then
    local interval = 1 / rate
    local allowance = ((tonumber(f[3]) or 1) - 1) * interval
    -- A closing leaves no burst: it builds up again from the reopening, at the pace.
    tat = math.max(tat, open_at + allowance)
    slot = math.max(slot, tat - allowance)
    redis.call('HSET', key, 'tat', tostring(math.max(tat, slot) + interval))
  end
  if slot > now then
    redis.call('PEXPIRE', key, ARGV[2])
    return {'wait', tostring(now), tostring(slot), '', answered, unpack(f, 4, 12)}
  end
end
local seq = redis.call('HINCRBY', key, 'seq', 1)
if redis.call('HSETNX', key, 'first_at', tostring(now)) == 1 then
  redis.call('HSET', key, 'base', seq - 1)
end
-- A phase starts with its first send: the planned reopening is a round trip earlier.
redis.call('HSETNX', key, 'phase_start', tostring(now))
redis.call('PEXPIRE', key, ARGV[2])
return {'go', tostring(now), f[12] or '0', tostring(seq), answered, unpack(f, 4, 12)}
"""
)

# A 429. ARGV: the ticket's epoch, seq and send time; the wait; the sends an unpaced
# first cut needs; the expiry in ms; '1' when it is sparse (it closes, and cuts nothing).
# Returns {'closed'} or, for a new congestion event,
# {'cut', epoch, now, sends since the first, seconds since it, phase admitted, phase
# seconds, pause, first phase admitted, first phase seconds}.
_LIMITED = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = tonumber(ARGV[4])
local f = redis.call('HMGET', key, 'open_at', 'epoch', 'seq', 'base', 'first_at', 'hint_rate',
                     'cut_rate', 'phase_seq', 'phase_start', 'event_at', 'first_admitted',
                     'first_phase', 'first_epoch', 'first_refused')
local open_at = math.max(tonumber(f[1]) or 0, now + wait)
redis.call('HSET', key, 'open_at', tostring(open_at), 'limited_at', tostring(now))
redis.call('PEXPIRE', key, ARGV[6])
local epoch = tonumber(f[2]) or 0
local seq = tonumber(ARGV[2])
local sent_at = tonumber(ARGV[3])
if tonumber(ARGV[1]) == tonumber(f[13]) and seq < tonumber(f[14]) then
  -- A refusal of the first phase, before the send that ended it: not admitted after all.
  redis.call('HINCRBY', key, 'first_admitted', -1)
end
if ARGV[7] == '1' or tonumber(ARGV[1]) < epoch then return {'closed'} end
local base = tonumber(f[4]) or 0
local first = not (f[6] or f[7])
if first and seq - base < tonumber(ARGV[5]) then return {'closed'} end
local first_at = tonumber(f[5]) or sent_at
local phase_seq = tonumber(f[8]) or base
local phase_start = tonumber(f[9]) or first_at
local admitted, phase = seq - 1 - phase_seq, sent_at - phase_start
local pause = phase_start - (tonumber(f[10]) or phase_start)
if first and not f[13] then
  -- The first phase, unpaced, is read at the next cut: by then its other refusals are in.
  redis.call('HSET', key, 'first_admitted', admitted, 'first_phase', tostring(phase),
             'first_epoch', epoch, 'first_refused', seq)
end
redis.call('HSET', key, 'epoch', epoch + 1, 'phase_seq', tonumber(f[3]) or seq,
           'event_at', tostring(now))
redis.call('HDEL', key, 'phase_start')  -- the next send's
return {'cut', tostring(epoch + 1), tostring(now), tostring(seq - base),
        tostring(now - first_at), tostring(admitted), tostring(phase), tostring(pause),
        f[11] or '0', f[12] or '0'}
"""

# The pace after a cut, written only if no later event came first. ARGV: the event's
# epoch; 'hint' and the scale of the hints' rate, or 'cut', the rate, the probe and
# whether 429s are cheap; the expiry in ms.
_SET_PACE = """
local key = KEYS[1]
if tonumber(redis.call('HGET', key, 'epoch') or 0) ~= tonumber(ARGV[1]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- The pace probes upwards from the reopening: nothing is sent while the gate is closed.
local from = math.max(now, tonumber(redis.call('HGET', key, 'open_at') or 0))
if ARGV[2] == 'hint' then
  redis.call('HSET', key, 'hint_scale', ARGV[3])
else
  redis.call('HSET', key, 'cut_rate', ARGV[3], 'probe', ARGV[4], 'cheap', ARGV[5],
             'cut_at', tostring(from), 'burst', '2')
  redis.call('HINCRBY', key, 'version', 1)  -- turns reserved at the old pace are stale
end
redis.call('PEXPIRE', key, ARGV[6])
return 1
"""

# A hint, or a first send's answer. ARGV: the rate ('' for none), the burst, the expiry
# in ms, the weight of a sample against the rate shared so far (1 for a rate the server
# states), '1' for a first send's answer (the first of them ends the first contact's hold
# and grants the quota it showed left, less the other sends so far, before a rate is
# known), the quota the answer showed left ('' for none: until a rate is known, it is
# granted anew, less the sends after the answered one), and the answered send's seq.
# The first rate is a new pace: turns are asked again, and its schedule starts from an
# empty quota (the sends before it spent it).
_HINT = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('PEXPIRE', key, ARGV[3])
local left = tonumber(ARGV[6])
local q = redis.call('HMGET', key, 'seq', 'base', 'answered', 'hint_rate', 'tat')
local seq = tonumber(q[1]) or 0
if ARGV[5] == '1' and not q[3] then
  redis.call('HSET', key, 'answered', tostring(now))
  if left then
    -- Less every other send so far: the other processes' first sends may come after.
    local others = seq - (tonumber(q[2]) or 0) - 1
    redis.call('HSET', key, 'credit', math.max(0, math.floor(left) - others))
  end
elseif left and q[3] and not q[4] then
  -- Until a rate is known, a later answer's quota, less the sends after it.
  redis.call('HSET', key, 'credit', math.max(0, math.floor(left) - (seq - tonumber(ARGV[7]))))
end
local rate = tonumber(ARGV[1])
if not rate then return 1 end
local old = tonumber(q[4])
local burst = tonumber(ARGV[2])
if old then
  rate = old + tonumber(ARGV[4]) * (rate - old)
else
  -- The sends before it may have spent the quota: the burst builds up from now.
  redis.call('HSET', key, 'tat', tostring(math.max(tonumber(q[5]) or 0, now + burst / rate)))
  redis.call('HINCRBY', key, 'version', 1)
end
redis.call('HSET', key, 'hint_rate', tostring(rate), 'burst', ARGV[2])
return 1
"""


def shared_key(base_url: str, token: str) -> str:
    """The Redis key of the pacer every client of *token* on *base_url* shares.

    A hash of both, never the token itself: anyone who can read Redis learns nothing.
    """
    digest = hashlib.sha256(f"{base_url}\n{token}".encode()).hexdigest()
    return f"kirim-async:pacer:{digest[:32]}"


def check_redis_url(url: object, field: str = "redis_url") -> str:
    """Return *url* if it is a Redis URL and the ``redis`` extra is installed.

    Raises:
        InvalidParameterError: Not a string, a scheme other than ``redis://``,
            ``rediss://`` or ``unix://``, or redis-py missing (the message says which
            ``pip install`` fixes it). The URL's password is never shown.
    """
    if not isinstance(url, str) or not url:
        raise InvalidParameterError(field, "must be a redis://, rediss:// or unix:// URL", url)
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        shown = f"{parts.scheme}://..." if parts.scheme else "(no scheme)"
        raise InvalidParameterError(
            field, f"must be a redis://, rediss:// or unix:// URL, not {shown}", None
        )
    try:
        connection = importlib.import_module("redis.asyncio.connection")
    except ImportError:
        raise InvalidParameterError(
            field, f"needs the redis extra, which is not installed: {_INSTALL}", None
        ) from None
    try:
        connection.parse_url(url)
    except ValueError as error:  # redis-py's message may quote the URL: not shown
        raise InvalidParameterError(
            field, f"is not a URL redis-py can use ({type(error).__name__})", None
        ) from None
    return url


@attrs.frozen
class _SharedPace:
    """The shared pace's parameters, as a turn read them (Redis's clock)."""

    cut_rate: float | None
    cut_at: float
    probe: float
    cheap: bool
    limited_at: float
    hint_rate: float | None
    hint_scale: float

    @classmethod
    def read(cls, *fields: float | None) -> _SharedPace | None:
        cut_rate, cut_at, probe, cheap, limited_at, hint_rate, hint_scale = fields
        if cut_rate is None and hint_rate is None:
            return None
        return cls(
            cut_rate,
            cut_at or 0.0,
            probe or 0.0,
            bool(cheap),
            limited_at or 0.0,
            hint_rate,
            1.0 if hint_scale is None else hint_scale,
        )

    def at(self, now: float) -> float:
        """The pace at *now*: the hints' (scaled), or the cut's, probing upwards.

        After a blind cut the pace doubles each second until the next congestion event
        (TCP's slow start: the rate is unknown, and the event that ends it measures it);
        after a measured one it creeps up. The local gate climbs back to the best second
        the server admitted instead; counting every answer of every process in Redis
        would cost a round trip each, so the shared pacer does without that floor.
        """
        if self.hint_rate is not None:
            return max(MIN_RATE, self.hint_rate * self.hint_scale)
        assert self.cut_rate is not None  # noqa: S101 - one of the two is set
        return probed_rate(
            self.cut_rate,
            # The cut's own rate until the reopening: turns reserved during a closing
            # went at the pace of then, which a slow start's doubling had run back to
            # half (a second's closing), the phase at half the pace for 0.2 s.
            max(0.0, now - self.cut_at),
            self.probe,
            quiet=now - self.limited_at,
            cheap=self.cheap,
            peak=math.inf if self.is_climbing else 0.0,
        )

    @property
    def is_climbing(self) -> bool:
        """Whether the pace is in a slow start (after a blind cut), doubling each second."""
        return self.hint_rate is None and self.probe == PROBE_PER_SECOND

    @property
    def probes_a_window(self) -> bool:
        """Whether the pace probes up from a window's reading: the 429 it meets bounds it."""
        return self.hint_rate is None and self.probe == WINDOW_PROBE_PER_SECOND


@attrs.frozen
class _SharedTicket:
    epoch: int
    seq: int
    sent_at: float


@attrs.frozen
class _LocalTicket:
    gate: RateGate
    inner: Ticket


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@attrs.define
class RedisPacer:
    """A pacer whose state lives in Redis, shared by every process with the same key.

    See the module documentation for the algorithm. Built by :class:`KirimClient` from
    its ``redis_url`` (or ``KIRIM_REDIS_URL``); the client closes it.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` (redis-py's URL forms).
        key: The hash's key: :func:`shared_key` of the base URL and token.
        sleep: Awaited to wait.
        clock: Monotonic seconds (the local fallback's clock, and for rejoining).
        wall_clock: Unix time, to read a hint's Unix-time reset.
        backoff: Starts a series of exponential waits, for 429s without ``Retry-After``.
        idle_expiry: Seconds without a turn before the shared state is dropped.
        timeout: Seconds a Redis command may take before the pacer falls back.
        field: The option *url* came from, for errors (``redis_url``, ``KIRIM_REDIS_URL``).

    Raises:
        InvalidParameterError: *url* is not a Redis URL, or the ``redis`` extra is missing.
    """

    url: str = attrs.field(repr=lambda url: repr(masked(url)))
    key: str
    sleep: Callable[[float], Awaitable[None]] = attrs.field(repr=False)
    clock: Callable[[], float] = attrs.field(repr=False)
    wall_clock: Callable[[], float] = attrs.field(repr=False)
    backoff: Callable[[], Iterator[float]] = attrs.field(repr=False)
    idle_expiry: float = 60.0
    timeout: float = 0.5
    field: str = attrs.field(default="redis_url", repr=False)
    """The option the URL came from, named by an error about it."""

    rate_limited_count: int = attrs.field(default=0, init=False)
    """429 answers met by this process."""
    _redis: Redis | None = attrs.field(default=None, init=False, repr=False)
    _scripts: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False)
    _pace: _SharedPace | None = attrs.field(default=None, init=False, repr=False)
    """The shared pace as the last turn read it."""
    _version: int = attrs.field(default=0, init=False, repr=False)
    """The version of the shared pace ``_pace`` is (each cut makes a new one)."""
    _offset: float = attrs.field(default=0.0, init=False, repr=False)
    """Redis's clock less ours, as the last turn read it."""
    _local: RateGate | None = attrs.field(default=None, init=False, repr=False)
    _rejoin_at: float = attrs.field(default=0.0, init=False, repr=False)
    _rejoin_wait: float = attrs.field(default=_REJOIN_FIRST, init=False, repr=False)
    _failed_at: float = attrs.field(default=0.0, init=False, repr=False)
    _own_sends: int = attrs.field(default=0, init=False, repr=False)
    _first_seq: int | None = attrs.field(default=None, init=False, repr=False)
    _last_seq: int = attrs.field(default=0, init=False, repr=False)
    _probe: _SharedTicket | None = attrs.field(default=None, init=False, repr=False)
    """This process's first send to a fresh shared state, until answered."""
    _probe_until: float = attrs.field(default=0.0, init=False, repr=False)
    """When this process stops holding its other turns for ``_probe``'s answer."""
    _holding: int = attrs.field(default=0, init=False, repr=False)
    """Turns of this process waiting in a hold (for a first answer, or for a rate)."""
    _news: asyncio.Event = attrs.field(factory=asyncio.Event, init=False, repr=False)
    """Set (and replaced) when this process has shared an answer: held turns ask again."""
    _waits: Iterator[float] | None = attrs.field(default=None, init=False, repr=False)
    _waited_epoch: int = attrs.field(default=-1, init=False, repr=False)
    """The last congestion event (epoch) this process drew a backoff for."""
    _counted_epoch: int = attrs.field(default=-1, init=False, repr=False)
    """The epoch whose answers this process counts, and those counts (see ``is_sparse``)."""
    _counted_answers: int = attrs.field(default=0, init=False, repr=False)
    _counted_limited: int = attrs.field(default=0, init=False, repr=False)
    _hints: HintReader = attrs.field(
        factory=lambda: HintReader(min_used=_SHARED_USED), init=False, repr=False
    )
    _shared_hint: float = attrs.field(default=0.0, init=False, repr=False)
    _tasks: set[asyncio.Task[None]] = attrs.field(factory=set, init=False, repr=False)
    _failures: tuple[type[BaseException], ...] = attrs.field(
        default=(OSError, asyncio.TimeoutError), init=False, repr=False
    )
    """What a failing Redis raises: redis-py's errors join once it is imported."""

    def __attrs_post_init__(self) -> None:
        check_redis_url(self.url, self.field)

    @property
    def is_shared(self) -> bool:
        """Whether turns come from Redis now (False while falling back to a local gate)."""
        return self._local is None

    @property
    def rate(self) -> float | None:
        """The shared pace now (requests a second), or None when not pacing."""
        if self._local is not None:
            return self._local.rate
        pace = self._pace
        if pace is None:
            return None
        return pace.at(self.clock() + self._offset)

    def try_turn(self) -> Ticket | None:
        """Never: every turn asks Redis (a closing may have come from another process)."""
        return None

    async def turn(self) -> Ticket:
        """Wait for this process's turn in the shared schedule; fall back if Redis fails."""
        local = self._local
        if local is not None and self.clock() < self._rejoin_at:
            return _LocalTicket(local, await local.turn())
        confirm = ""
        version = 0  # of the pace a slot to confirm was reserved at
        held_out = False
        try:
            while True:
                rate = self.rate
                reply = await self._run(
                    "turn",
                    confirm,
                    self._expiry_ms(),
                    "" if rate is None else repr(rate),
                    version if confirm else self._version,
                    repr(_FIRST_HOLD),
                    "1" if self._probing() else "0",
                    "1" if held_out else "0",
                )
                kind, now = _text(reply[0]), float(_text(reply[1]))
                self._read_pace(now, reply[5:])
                if kind == "stale":  # a cut came: reserve again at the new pace
                    confirm = ""
                    continue
                if kind == "go":
                    ticket = _SharedTicket(int(_text(reply[2])), int(_text(reply[3])), now)
                    self._rejoined()
                    self._count(ticket)
                    if not reply[4] and self._pace is None and self._probe is None:
                        # A fresh state (a first job, an expiry, a restart): its answer is
                        # the first contact's, and the hints are shared anew.
                        self._probe = ticket
                        self._probe_until = self.clock() + _FIRST_HOLD
                        self._shared_hint = 0.0
                    return ticket
                if kind == "hold":
                    until = float(_text(reply[2])) - now + self.clock()
                    if self._probe is not None:
                        until = min(until, self._probe_until)
                    held_out = not await self._hold(until - self.clock())
                    continue
                # Its own version: another turn may read a newer pace while this one
                # sleeps, and a slot reserved at the old one must be asked again.
                confirm, version = _text(reply[2]), self._version
                await self.sleep(float(confirm) - now)
        except self._failures as error:
            gate = self._fall_back(error)
        return _LocalTicket(gate, await gate.turn())

    def learn(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer: any but a 429 ends a run of backoffs; hints are shared."""
        if isinstance(ticket, _LocalTicket):
            ticket.gate.learn(ticket.inner, status, headers)
            return
        if status == 429:
            self.rate_limited_count += 1
        else:
            self._waits = None
        self._count_answer(ticket, limited=status == 429)
        hint = self._hints.read(headers, self.wall_clock())
        probe = self._probe
        if probe is not None and ticket is probe:  # a first send of a fresh shared state
            self._tell(probe, hint, read_quota(headers), first=True)
        elif self._holding and self._pace is None and (left := read_quota(headers) or 0) >= 1:
            # Turns wait for a rate, and the quota is spent: what this answer shows left
            # may let them go (a quota spent slowly refills, and shows too few used for
            # a sample of the rate).
            self._tell(ticket, hint, left, first=False)
        elif hint is not None:
            self._share_hint(ticket, hint)

    def _count_answer(self, ticket: _SharedTicket, *, limited: bool) -> None:
        """Count an answer to a send of the latest epoch this process has seen."""
        if ticket.epoch > self._counted_epoch:
            self._counted_epoch = ticket.epoch
            self._counted_answers = self._counted_limited = 0
        if ticket.epoch == self._counted_epoch:
            self._counted_answers += 1
            self._counted_limited += limited

    def _is_sparse(self, ticket: _SharedTicket) -> bool:
        """Whether a 429 soon after the last cut is that event still (see ``is_sparse``).

        Judged from this process's own answers since the cut: counting every process's
        in Redis would cost each answer a round trip.
        """
        pace = self._pace
        if pace is None or pace.hint_rate is not None or pace.is_climbing:
            return False
        if ticket.epoch != self._counted_epoch:
            return False
        since_cut = ticket.sent_at - pace.cut_at
        return is_sparse(since_cut, self._counted_limited, self._counted_answers)

    def rate_limited(self, ticket: Ticket, error: RateLimitError) -> float:
        """Close the shared gate for a 429 (in the background); return the wait it names."""
        if isinstance(ticket, _LocalTicket):
            return ticket.gate.rate_limited(ticket.inner, error)
        named = error.named_wait  # Retry-After, else the hints' reset of a spent quota
        wait = named
        if wait is None and ticket.epoch == self._waited_epoch:
            # The same congestion event: its closing stands (the 429s of a burst in
            # flight each drew the next backoff, and one burst closed all for 8 s). Not
            # an older one's: a shared state that expired counts its epochs anew.
            wait = 0.0
        elif wait is None:
            self._waited_epoch = ticket.epoch
            if self._waits is None:
                self._waits = self.backoff()
            wait = next(self._waits)
        sparse = self._is_sparse(ticket)
        self._background(self._limited(ticket, wait, asked=named is not None, sparse=sparse))
        return wait

    async def aclose(self) -> None:
        """Finish what is being written to Redis, then close the connection. Safe to repeat."""
        while self._tasks:
            await asyncio.gather(*self._tasks)
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    async def _run(self, script: str, *args: object) -> Any:
        if self._redis is None:
            from redis.asyncio import Redis  # noqa: PLC0415 - the optional extra
            from redis.asyncio.retry import Retry  # noqa: PLC0415
            from redis.backoff import NoBackoff  # noqa: PLC0415
            from redis.exceptions import RedisError  # noqa: PLC0415

            self._failures = (RedisError, OSError, asyncio.TimeoutError)

            client = Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 1),  # once, for a connection a restart broke
            )
            self._redis = client
            self._scripts = {
                "turn": client.register_script(_TURN),
                "limited": client.register_script(_LIMITED),
                "set_pace": client.register_script(_SET_PACE),
                "hint": client.register_script(_HINT),
            }
        return await self._scripts[script](keys=[self.key], args=list(args))

    def _expiry_ms(self) -> int:
        return max(1, round(self.idle_expiry * 1000))

    def _count(self, ticket: _SharedTicket) -> None:
        self._own_sends += 1
        if self._first_seq is None:
            self._first_seq = ticket.seq
        self._last_seq = ticket.seq

    def _probing(self) -> bool:
        """Whether this process's first send of a fresh state is out, and not for long."""
        return self._probe is not None and self.clock() < self._probe_until

    async def _hold(self, seconds: float) -> bool:
        """Wait *seconds*, or less if this process shares an answer first (then True)."""
        news = asyncio.ensure_future(self._news.wait())
        slept = asyncio.ensure_future(self.sleep(seconds))
        self._holding += 1
        try:
            await asyncio.wait((news, slept), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._holding -= 1
            for task in (news, slept):
                task.cancel()
            await asyncio.gather(news, slept, return_exceptions=True)
        return news.done() and not news.cancelled()

    def _read_pace(self, now: float, fields: list[bytes | None]) -> None:
        """Take the shared pace a turn read, and how Redis's clock stands to ours."""
        self._offset = now - self.clock()
        values = [None if field is None else float(field) for field in fields]
        self._pace = _SharedPace.read(*values[:7])
        self._version = int(values[7] or 0)  # the epoch, last, is the ticket's

    def _share(self) -> float:
        """This process's share of the shared sends it has seen go out."""
        if self._first_seq is None:
            return 1.0
        seen = self._last_seq - self._first_seq + 1
        return max(_MIN_SHARE, min(1.0, self._own_sends / seen))

    def _background(self, writing: Awaitable[None]) -> None:
        task = asyncio.ensure_future(writing)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _limited(
        self, ticket: _SharedTicket, wait: float, *, asked: bool, sparse: bool
    ) -> None:
        try:
            reply = await self._run(
                "limited",
                ticket.epoch,
                ticket.seq,
                repr(ticket.sent_at),
                repr(wait),
                MIN_SENDS,
                self._expiry_ms(),
                "1" if sparse else "0",
            )
            if _text(reply[0]) == "cut":
                await self._cut(ticket, [_text(part) for part in reply[1:]], wait, asked=asked)
        except self._failures as error:
            self._fall_back(error)

    async def _cut(
        self, ticket: _SharedTicket, snapshot: list[str], wait: float, *, asked: bool
    ) -> None:
        """Compute the pace after a congestion event this process owns, and share it."""
        epoch, now, sent, since_first = snapshot[:4]
        admitted, phase, pause, first_admitted, first_phase = snapshot[4:]
        expiry = self._expiry_ms()
        pace = self._pace
        if pace is not None and pace.hint_rate is not None:
            # The hints promised more than the server gave: pace under them.
            under = max(_MIN_HINT_SCALE, pace.hint_scale * MEASURED_MARGIN)
            await self._run("set_pace", epoch, "hint", repr(under), "", "", expiry)
            logger.debug("shared pace under the hints: %.1f requests/s", pace.hint_rate * under)
            return
        estimate: Estimate | None = None
        if pace is None:  # the first cut: of the send rate measured so far
            current = send_rate(int(sent), float(since_first))
        else:
            current = pace.at(float(now))
            end = ticket.sent_at
            start = end - float(phase)
            ramp = bound = None
            if pace.is_climbing:
                # A slow start wasted refill while under the limit: its pace tells how much.
                ramp = Ramp.of(pace.at, start, end)
            else:  # the pace that bounds a window, as the local gate's
                bound = pace.at(bound_at(end, float(first_phase), float(pause), start))
            estimate = estimate_rate(
                int(admitted),
                float(phase),
                (int(first_admitted), float(first_phase)),
                float(pause),
                pace=bound,
                probed=pace.probes_a_window,
                ramp=ramp,
            )
        if estimate is None:  # halve, then the slow start finds the rate (TCP's way)
            rate, probe = _SLOW_START_CUT * current, PROBE_PER_SECOND
        else:
            rate, probe = cut_to(current, estimate, wait)
        rate = max(MIN_RATE, rate)
        cheap = "1" if is_cheap(wait, asked=asked) else "0"
        await self._run("set_pace", epoch, "cut", repr(rate), repr(probe), cheap, expiry)
        logger.debug(
            "shared pace cut to %.1f requests/s: %s (this phase: %s admitted in %ss)",
            rate,
            "nothing measured" if estimate is None else "measured",
            admitted,
            phase,
        )

    def _share_hint(self, ticket: _SharedTicket, hint: Hint) -> None:
        rate = max(hint.rate, MIN_RATE)
        if abs(rate - self._shared_hint) > _HINT_MOVE * self._shared_hint:
            self._tell(ticket, hint, None, first=False)

    def _tell(
        self, ticket: _SharedTicket, hint: Hint | None, left: float | None, *, first: bool
    ) -> None:
        """Share a hint of the rate, or the first send's answer (ending the hold)."""
        rate = ""
        if hint is not None:
            self._shared_hint = max(hint.rate, MIN_RATE)
            shared = max(hint.rate * (1.0 if hint.is_stated else _HINT_MARGIN), MIN_RATE)
            logger.debug("shared pace from the hints: %.1f requests/s", shared)
            rate = repr(shared)
        burst = 1.0 if hint is None else max(1.0, hint.limit)
        weight = 1.0 if hint is None or hint.is_stated else _HINT_WEIGHT
        args = [rate, repr(burst), self._expiry_ms(), repr(weight), "1" if first else "0"]
        args += ["" if left is None else repr(left), ticket.seq]
        self._background(self._write_hint(args, first=first))

    async def _write_hint(self, args: list[object], *, first: bool) -> None:
        try:
            await self._run("hint", *args)
        except self._failures as error:
            self._fall_back(error)
        finally:
            if first:  # only now: until the answer is shared, the other turns wait
                self._probe = None
            news, self._news = self._news, asyncio.Event()
            news.set()

    def _fall_back(self, error: BaseException) -> RateGate:
        """Go on through a local gate (the one already in use, if any); return it."""
        now = self.clock()
        if self._local is not None:
            if now >= self._rejoin_at:  # a try to rejoin failed (not a call already out)
                if now - self._failed_at >= _REJOIN_STEADY:
                    self._rejoin_wait = min(_REJOIN_LAST, 2 * self._rejoin_wait)
                self._rejoin_at = now + self._rejoin_wait
            return self._local
        shared = self.rate
        cap = None if shared is None else max(MIN_RATE, shared * self._share())
        self._local = RateGate(self.sleep, self.clock, self.wall_clock, self.backoff, cap)
        self._rejoin_wait = _REJOIN_FIRST
        self._rejoin_at = now + self._rejoin_wait
        self._failed_at = now
        reason = type(error).__name__
        logger.warning(
            "Redis pacer at %s failed (%s): pacing locally%s until it answers again",
            masked(self.url),
            reason,
            "" if cap is None else f" at {cap:.1f} requests/s (this process's share)",
        )
        return self._local

    def _rejoined(self) -> None:
        if self._local is None:
            return
        self._local = None
        self._rejoin_wait = _REJOIN_FIRST
        logger.info("Redis pacer at %s answers again: pacing is shared again", masked(self.url))
