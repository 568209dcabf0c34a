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
  ``tat`` on by one interval. A process that must wait reserves its slot and sleeps
  until it (no polling); waking, it confirms the slot in one more call, which re-reserves
  only if a closing came since.
- **The pace.** Unpaced until the first congestion event. Every send carries the shared
  *epoch*; a 429 for a send of the current epoch is a new event: the script advances the
  epoch (so the 429s of sends already in flight, in any process, cut nothing more) and
  hands that process what it needs to measure: the sends, their times, the phase since
  the last cut. It computes the new pace with the same rules as the local gate
  (:mod:`kirim_async.pacing._measure`: a blind cut, or the limiter's rate measured from
  two phases, a little under it) and writes it back, only if no later event came first.
  Between cuts the pace grows linearly (the probe), computed in the turn script.
- **Hints.** A process that reads a hint stating a rate (the IETF policy, or the median
  of ``X-RateLimit-*`` samples) writes it when it moves by more than 5 %: it paces
  everyone, with the quota as burst; each congestion event despite it paces 3 % under.

What the local gate does beyond this, it does not do here: its admitted-rate floor and
its fast probing after quiet need every answer counted, which would cost each request a
second round trip. Instead the hash **expires** after ``idle_expiry`` seconds without a
turn, so a pace guessed for one job is not the next one's: it re-learns.

**When Redis fails** (not reachable, a timeout, a restart), no call fails for it: the
pacer logs one warning and goes on through a local gate capped at this process's share
of the last shared pace (its share of the sends it saw), and tries Redis again after
1 s, then 2 s, up to 30 s. When Redis answers again it rejoins (one info line) and the
local gate is dropped. A restarted Redis has lost the state: the processes re-learn.

The key is ``kirim-async:pacer:`` and a SHA-256 of the base URL and token: the same
token on the same API shares a pacer; the token is never in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from .._config import masked
from ..errors import InvalidParameterError, RateLimitError
from ._gate import RateGate
from ._measure import (
    MEASURED_MARGIN,
    MIN_RATE,
    MIN_SENDS,
    BadHint,
    Hint,
    cut_to,
    estimate_rate,
    read_hint,
)
from ._protocol import Ticket

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["REDIS_SCHEMES", "RedisPacer", "check_redis_url", "shared_key"]

logger = logging.getLogger("kirim_async")

REDIS_SCHEMES = ("redis", "rediss", "unix")
_INSTALL = "pip install 'kirim-async[redis]'"
_HINT_MOVE = 0.05  # a hint rate is shared again when it moves by more than this share
_HINT_SAMPLES = 5
_REJOIN_FIRST = 1.0  # seconds to the first try to rejoin Redis; doubled up to the last
_REJOIN_LAST = 30.0
_MIN_HINT_SCALE = 0.5  # 429s despite the hints pace at least half what they say
_MIN_SHARE = 0.05  # a process's share of the pace, falling back, is at least this

# KEYS[1]: the hash. ARGV: the slot to confirm ('' for none), the expiry in ms.
# Returns {'go', epoch, seq, now, rate} or {'wait', slot, now, rate}; numbers as
# strings (Lua numbers returned to Redis lose their fraction).
_TURN = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local f = redis.call('HMGET', key, 'open_at', 'tat', 'hint_rate', 'cut_rate', 'cut_at',
                     'probe', 'burst', 'epoch', 'hint_scale')
local open_at = tonumber(f[1]) or 0
local tat = tonumber(f[2]) or 0
local rate = tonumber(f[3])
if rate then
  rate = rate * (tonumber(f[9]) or 1)
elseif f[4] then
  rate = tonumber(f[4]) * (1 + tonumber(f[6]) * math.max(0, now - tonumber(f[5])))
end
local confirm = tonumber(ARGV[1])
if not (confirm and open_at <= confirm) then
  local slot = math.max(now, open_at)
  if rate then
    local interval = 1 / rate
    slot = math.max(slot, tat - ((tonumber(f[7]) or 1) - 1) * interval)
    redis.call('HSET', key, 'tat', tostring(math.max(tat, slot) + interval))
  end
  if slot > now then
    redis.call('PEXPIRE', key, ARGV[2])
    return {'wait', tostring(slot), tostring(now), tostring(rate or 0)}
  end
end
local seq = redis.call('HINCRBY', key, 'seq', 1)
if redis.call('HSETNX', key, 'first_at', tostring(now)) == 1 then
  redis.call('HSET', key, 'base', seq - 1)
