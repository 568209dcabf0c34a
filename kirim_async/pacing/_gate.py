"""RateGate, the pacer every request of a client waits its turn at: single calls and jobs.

Every request waits its turn at the gate before it is sent. A 429 closes the gate until
its ``Retry-After`` deadline (never earlier: jitter only adds), so a rate limit pauses
every call of the client once instead of waking N sleeping callers together. Between 429s the gate
paces sends ahead of time, at a rate it learns:

- **Hints.** When answers carry hint headers, the gate mirrors the server's quota: its
  rate is the quota used over the time to restore it, its capacity the limit. It reads
  ``X-RateLimit-Limit/Remaining/Reset`` (``Reset`` as seconds, or as a Unix time when
  it is one, as GitHub sends it), Discord's ``X-RateLimit-Reset-After``, and the IETF
  draft's ``RateLimit-Policy: "p";q=Q;w=W`` (Q requests per W seconds) with
  ``RateLimit: "p";r=R;t=T`` (its earlier ``RateLimit-Limit/Remaining/Reset`` read as
  ``X-RateLimit-*``). A 429 without ``Retry-After`` whose hints show the quota spent
  closes the gate until their reset (GitHub's primary limit answers so). A hint that
  cannot be true (a reset in the past or more than a day away, epoch milliseconds,
  NaN, a negative count) is ignored and logged once. A 429 always wins over a hint:
  each congestion event that comes despite them paces 3 % further under what they say.
- **Without hints**, it paces additive-increase/multiplicative-decrease: a 429 cuts the
  send rate to 70 % of what it was (the first cut: of the rate measured so far), and the
  rate grows back linearly, 10 % of the cut rate per second, to probe for more. When
  each 429 costs a long pause (an integer ``Retry-After``), a blind cut goes to 10 % and
  the pace then doubles each second from the reopening until the next 429 (TCP's slow
  start): fewer 429s to the right pace, whatever the first sends' rate was. A slow
  start that began far over a low rate ends within a tenth of a second: a refill read
  from so few sends past the burst (under 40) is off by 5 % or more (a bucket's
  fractional token), so the pace climbs once more, from under it, and the ramp reads
  the rate: one more closing costs less than a job paced 10 % under.
- **Measured, not only cut.** A phase runs from the gate's reopening (its first send)
  to the first send refused. After a pause that restored the quota, a token bucket's
  phase admits its burst and then its rate, ``A = B + R t``: two phases give R (TCP
  BBR's way of measuring a policer). A slow start that climbed from under R wasted
  refill while the bucket was full, ``W(R)``, which its pace tells (``Ramp``): then
  ``A = B + R t - W(R)``. A window's quota comes back whole instead, so a paced
  phase admits a quota whatever its length: when the bucket's reading is under the
  quota per cycle of the first phase and a closing, the limiter is a window, paced at
  that (a little under its rate, probing up 3 % a second), and the phase that probing
  ends (or a long one) bounds the rate by the pace a cycle and a half before; it is
  then paced 1 % under that. That probe starts at the reopening (a closing tests
  nothing, and would add 3 % before the first send). A window is read only from a
  quota of 16 or more, and never far under what a second admitted (two quotas at
  most): others spending a bucket read like a small window. A phase is measured from
  every answer to its sends once they are in (during the closing), not from the
  refused send's number alone, which answers overtaking each other put off by a few.
  See :func:`~kirim_async.pacing._measure.estimate_rate`.
- **One cut per congestion event.** Every send carries the gate's *epoch*, which each
  cut advances. A 429 for a request sent before the last cut is the same congestion
  event seen again (it was in flight when the gate reacted), and so is one within a
  second of the last cut unless 10 % of the answers to requests sent since are 429s:
  it closes the gate for its ``Retry-After`` but does not cut again. Without this, a
  burst of 429s whose ``Retry-After`` is 0 or a past date (which close nothing) cut
  the rate to nothing. A slow start's first 429 always ends it: it climbs until the
  limit refuses it, and its ramp is read up to that send.
- **The server's admitted rate is a floor.** The gate counts the answers other than 429
  in each second once it is limiting; a cut never goes below 90 % of the best of the
  last two seconds, and after a cut the rate climbs back to 97 % of the best second
  of the job by doubling each second (then linearly, probing). A real limiter admits
  about its rate, so these sit under it; 429s that come whatever the pace (other
  callers spending the same quota) then cost the waits they ask for, but cannot drive
  the pace towards zero, and once they stop the pace is back within seconds. Over a
  window, whose second straddling two windows admits two quotas, there is no floor
  and the climb goes to half the best second; over a bucket, no higher than its
  measured refill, whose second after a pause holds its burst too. Seconds
  in which nothing was admitted count: the floor is of the seconds just gone.
- **A guessed pause that was too short is no congestion.** Without ``Retry-After`` the
  closing is the client's backoff; a phase after it that admits next to nothing (fewer
  than 8) met a window still shut, and with the next backoff long, the pace is kept:
  cutting it there was the cut to 10 % meant for a measured phase.
- **Cheap 429s, fast probing after quiet.** After a cut whose 429's ``Retry-After``
  asked for a short pause (under half a second; without the header, never), a pace
  that has met no 429 for a second doubles each second until one comes: when 429s of
  other callers stop (or the limit rises), the pace is back within seconds instead of
  creeping up for minutes, and overshooting costs a fraction of a second. After a
  costly 429 (whole seconds) it only creeps up: linearly at first, then with the cube
  of the time (TCP CUBIC's convex probe; a pace probing for two minutes has doubled),
  so that a pace measured as a share of a quota finds what others leave.
- **Others spending the same quota.** Replicas that each pace their own client share
  one limit, and each measures what the others leave it. A bucket never refuses a
  pace under its refill: a reading 10 % or more under the best refill measured says
  others spend it (25 % under a best read from few sends, which may be a fifth
  off). Then, whatever the 429s cost, the pace doubles after a second
  without one, as after a cheap 429 (a 429 of one client costs the others nothing),
  until a reading is back at the best: when the others stop, nothing but the quiet
  says so.
- **A guessed pace is forgotten when idle.** A pace learned from 429s (not one the
  hints state) that has held no request back for 10 s is dropped: a service's calls
  come in bursts, and one 429 must not slow its next hour. What was measured of the
  server is kept for the next cut.

A ``max_rate`` caps all of this: the gate then paces from the first send, evenly, at
that rate at most, so that a job leaves the rest of the organisation's quota alone.
What to do when the waits grow too long (a call's or a job's budget, ``max_retry_after``)
is not the gate's to decide: it only says how long the next turn is away.

Constants: the 0.7 cut and the 10 %/s probe are TCP's classic AIMD shape, gentle
enough that one 429 of a burst does not halve a job; the 0.9 floor leaves a 10 % margin
under what the server admitted, so the floor itself does not draw 429s. A measured pace
sits 3 % under the estimate (a request counted over a tenth of a second is 3 % of 300/s)
and probes up 0.1 % a second, since a probe past a limit whose 429s cost a second each
costs a second; a window's first estimate reads up to a phase per window low, so it
probes 3 % a second. A fixed window refuses by the end of the window after the one in
which a rising pace passed its rate: the pace a window and a half before the refusal
(the cycle is at least a window) was under it, on average over the window before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping

import attrs

from ..errors import RateLimitError
from ._measure import (
    MEASURED_MARGIN,
    MIN_RATE,
    MIN_SENDS,
    PROBE_PER_SECOND,
    REFILL_PAUSE,
    WINDOW_PROBE_PER_SECOND,
    AdmittedRate,
    Estimate,
    HintReader,
    Phase,
    Ramp,
    best_refill,
    bound_at,
    cut_to,
    estimate_rate,
    is_cheap,
    is_contended,
    is_sparse,
    probed_rate,
    send_rate,
)
from ._protocol import Ticket

__all__ = ["RateGate"]

logger = logging.getLogger("kirim_async")

_IDLE_FORGET = 10.0  # seconds a guessed pace may hold nothing back before it is dropped


@attrs.frozen
class _Event:
    """A congestion event the gate cut at, as measured again when its answers are in."""

    pace: float
    """The pace (or the send rate) it came at."""
    bound: float | None
    """The pace that bounds a window's rate (see ``estimate_rate``); None in a slow start."""
    probed: bool
    """Whether the pace probed up from a window's reading."""
    ramp: Ramp | None
    """The pace of the slow start it ended, if it climbed."""
    wait: float
    """The closing its 429 asked for."""
    best: float
    """The best refill measured before it (see ``_note_contention``)."""
    climbed_from: float | None
    """The pace a slow start in the phase it ended began at; None for none."""