end
redis.call('PEXPIRE', key, ARGV[2])
return {'go', tostring(f[8] or 0), tostring(seq), tostring(now), tostring(rate or 0)}
"""

# A 429. ARGV: the ticket's epoch, seq and send time; the wait; the sends an unpaced
# first cut needs; the expiry in ms. Returns {'closed'} or, for a new congestion event,
# {'cut', epoch, now, sent since the first send, seconds since it, current rate or '',
#  phase admitted, phase seconds, pause, first phase admitted, first phase seconds,
#  hint rate or '', hint scale}.
_LIMITED = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = tonumber(ARGV[4])
local f = redis.call('HMGET', key, 'open_at', 'epoch', 'seq', 'base', 'first_at', 'hint_rate',
                     'cut_rate', 'cut_at', 'probe', 'phase_seq', 'phase_start', 'phase_pause',
                     'first_admitted', 'first_phase', 'hint_scale')
local open_at = math.max(tonumber(f[1]) or 0, now + wait)
redis.call('HSET', key, 'open_at', tostring(open_at))
redis.call('PEXPIRE', key, ARGV[6])
local epoch = tonumber(f[2]) or 0
local seq = tonumber(ARGV[2])
local sent_at = tonumber(ARGV[3])
local paced = f[6] or f[7]
if tonumber(ARGV[1]) < epoch then return {'closed'} end
local base = tonumber(f[4]) or 0
if not paced and seq - base < tonumber(ARGV[5]) then return {'closed'} end
local first_at = tonumber(f[5]) or sent_at
local current = ''
if f[7] then
  current = tostring(tonumber(f[7]) * (1 + tonumber(f[9]) * math.max(0, now - tonumber(f[8]))))
end
local phase_seq = tonumber(f[10]) or base
local phase_start = tonumber(f[11]) or first_at
local start = math.max(now, open_at)
redis.call('HSET', key, 'epoch', epoch + 1, 'phase_seq', tonumber(f[3]) or seq,
           'phase_start', tostring(start), 'phase_pause', tostring(start - now))
return {'cut', tostring(epoch + 1), tostring(now), tostring(seq - base),
        tostring(now - first_at), current, tostring(seq - 1 - phase_seq),
        tostring(sent_at - phase_start), f[12] or '0', f[13] or '0', f[14] or '0',
        f[6] or '', f[15] or '1'}
"""

# The pace after a cut, written only if no later event came first. ARGV: the event's
# epoch; 'hint' and the scale of the hints' rate, or 'cut', the rate and the probe; the
# first phase (admitted, seconds) or ''; the expiry in ms.
_SET_PACE = """
local key = KEYS[1]
if tonumber(redis.call('HGET', key, 'epoch') or 0) ~= tonumber(ARGV[1]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[2] == 'hint' then
  redis.call('HSET', key, 'hint_scale', ARGV[3])
else
  redis.call('HSET', key, 'cut_rate', ARGV[3], 'probe', ARGV[4], 'cut_at', tostring(now),
             'burst', '2')
  if ARGV[5] ~= '' then
    redis.call('HSET', key, 'first_admitted', ARGV[5], 'first_phase', ARGV[6])
  end
end
redis.call('PEXPIRE', key, ARGV[7])
return 1
"""