@attrs.define
class RateGate:
    """A pacer that learns the server's limit from its 429s and hints (see module doc).

    Args:
        sleep: Awaited to wait (injectable for tests).
        clock: Monotonic seconds.
        wall_clock: Unix time, for an ``X-RateLimit-Reset`` given as a timestamp.
        backoff: Starts a series of the client's exponential waits (its retrier's): a
            run of 429s without ``Retry-After`` closes the gate for each in turn.
        max_rate: Requests a second at most, evenly spaced, whatever the pacer learns;
            None for no cap of the job's own.
    """

    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    backoff: Callable[[], Iterator[float]]
    max_rate: float | None = None

    sends: int = attrs.field(default=0, init=False)
    """Requests let through."""
    rate_limited_count: int = attrs.field(default=0, init=False)
    """429 answers met."""

    _lock: asyncio.Lock = attrs.field(init=False, factory=asyncio.Lock)
    _open_at: float = attrs.field(init=False, default=0.0)
    # The pacer: a token bucket; rate None means "not pacing".
    _rate: float | None = attrs.field(init=False, default=None)
    _capacity: float = attrs.field(init=False, default=1.0)
    _tokens: float = attrs.field(init=False, default=0.0)
    _stamp: float = attrs.field(init=False, default=0.0)
    _from_headers: bool = attrs.field(init=False, default=False)
    _hints: HintReader = attrs.field(init=False, factory=HintReader)
    # Additive increase (no headers): rate = cut_rate * (1 + probe * seconds since cut);
    # no cut yet while _cut_at is None.
    _cut_rate: float = attrs.field(init=False, default=0.0)
    _cut_at: float | None = attrs.field(init=False, default=None)
    # Send-rate measurement, for the first cut.
    _first_send_at: float | None = attrs.field(init=False, default=None)
    _sends_base: int = attrs.field(init=False, default=0)
    """Sends before the pace was last forgotten: a first cut measures those after."""
    _held_at: float = attrs.field(init=False, default=0.0)
    """When the pace or a closing last held a turn back (its end)."""
    _answered: int = attrs.field(init=False, default=0)
    _waits: Iterator[float] | None = attrs.field(init=False, default=None)
    # Congestion events: each cut advances the epoch; a send carries the epoch it went
    # out in, and a 429 cuts only if its request was sent in the current one.
    epoch: int = attrs.field(init=False, default=0)
    # Answers other than 429 in the current second and the best of the last two.
    _admitted: AdmittedRate = attrs.field(init=False, factory=AdmittedRate)
    _hint_scale: float = attrs.field(init=False, default=1.0)
    """Less than 1 after 429s that came despite the hints: they are paced under."""
    _limited_since_cut: int = attrs.field(init=False, default=0)
    # Phases (see _measure.Phase): the current one, the one the last event ended (its
    # answers still coming in), and the first one since the pace was last set.
    _phase: Phase = attrs.field(init=False, factory=lambda: Phase(epoch=0, seq=0))
    _ended: Phase | None = attrs.field(init=False, default=None)
    _first: Phase | None = attrs.field(init=False, default=None)
    _event_at: float = attrs.field(init=False, default=0.0)
    """When the last congestion event began: the closing before the current phase."""
    _pending: _Event | None = attrs.field(init=False, default=None)
    """The last cut, to measure again when the gate reopens."""
    _climbing: bool = attrs.field(init=False, default=False)
    """A slow start: after a blind cut of a costly 429, the pace doubles each second
    from the reopening (``_climb_at``) until the next 429."""
    _climb_at: float | None = attrs.field(init=False, default=None)
    _probe: float = attrs.field(init=False, default=PROBE_PER_SECOND)
    _limited_at: float = attrs.field(init=False, default=0.0)
    """When the last 429 was taken."""
    _cheap: bool = attrs.field(init=False, default=False)
    """Whether the last cut's 429 cost a short pause: probing fast after quiet is cheap."""
    _answered_since_cut: int = attrs.field(init=False, default=0)
    _guessed: bool = attrs.field(init=False, default=False)
    """Whether the last closing was the client's guess: its 429 named no ``Retry-After``."""
    _window: bool = attrs.field(init=False, default=False)
    """Whether the last measured cut read a window's quota (see ``estimate_rate``)."""
    _refill: float = attrs.field(init=False, default=float("inf"))
    """A bucket's refill rate, measured: the fast climb back stops under it."""
    _best_refill: float = attrs.field(init=False, default=0.0)
    """The highest refill measured of a bucket: a reading well under it is a share."""
    _contended: bool = attrs.field(init=False, default=False)
    """Whether others spend the same quota: the pace probes fast after quiet (see
    ``_note_contention``)."""

    def __attrs_post_init__(self) -> None:
        if self.max_rate is not None:  # paced from the start: one token, no burst
            self._rate = self.max_rate

    @property
    def rate(self) -> float | None:
        """The current paced send rate (requests a second), or None when not pacing."""
        if self._rate is None:  # no clock read: bulk workers ask before every send
            return None
        return self._current_rate(self.clock())

    def try_turn(self) -> Ticket | None:
        """A turn without waiting if the gate is open, unpaced and unqueued; else None.

        The common case of an unthrottled job then costs no coroutine per request.
        """
        if self._rate is not None or self._lock.locked():
            return None
        if self._open_at and self.clock() < self._open_at:  # no clock read until a 429
            return None
        return self._count_send()

    async def turn(self) -> Ticket:
        """Wait until a request may be sent, and count it as sent."""
        ticket = self.try_turn()
        if ticket is not None:
            return ticket
        # One waiter at a time computes its slot and sleeps; the rest queue in order.
        async with self._lock:
            while True:
                now = self.clock()
                if now - self._held_at >= _IDLE_FORGET:
                    self._forget_guessed_pace(now)
                delay = max(self._open_at - now, self._token_delay(now))
                if delay <= 0:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return self._count_send()
                self._held_at = now + delay
                await self.sleep(delay)

    def _forget_guessed_pace(self, now: float) -> None:
        """Drop a pace guessed from 429s once it has held nothing back for a while.

        A service's calls come in bursts: one 429 must not slow its next hour. A pace
        the hints state, or a ``max_rate``, stays; what was measured of the server
        (its best admitted rate, its first phase) is kept for the next cut.
        """
        if self._rate is None or self._from_headers or self.max_rate is not None:
            return
        if now < self._open_at:
            return
        logger.debug(
            "pace of %.1f requests/s dropped: it held no request back for %gs",
            self._current_rate(now) or 0.0,
            _IDLE_FORGET,
        )
        self._rate = None
        self._cut_at = None
        self._first_send_at = None  # the next first cut measures the send rate anew
        self._sends_base = self.sends
        self._phase = Phase(epoch=self.epoch, seq=self.sends)
        self._first = self._pending = None

    def _count_send(self) -> Ticket:
        self.sends += 1
        now = self.clock()
        if self._first_send_at is None:
            self._first_send_at = now
        if self._phase.start is None:  # the gate's reopening, however late 429s pushed it
            self._reopened(now)
        # What a 429 for this send tells: the congestion event it belongs to, and how
        # many sends the server admitted before it, by when.
        return (self.epoch, self.sends, now)

    def _current_rate(self, now: float) -> float | None:
        rate = self._rate
        if rate is None:
            return None
        if self._climbing:
            climbed = 0.0 if self._climb_at is None else max(0.0, now - self._climb_at)
            rate = self._cut_rate * 2.0 ** min(climbed, 64.0)
        elif not self._from_headers and self._cut_at is not None:
            rate = probed_rate(
                self._cut_rate,
                self._probing_for(now),
                self._probe,
                quiet=now - self._limited_at,
                cheap=self._cheap,
                # A window's best second may have held two quotas: half of it is safe.
                peak=min(self._admitted.peak / (2.0 if self._window else 1.0), self._refill),
            )
        return rate if self.max_rate is None else min(rate, self.max_rate)

    def _probing_for(self, now: float) -> float:
        """Seconds the pace has probed upwards since the last cut.

        A window's probe (3 % a second) counts from the reopening: the gate closed
        tests nothing, and a closing of a second would add 3 % before the first send,
        past a rate read within that. Other probes count from the cut.
        """
        assert self._cut_at is not None  # noqa: S101 - only asked after a cut
        if self._probing_a_window:
            return now - max(self._cut_at, self._phase.start or now)
        return now - self._cut_at

    @property
    def _probing_a_window(self) -> bool:
        """Whether the pace probes up from a window's reading: the 429 it meets bounds it.

        Only a cut to a window's reading sets that probe.
        """
        return self._probe == WINDOW_PROBE_PER_SECOND

    def _token_delay(self, now: float) -> float:
        rate = self._current_rate(now)
        if rate is None:
            return 0.0
        if now > self._stamp:  # the stamp is in the future while the gate is closed
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
        # A whole token, give or take float rounding (else a sub-nanosecond wait loops).
        return 0.0 if self._tokens >= 1.0 - 1e-9 else (1.0 - self._tokens) / rate

    def learn(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer: count it, and read any rate-limit hints.

        Args:
            ticket: The turn its request was sent on; a 429 sent before the last cut
                does not cut the pace again.
            status: The answer's HTTP status.
            headers: Its headers (looked up without regard to case).
        """
        self._answered += 1
        epoch, _, sent_at = ticket
        current = epoch >= self.epoch  # sent since the last cut
        if current:
            self._answered_since_cut += 1
            # Phase.learn, inlined: once per answer, its call was a third of this method.
            phase = self._phase
            phase.answered += 1
            if status != 429:
                phase.admitted += 1
                if sent_at > phase.last_admitted:  # noqa: PLR1730 - max() costs a call here
                    phase.last_admitted = sent_at
        elif self._ended is not None and epoch == self._ended.epoch:
            self._ended.learn(sent_at, status != 429)
        if status == 429:
            self._limited_since_cut += current
            self.rate_limited_count += 1
        else:  # any other answer ends a run of 429s
            self._waits = None
            if self._rate is not None:  # the admitted rate matters once pacing
                self._admitted.add(self.clock())
        hint = self._hints.read(headers, self.wall_clock())
        if hint is not None:
            self._set_pace(hint.rate, hint.limit, hint.remaining)

    def _set_pace(self, rate: float, limit: float, remaining: float) -> None:
        now = self.clock()
        # Under a max_rate, sends stay evenly spaced: no burst of the server's size.
        capacity = max(1.0, limit) if self.max_rate is None else 1.0
        if not self._from_headers:
            in_flight = max(0, self.sends - self._answered)
            self._tokens = min(capacity, max(0.0, remaining - in_flight))
            self._stamp = now
        else:
            self._token_delay(now)  # settle the bucket at the old rate first
        self._from_headers = True
        # No hint may stall the job: never below what the server admitted, nor 0.5/s.
        self._rate = max(rate * self._hint_scale, self._admitted.floor(now), MIN_RATE)
        self._capacity = capacity

    def rate_limited(self, ticket: Ticket, error: RateLimitError) -> float:
        """Close the gate for a 429 (learned first) and slow the pacer.

        Args:
            ticket: The turn the refused request was sent on.
            error: The 429. Without a ``Retry-After``, the gate closes for the client's
                next exponential wait.

        Returns:
            Seconds until the next turn: the closing, never shorter than asked.
        """
        now = self.clock()
        epoch, seq, _ = ticket
        # A 429 for a request sent before the last cut is that congestion event again.
        new_event = epoch >= self.epoch
        if new_event and self._cut_at is not None and not self._climbing:
            # Sparse 429s soon after a cut may be other callers' (they come whatever the
            # pace). A slow start's first 429 ends it: its ramp is read up to that send.
            new_event = not is_sparse(
                now - self._cut_at, self._limited_since_cut, self._answered_since_cut
            )
        named = error.named_wait  # Retry-After, else the hints' reset of a spent quota
        wait = named
        if wait is None:  # the next backoff for a new event; else the closing stands
            wait = self._next_backoff() if new_event else 0.0
        new_open_at = now + wait
        self._open_at = max(self._open_at, new_open_at)
        self._tokens = 0.0
        self._stamp = max(self._stamp, new_open_at)
        if new_event and self._from_headers:
            # The hints promised more than the server gave: pace a little under them.
            self._hint_scale = max(0.5, self._hint_scale * MEASURED_MARGIN)
            if self._rate is not None:
                self._rate = max(MIN_RATE, self._rate * MEASURED_MARGIN)
            self._next_phase(now, ticket)  # the 429s of requests already sent are this event
            self._cut_at = now
        elif new_event and self._rate is not None and self._too_soon(seq, wait):
            # The last closing was the client's guess (no Retry-After), and the phase
            # after it admitted next to nothing: the quota was not back yet. The pause
            # was too short, not the pace too high: the next backoff is longer.
            logger.debug(
                "pace kept at %.1f requests/s: the quota was not back after the last "
                "pause (%d admitted since)",
                self._current_rate(now) or 0.0,
                self._phase.admitted_before(seq),
            )
            self._next_phase(now, ticket)
        elif new_event and (self._rate is not None or seq - self._sends_base >= MIN_SENDS):
            self._cut(now, wait, ticket, asked=named is not None)
        elif new_event:
            # Unpaced, a few sends say nothing of a rate (a quiet service's calls): the
            # 429 closes the gate, and the pace is left to a burst that can be measured.
            logger.debug(
                "pace not set: too few sends to measure a rate (%d); the gate closes for %.3fs",
                seq - self._sends_base,
                wait,
            )
        self._held_at = max(self._held_at, self._open_at, now)
        self._limited_at = now
        self._guessed = named is None
        return max(0.0, self._open_at - now)

    def _too_soon(self, seq: int, wait: float) -> bool:
        """Whether the phase refused at *seq* admitted next to nothing after a guessed pause.

        The quota was not back yet: the pause was too short, not the pace too high. A
        bucket refills all the while, and the client's backoff starts short again after
        each answer admitted; a window stays shut until it ends, and the backoff grows:
        a blind cut then, with the *wait* long, would be the one to 10 %.
        """
        admitted = self._phase.admitted_before(seq)
        return self._guessed and wait >= REFILL_PAUSE and admitted < MIN_SENDS

    def _next_phase(self, now: float, refused: Ticket) -> Phase:
        """End the current phase at a congestion event (its first refused send); return it.

        Every send carries the epoch it went out in: the 429s of requests sent before
        this event are part of it, and their answers still count for the phase.
        """
        ended = self._phase
        ended.end(self.sends, (refused[1], refused[2]))
        self.epoch += 1
        self._phase = Phase(epoch=self.epoch, seq=self.sends)
        self._ended = ended
        self._event_at = now
        self._limited_since_cut = self._answered_since_cut = 0
        return ended

    def _reopened(self, now: float) -> None:
        """The first send after a closing: the new phase starts.

        The last cut is measured again if the answers to the phase it ended are all in.
        """
        phase = self._phase
        phase.start = now
        phase.pause = now - self._event_at
        pending, self._pending = self._pending, None
        if pending is not None and self._ended is not None and self._ended.complete:
            self._measured_cut(pending)
        if self._climbing and self._climb_at is None:  # after the cut it may have set
            self._climb_at = now

    def _cut(self, now: float, wait: float, refused: Ticket, *, asked: bool) -> None:
        pace = self._current_rate(now)
        first = pace is None
        before: float | None = None
        if pace is None:
            elapsed = now - (self._first_send_at or now)
            current = send_rate(self.sends - self._sends_base, elapsed)
            self._admitted.second = now  # the admitted rate is counted from here
            if elapsed >= 1.0:  # long enough that a first burst does not dominate it
                self._admitted.peak = (self._answered - self.rate_limited_count) / elapsed
        else:
            current = pace
            if self._first is not None and not self._climbing:
                # The pace that bounds a window (see bound_at). Not a slow start's,
                # which climbs from far under.
                since = bound_at(
                    refused[2],
                    self._first.measure()[1],
                    self._phase.pause,
                    self._phase.start or refused[2],
                )
                before = self._current_rate(since) or 0.0
        ended = self._next_phase(now, refused)
        self._cut_at = now
        self._cheap = is_cheap(wait, asked=asked)
        if first:
            self._first = ended
            self._set_cut(cut_to(current, None, wait), None, ended, wait)
            return
        ramp = climbed_from = None
        if self._climbing and self._climb_at is not None:
            climbed_from = self._cut_rate
            # A slow start wasted refill while under the limit: its pace tells how much.
            ramp = Ramp.of(self._current_rate_at, self._climb_at, refused[2])
        event = _Event(
            current, before, self._probing_a_window, ramp, wait, self._best_refill, climbed_from
        )
        self._measured_cut(event)
        if not ended.complete:
            # Measured again when the gate reopens: the answers to the phase's sends,
            # in by then, tell what it admitted better than the refused send's number.
            self._pending = event

    def _current_rate_at(self, when: float) -> float:
        return self._current_rate(when) or 0.0

    def _measured_cut(self, event: _Event) -> None:
        ended = self._ended
        assert ended is not None  # noqa: S101 - set by _cut
        # None when paced from the start (a max_rate): no phase from a full quota.
        first = (0, 0.0) if self._first is None else self._first.measure()
        admitted, phase = ended.measure()
        estimate = estimate_rate(
            admitted,
            phase,
            first,
            ended.pause,
            pace=event.bound,
            probed=event.probed,
            ramp=event.ramp,
            sustained=self._admitted.peak,
        )
        if estimate is not None:
            self._window = estimate.window
            # A second that held a bucket's burst reads over its rate: climb back no
            # higher than its refill (a window's, no higher than half its best second).
            if estimate.kind != "admitted":
                self._refill = float("inf") if estimate.window else estimate.rate
            if not estimate.window:
                self._note_contention(estimate, event.best)
            if estimate.kind == "refill":
                self._best_refill = max(self._best_refill, best_refill(estimate))
            self._cheap = self._cheap or self._contended
        cut = cut_to(event.pace, estimate, event.wait)
        self._set_cut(cut, estimate, ended, event.wait, climbed_from=event.climbed_from)

    def _note_contention(self, estimate: Estimate, best: float) -> None:
        """Whether others spend the same quota, by a bucket's reading against its *best*.

        A bucket never refuses a pace under its refill: a reading well under the best
        one measured says others spend its quota, and what this client gets is its
        share. When they stop, nothing says so but the quiet: the pace then doubles
        after a second without 429 (a 429 of one client costs the others nothing),
        until a reading is back at the best.
        """
        contended = is_contended(best, estimate)
        if contended != self._contended:
            logger.debug(
                "%s: %.1f requests/s measured, %.1f at best; the pace %s",
                "others spend the same quota" if contended else "the quota is back",
                estimate.rate,
                best,
                "doubles after a second without 429" if contended else "creeps up",
            )
        self._contended = contended

    def _set_cut(
        self,
        cut: tuple[float, float],
        estimate: Estimate | None,
        ended: Phase,
        wait: float,
        *,
        climbed_from: float | None = None,
    ) -> None:
        rate, self._probe = cut
        # Blind after a costly 429 (a deep cut): climb by doubling from the reopening,
        # and read the rate from that ramp at the next 429 (TCP's slow start). So too
        # after a refill read from a short phase, unless that phase climbed from under
        # it already: one more closing costs less than a job paced 10 % under.
        if estimate is None:
            self._climbing = wait >= REFILL_PAUSE
        else:
            self._climbing = not (
                estimate.precise or (climbed_from is not None and climbed_from <= estimate.rate)
            )
        self._climb_at = None
        # A window admits up to twice its quota in a second that straddles two of its
        # windows: what it admitted is no floor then.
        floor = 0.0 if self._window else self._admitted.floor(self.clock())
        if estimate is not None and estimate.kind == "refill" and estimate.precise:
            # A second after a pause held the bucket's burst too: it reads over the refill.
            floor = min(floor, estimate.rate)
        self._cut_rate = max(MIN_RATE, rate, floor)
        admitted, phase = ended.measure()
        if estimate is None:
            why = "nothing measured"
        elif self._climbing:  # a refill read from few sends: the climb reads it again
            why = f"{estimate.kind} measured from few sends, climbing again"
        else:
            why = f"{estimate.kind} measured"
        logger.debug(
            "pace cut to %.1f requests/s: %s (the phase before: %d admitted in %.3fs%s)",
            self._cut_rate,
            why,
            admitted,
            phase,
            ", every answer in" if ended.complete else "",
        )
        self._rate = self._cut_rate
        # Little burst, the server's being unknown; none under a max_rate.
        self._capacity = 2.0 if self.max_rate is None else 1.0

    def _next_backoff(self) -> float:
        # A 429 without Retry-After: the client's exponential waits, one run of them
        # per unbroken run of 429s.
        if self._waits is None:
            self._waits = self.backoff()
        return next(self._waits)