# A hint that states a rate. ARGV: the rate, the burst, the expiry in ms.
_HINT = """
redis.call('HSET', KEYS[1], 'hint_rate', ARGV[1], 'burst', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
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
    _rate: float | None = attrs.field(default=None, init=False, repr=False)
    _local: RateGate | None = attrs.field(default=None, init=False, repr=False)
    _rejoin_at: float = attrs.field(default=0.0, init=False, repr=False)
    _rejoin_wait: float = attrs.field(default=_REJOIN_FIRST, init=False, repr=False)
    _own_sends: int = attrs.field(default=0, init=False, repr=False)
    _first_seq: int | None = attrs.field(default=None, init=False, repr=False)
    _last_seq: int = attrs.field(default=0, init=False, repr=False)
    _waits: Iterator[float] | None = attrs.field(default=None, init=False, repr=False)
    _hint_samples: list[float] = attrs.field(factory=list, init=False, repr=False)
    _shared_hint: float = attrs.field(default=0.0, init=False, repr=False)
    _bad_hints: int = attrs.field(default=0, init=False, repr=False)
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
        """The shared pace last seen (requests a second), or None when not pacing."""
        if self._local is not None:
            return self._local.rate
        return self._rate

    def try_turn(self) -> Ticket | None:
        """Never: every turn asks Redis (a closing may have come from another process)."""
        return None

    async def turn(self) -> Ticket:
        """Wait for this process's turn in the shared schedule; fall back if Redis fails."""
        local = self._local
        if local is not None and self.clock() < self._rejoin_at:
            return _LocalTicket(local, await local.turn())
        confirm = ""
        try:
            while True:
                reply = await self._run("turn", confirm, self._expiry_ms())
                if _text(reply[0]) == "go":
                    ticket = _SharedTicket(
                        int(_text(reply[1])), int(_text(reply[2])), float(_text(reply[3]))
                    )
                    self._rejoined()
                    self._count(ticket.seq, float(_text(reply[4])))
                    return ticket
                confirm = _text(reply[1])
                self._rate = float(_text(reply[3])) or None
                await self.sleep(float(confirm) - float(_text(reply[2])))
        except self._failures as error:
            self._fall_back(error)
        gate = self._local_gate()
        return _LocalTicket(gate, await gate.turn())

    def learn(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer: a 429 ends no run here; hints are shared when they move."""
        if isinstance(ticket, _LocalTicket):
            ticket.gate.learn(ticket.inner, status, headers)
            return
        if status == 429:
            self.rate_limited_count += 1
        else:
            self._waits = None
        hint = read_hint(headers, self.wall_clock())
        if isinstance(hint, Hint):
            self._share_hint(hint)
        elif isinstance(hint, BadHint):
            self._bad_hints += 1
            if self._bad_hints == 1:
                logger.debug(
                    "rate-limit hint ignored: %s %r cannot be true", hint.header, hint.value
                )

    def rate_limited(self, ticket: Ticket, error: RateLimitError) -> float:
        """Close the shared gate for a 429 (in the background); return the wait it names."""
        if isinstance(ticket, _LocalTicket):
            return ticket.gate.rate_limited(ticket.inner, error)
        wait = error.retry_after
        if wait is None:
            if self._waits is None:
                self._waits = self.backoff()
            wait = next(self._waits)
        self._background(self._limited(ticket, wait, asked=error.retry_after is not None))
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

    def _count(self, seq: int, rate: float) -> None:
        self._own_sends += 1
        if self._first_seq is None:
            self._first_seq = seq
        self._last_seq = seq
        self._rate = rate or None

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

    async def _limited(self, ticket: _SharedTicket, wait: float, *, asked: bool) -> None:
        try:
            reply = await self._run(
                "limited",
                ticket.epoch,
                ticket.seq,
                repr(ticket.sent_at),
                repr(wait),
                MIN_SENDS,
                self._expiry_ms(),
            )
            if _text(reply[0]) == "cut":
                await self._cut([_text(part) for part in reply[1:]], wait)
        except self._failures as error:
            self._fall_back(error)

    async def _cut(self, snapshot: list[str], wait: float) -> None:
        """Compute the pace after a congestion event this process owns, and share it."""
        epoch, _now, sent, since_first, current_text = snapshot[:5]
        admitted, phase, pause, first_admitted, first_phase, hint_text, scale = snapshot[5:]
        expiry = self._expiry_ms()
        if hint_text:  # the hints promised more than the server gave: pace under them
            under = max(_MIN_HINT_SCALE, float(scale) * MEASURED_MARGIN)
            await self._run("set_pace", epoch, "hint", repr(under), "", "", "", expiry)
            logger.debug(
                "shared pace under the hints, cut to %.1f requests/s", float(hint_text) * under
            )
            return
        first = ""
        if current_text:
            estimate = estimate_rate(
                int(admitted),
                float(phase),
                (int(first_admitted), float(first_phase)),
                float(pause),
            )
            rate, probe = cut_to(float(current_text), estimate, wait)
        else:  # the first cut: of the send rate measured so far
            elapsed = float(since_first)
            current = int(sent) / elapsed if elapsed > 0 else float(sent)
            estimate = None
            rate, probe = cut_to(current, None, wait)
            first = admitted
        rate = max(MIN_RATE, rate)
        await self._run("set_pace", epoch, "cut", repr(rate), repr(probe), first, phase, expiry)
        logger.debug(
            "shared pace cut to %.1f requests/s: %s (this phase: %s admitted in %ss)",
            rate,
            "nothing measured" if estimate is None else "measured",
            admitted,
            phase,
        )

    def _share_hint(self, hint: Hint) -> None:
        rate = hint.rate
        if not hint.is_stated:  # one answer's counters are a noisy sample: the median
            self._hint_samples.append(rate)
            del self._hint_samples[:-_HINT_SAMPLES]
            rate = sorted(self._hint_samples)[len(self._hint_samples) // 2]
        rate = max(rate, MIN_RATE)
        if abs(rate - self._shared_hint) <= _HINT_MOVE * self._shared_hint:
            return
        self._shared_hint = rate
        self._background(self._write_hint(rate, max(1.0, hint.limit)))

    async def _write_hint(self, rate: float, burst: float) -> None:
        try:
            await self._run("hint", repr(rate), repr(burst), self._expiry_ms())
        except self._failures as error:
            self._fall_back(error)

    def _local_gate(self) -> RateGate:
        assert self._local is not None  # noqa: S101 - set by _fall_back before
        return self._local

    def _fall_back(self, error: BaseException) -> None:
        now = self.clock()
        if self._local is not None:
            if now >= self._rejoin_at:  # a try to rejoin failed (not a call already out)
                self._rejoin_wait = min(_REJOIN_LAST, 2 * self._rejoin_wait)
                self._rejoin_at = now + self._rejoin_wait
            return
        shared = self._rate
        cap = None if shared is None else max(MIN_RATE, shared * self._share())
        self._local = RateGate(self.sleep, self.clock, self.wall_clock, self.backoff, cap)
        self._rejoin_wait = _REJOIN_FIRST
        self._rejoin_at = now + self._rejoin_wait
        reason = type(error).__name__
        logger.warning(
            "Redis pacer at %s failed (%s): pacing locally%s until it answers again",
            masked(self.url),
            reason,
            "" if cap is None else f" at {cap:.1f} requests/s (this process's share)",
        )

    def _rejoined(self) -> None:
        if self._local is None:
            return
        self._local = None
        self._rejoin_wait = _REJOIN_FIRST
        logger.info("Redis pacer at %s answers again: pacing is shared again", masked(self.url))
