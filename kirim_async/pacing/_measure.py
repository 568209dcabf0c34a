"""What every pacer measures of a server: no clock of its own, no I/O.

The local gate and the Redis pacer take the same hints from answers (read by
:mod:`kirim_async._hints`) and estimate a limiter's rate the same way; this module is
the one home of both, and of the constants they share (see
:mod:`kirim_async.pacing._gate` for why each is what it is). Pure functions, and two
small counters each pacer keeps one of (:class:`HintReader`, :class:`AdmittedRate`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Literal

import attrs

from .._hints import BadHint, Hint, read_hint

__all__ = [
    "BOUND_CYCLES",
    "BOUND_MARGIN",
    "COSTLY_DECREASE",
    "DECREASE",
    "DOUBLED_AFTER",
    "MEASURED_MARGIN",
    "MEASURED_PROBE_PER_SECOND",
    "MIN_PHASE",
    "MIN_RATE",
    "MIN_REFILLS",
    "MIN_SENDS",
    "PROBE_PER_SECOND",
    "REFILL_PAUSE",
    "WINDOW_PROBE_PER_SECOND",
    "AdmittedRate",
    "Estimate",
    "HintReader",
    "Phase",
    "Ramp",
    "best_refill",
    "bound_at",
    "cut_to",
    "estimate_rate",
    "is_cheap",
    "is_contended",
    "is_sparse",
    "probed_rate",
    "send_rate",
]

logger = logging.getLogger("kirim_async")

DECREASE = 0.7  # a blind cut when 429s are cheap: TCP's gentle AIMD shape
COSTLY_DECREASE = 0.1  # a blind cut when a 429 costs a long pause: measure in the next phase
MEASURED_MARGIN = 0.97  # a cut to a measured rate: a little under it
PROBE_PER_SECOND = 0.1  # after a blind cut, grow back by this share of it each second
MEASURED_PROBE_PER_SECOND = 0.001  # ... after a measured one, slowly: each 429 may cost a second
WINDOW_PROBE_PER_SECOND = 0.03  # ... after a window's: its estimate reads a little under
BOUND_CYCLES = 1.5  # the pace this many cycles before a window's refusal was under its rate
BOUND_MARGIN = 0.99  # a pace a little under a window's bound: the probe crosses it slowly
MIN_PHASE = 0.05  # seconds: a shorter phase is too short to measure a rate over
REFILL_PAUSE = 0.5  # seconds: a pause this long restores a quota's burst
MIN_RATE = 0.5  # requests a second: no pace (nor hint) goes lower
MIN_SENDS = 8  # sends, unpaced, before a 429 cuts: fewer measure no rate
MIN_REFILLS = 40  # a refill read from fewer sends past the burst is off by 5 % or more
ADMITTED_FLOOR = 0.9  # a cut stays above this share of what the server just admitted
DOUBLED_AFTER = 120.0  # seconds: a pace probing this long without a 429 has doubled
QUIET = 1.0  # seconds without a congestion event before a cheap 429's pace doubles
_MIN_EVENT_GAP = 1.0  # seconds: sparse 429s closer to the last cut are the same event
_CONGESTED_SHARE = 0.1  # ... unless this share of the answers since the cut are 429s
_CONGESTED_COUNT = 3  # ... and at least this many
_WHOLE_QUOTA = 0.5  # share of the first phase's admitted a window's phase admits again
_SHARE = 0.9  # a bucket's reading under this share of its best is others spending it
_ROUGH_SHARE = 0.75  # ... of a best read from few sends (off by 5 %, and by 21 % seen)
_WINDOW_SPAN = 2.5  # a window's seconds admit two quotas at most; its reading is a little low
_HINT_SAMPLES = 5  # answers' rate samples a hint's rate is the median of
_RAMP_SAMPLES = 200  # points of a climbing phase's pace, for estimate_rate_under
_BISECTIONS = 40


@attrs.define
class HintReader:
    """Reads each answer's hint headers into a rate to pace at; logs a bad hint once.

    One answer's ``X-RateLimit-*`` counters are a noisy sample of the rate: the rate
    read is the median of the last few. A rate the server states (the IETF policy) is
    taken as it is.
    """

    min_used: float = 0.0
    """The share of the quota an answer must show used for its sample to count: with few
    used, the rounded counters read the rate high (by up to one over the count). A
    reader with a share reads its samples without that bias (see :func:`read_hint`)."""
    _rates: list[float] = attrs.field(factory=list, init=False)
    _bad: int = attrs.field(default=0, init=False)

    def read(self, headers: Mapping[str, str], wall_now: float) -> Hint | None:
        """The answer's hint (its rate the median of the samples so far), or None."""
        hint = read_hint(headers, wall_now, unbiased=self.min_used > 0)
        if isinstance(hint, BadHint):
            self._bad += 1
            if self._bad == 1:  # once: a server that sends it sends it on every answer
                logger.debug(
                    "rate-limit hint ignored: %s %r cannot be true", hint.header, hint.value
                )
            return None
        if hint is None or hint.is_stated:
            return hint
        if hint.limit - hint.remaining < self.min_used * hint.limit:
            return None
        self._rates.append(hint.rate)
        del self._rates[:-_HINT_SAMPLES]
        median = sorted(self._rates)[len(self._rates) // 2]
        return Hint(median, hint.limit, hint.remaining, is_stated=False)


@attrs.define
class Phase:
    """One phase of a pacer: from the gate's reopening to the first send refused.

    What the server admitted in it is best read from every answer to its sends, once
    they are all in (they come during the closing that ended it): the count admitted,
    and when the last of them went out. Until then, the sends before the refused one,
    less those already refused, stand for it; answers overtake each other, so that
    count is off by a few.
    """

    epoch: int
    """The pacer's epoch its sends carry."""
    seq: int
    """Sends before it."""
    start: float | None = None
    """When its first send went out."""
    pause: float = 0.0
    """The closing before it, in seconds."""
    sent: int | None = None
    """Its sends, once it has ended."""
    until_refused: tuple[int, float] | None = None
    """Once ended: the sends admitted before the first one refused, by the answers in
    then, and when that one went out."""
    answered: int = 0
    admitted: int = 0
    last_admitted: float = 0.0
    """When the last send admitted went out."""

    def learn(self, sent_at: float, admitted: bool) -> None:
        """Count an answer to one of its sends, sent at *sent_at*; *admitted* unless 429."""
        self.answered += 1
        if admitted:
            self.admitted += 1
            self.last_admitted = max(self.last_admitted, sent_at)

    def admitted_before(self, seq: int) -> int:
        """The sends before send number *seq* (refused), less the refusals answered."""
        refusals = max(0, self.answered - self.admitted - 1)  # the refused one's own
        return max(0, seq - 1 - self.seq - refusals)

    def end(self, sends: int, refused: tuple[int, float]) -> None:
        """End it at a refusal: *sends* in all so far, the refused (number, sent at)."""
        self.sent = sends - self.seq
        self.until_refused = (self.admitted_before(refused[0]), refused[1])

    @property
    def complete(self) -> bool:
        """Whether it has ended and every one of its sends has its answer."""
        return self.sent is not None and self.answered >= self.sent

    def measure(self) -> tuple[int, float]:
        """(sends admitted, seconds from its start to the last of them)."""
        start = self.start or 0.0
        if self.complete or self.until_refused is None:
            return self.admitted, max(0.0, self.last_admitted - start) if self.admitted else 0.0
        admitted, sent_at = self.until_refused
        return admitted, sent_at - start


def send_rate(sends: int, elapsed: float) -> float:
    """Requests a second of *sends* over *elapsed* seconds (all of them when none passed)."""
    return sends / elapsed if elapsed > 0 else float(sends or 1)


def is_cheap(wait: float, *, asked: bool) -> bool:
    """Whether a 429 costs little: the server named (*asked*) a pause under half a second.

    Without ``Retry-After``, each probe past the limit costs one more of the client's
    growing backoffs: never cheap.
    """
    return asked and wait < REFILL_PAUSE


@attrs.frozen
class Estimate:
    """A limiter's rate measured from its phases, and how it was read."""

    rate: float
    """Requests a second."""
    kind: Literal["refill", "admitted", "window", "bound"]
    """``refill``: a token bucket's, measured from two phases. ``admitted``: what the
    phase admitted over its length (its quota was not restored). ``window``: a window's
    quota came back whole after the pause; its rate reads a little low. ``bound``: a
    window's, where a long phase ended at a pace just over its rate."""
    precise: bool = True
    """False for a refill read from fewer than ``MIN_REFILLS`` sends past the burst: a
    request more or less (a bucket's fractional token) moves it 5 % or more."""

    @property
    def window(self) -> bool:
        """Whether the limiter reads as a window."""
        return self.kind in ("window", "bound")


def estimate_rate(
    admitted: int,
    phase: float,
    first: tuple[int, float],
    pause: float,
    *,
    pace: float | None = None,
    probed: bool = False,
    ramp: Ramp | None = None,
    sustained: float = 0.0,
) -> Estimate | None:
    """The server's rate, from what it admitted in this phase and the first one.

    A phase runs from the gate's reopening to the first send the server refused.
    After a pause long enough to restore the quota, a token bucket's phase admits its
    burst B and then its rate R: ``A = B + R * t``. The first phase (from a full quota)
    gives the other equation, so ``R = (A - A0) / (t - t0)``: TCP BBR's way of
    measuring a token-bucket policer. Whether the pause did restore the burst is
    judged by that estimate itself (``pause >= A0 / R``); if not, the quota was
    near empty and ``A / t`` is the estimate.

    A window's quota comes back whole when it ends: a paced phase admits all it sends
    until the quota is spent, whatever the rate, so the bucket's equation reads it as
    next to nothing. Its rate is its quota per window, and the first phase (sent as
    fast as the client could) and a closing that restored the quota take at most one
    window and the time to spend its quota: ``A0 / (t0 + pause)`` is a little under the
    rate. When the phase admitted a quota again (half the first phase's at least: that
    one may have spanned two windows) and the bucket's reading is under it, the
    limiter is a window; a phase that admitted less met other callers spending it.

    Args:
        admitted: Sends the server admitted in this phase.
        phase: Its length in seconds.
        first: The first phase's (admitted, length).
        pause: The closing before this phase, in seconds.
        pace: The pace a cycle and a half (the first phase and a closing) before the
            refused send, or at the phase's start if later. A fixed window refuses by
            the end of the window after the one in which a rising pace passed its
            rate, whose average was under it; a sliding one, sooner. When a phase
            lasted a cycle and a half (a pace probing up from the window's estimate
            crossed the rate), it bounds the rate (``bound``).
        probed: Whether the phase's pace probed up from a window's estimate: then
            it bounds the rate however short the phase.
        ramp: The pace of this phase, if it climbed from under the rate: the refill
            it wasted counts (see :class:`Ramp`).
        sustained: The best rate the server admitted over a whole second. A window
            admits two quotas at most in one (it straddles two windows): a window's
            reading far under it is others spending the quota, not a window.

    Returns:
        The estimate, or None when the phase is too short to measure.
    """
    if phase < MIN_PHASE or admitted <= 0:
        return None
    first_admitted, first_phase = first
    cycle = first_phase + pause
    # A window's quota comes back whole: a phase admits at least half what the first
    # did (which may have spanned two windows), unless others spend the same quota.
    whole = admitted >= _WHOLE_QUOTA * first_admitted
    quota = min(first_admitted, admitted)
    window = 0.0
    if pause >= REFILL_PAUSE and whole and quota >= 2 * MIN_SENDS:
        window = quota / cycle
        if window * _WINDOW_SPAN < sustained:
            window = 0.0
    refilled = None
    if admitted > first_admitted and phase - first_phase >= MIN_PHASE:
        refilled = _refill(admitted - first_admitted, phase - first_phase, ramp)
    if refilled is not None and pause * refilled >= first_admitted and refilled >= window:
        return Estimate(refilled, "refill", precise=admitted - first_admitted >= MIN_REFILLS)
    if window:
        # A phase this long was a pace probing up past the rate: its bound lies in it.
        if pace is not None and (probed or phase >= BOUND_CYCLES * cycle):
            return Estimate(pace, "bound")
        return Estimate(window, "window")
    return Estimate(admitted / phase, "admitted")


def bound_at(refused_at: float, first_phase: float, pause: float, start: float) -> float:
    """When the pace that bounds a window's rate went (see :func:`estimate_rate`).

    A fixed window refuses by the end of the window after the one in which a rising
    pace passed its rate: the pace a cycle and a half (the first phase, *first_phase*
    seconds, and the closing before this one, *pause*) before the send refused at
    *refused_at* was under it, or the pace at the phase's *start* if that was later.
    """
    return max(refused_at - BOUND_CYCLES * (first_phase + pause), start)


def best_refill(estimate: Estimate) -> float:
    """What a bucket's refill reading counts for as the best one (see :func:`is_contended`).

    A reading of few sends (not ``precise``) is off by 5 % or more: one after a first
    burst whose sends left while connections opened read 21 % high, and the precise
    readings after it, each 10 % under, were taken for others spending the quota (the
    pace then doubled after each quiet second, and met a 429 every second). It counts
    as a best a sixth under itself, so only a reading 25 % under it says so.
    """
    return estimate.rate if estimate.precise else _ROUGH_SHARE / _SHARE * estimate.rate


def is_contended(best: float, estimate: Estimate) -> bool:
    """Whether a bucket's reading says others spend its quota.

    A token bucket never refuses a pace under its refill: a reading 10 % or more under
    the *best* refill measured of it (0 for none; a short phase's reading is off by a
    few per cent), not a window's, came of other callers' sends. Only a two-phase
    reading counts as the best: one of what a phase admitted reads the burst with it,
    high.
    """
    return not estimate.window and estimate.rate < _SHARE * best


def is_sparse(since_cut: float, limited: int, answered: int) -> bool:
    """Whether a new 429, *since_cut* seconds after the last cut, is that event still.

    429s of other callers spending the same quota come whatever the pace: within a
    second of a cut, only 3 or more that are a tenth of the answers since (*limited*
    of *answered*) say the pace is still too high. Each such 429 closes the gate for
    what it asks, but cuts nothing: when each asked for a few milliseconds, every
    one was a new event, and the pace halved four times in 80 ms.
    """
    congested = limited >= _CONGESTED_COUNT and limited >= _CONGESTED_SHARE * answered
    return since_cut < _MIN_EVENT_GAP and not congested


def cut_to(current: float, estimate: Estimate | None, wait: float) -> tuple[float, float]:
    """The pace after a congestion event, and how fast it then probes upwards.

    Args:
        current: The pace (or the send rate) the event came at.
        estimate: The limiter's rate measured by :func:`estimate_rate`, if any.
        wait: The pause the event's 429 costs.

    Returns:
        (requests a second, probe: the share of it added each second). Measured: a
        little under the estimate (a window's estimate is under its rate already; its
        bound, 1 % under), and under the pace the event came at, probing slowly;
        faster after a window's first estimate, which reads low. Blind: a cut to 70 %,
        or to 10 % when each 429 costs a long pause (an integer ``Retry-After``: fewer
        429s to the right pace, and the next phase is long enough to measure it).
    """
    if estimate is None:
        blind = DECREASE if wait < REFILL_PAUSE else COSTLY_DECREASE
        return current * blind, PROBE_PER_SECOND
    rate = MEASURED_MARGIN * min(current, estimate.rate)
    if estimate.window:  # under the rate already, and under the pace the 429 came at
        rate = min(MEASURED_MARGIN * current, estimate.rate)
        if estimate.kind == "bound":
            rate *= BOUND_MARGIN
    probe = WINDOW_PROBE_PER_SECOND if estimate.kind == "window" else MEASURED_PROBE_PER_SECOND
    return rate, probe


@attrs.frozen
class Ramp:
    """A phase that climbed (a slow start), its pace sampled: what it wasted of a refill.

    From a full bucket, a pace under the limiter's rate R wastes the refill: the bucket
    cannot hold more. The two phases' equation (see :func:`estimate_rate`) then reads R
    low, by what was wasted over the phase's length; given the pace, that is
    ``integral of max(0, R - pace(t)) dt``, and R can be solved for.
    """

    step: float
    """Seconds between samples."""
    paces: tuple[float, ...]
    """Requests a second, at the middle of each step."""

    @classmethod
    def of(cls, pace: Callable[[float], float], start: float, end: float) -> Ramp | None:
        """Sample *pace* (requests a second at a time) from *start* to *end*; None if short."""
        if end - start < MIN_PHASE:
            return None
        step = (end - start) / _RAMP_SAMPLES
        return cls(step, tuple(pace(start + (i + 0.5) * step) for i in range(_RAMP_SAMPLES)))

    def wasted(self, rate: float) -> float:
        """The refill a bucket of *rate* wasted while full over the phase: none over it."""
        return self.step * sum(rate - each for each in self.paces if each < rate)


def _refill(gained: float, span: float, ramp: Ramp | None) -> float:
    """The rate R with ``gained = R * span - wasted(R)``: the two phases' equation.

    Without a ramp, nothing was wasted. With one, the right side grows with R while R is
    under the ramp's pace for less than *span* (it passed R before the refusal), so R
    is found by bisection, from the reading without waste (a floor) up to the ramp's
    top, which a long climb may have taken far up: halving the ratio, not the gap.
    """
    low = gained / span
    if ramp is None:
        return low
    high = max(low, *ramp.paces)
    for _ in range(_BISECTIONS):
        middle = math.sqrt(low * high)
        if middle * span - ramp.wasted(middle) < gained:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def probed_rate(
    cut_rate: float,
    since_cut: float,
    probe: float,
    *,
    quiet: float,
    cheap: bool,
    peak: float,
) -> float:
    """The pace *since_cut* seconds after a cut to *cut_rate*: how it probes upwards.

    Linearly, by *probe* of the cut rate each second, and more the longer it goes on
    (by the cube of the time: a pace probing for two minutes has doubled, TCP CUBIC's
    convex probe), so that a pace measured while others spent the same quota finds
    what they leave when they stop; back to what the server has
    admitted before (a little under its best second, *peak*) fast, doubling each second;
    and, after a cut whose 429 cost little (*cheap*), doubling each second once *quiet*
    seconds have passed without a 429, to find out quickly whether the limit moved.
    """
    rate = cut_rate * (1.0 + probe * since_cut + (since_cut / DOUBLED_AFTER) ** 3)
    after_quiet = quiet - QUIET
    if cheap and after_quiet > 0:
        rate = max(rate, cut_rate * 2.0 ** min(after_quiet, 64.0))
    ceiling = MEASURED_MARGIN * peak
    if rate < ceiling:
        rate = min(ceiling, cut_rate * 2.0 ** min(since_cut, 64.0))
    return rate


@attrs.define
class AdmittedRate:
    """The answers other than 429 a second: each whole second's, and the best of them.

    A real limiter admits about its rate, so what it admitted is a floor for a cut and
    a ceiling to climb back to fast.
    """

    second: float = 0.0
    """When the current second began."""
    count: int = 0
    last: float = 0.0
    """The last whole second's rate."""
    best: float = 0.0
    """The better of the last two seconds'."""
    peak: float = 0.0
    """The best second of all (or a first estimate of it)."""

    def add(self, now: float) -> None:
        """Count an answer admitted at *now*."""
        self._roll(now)
        self.count += 1

    def _roll(self, now: float) -> None:
        if now - self.second >= 1.0:  # the current second is over
            seconds = now - self.second
            rate = self.count / seconds if seconds < 2.0 else 0.0
            self.best = max(rate, self.last)
            self.last = rate
            self.peak = max(self.peak, rate)
            self.second, self.count = now, 0

    def floor(self, now: float) -> float:
        """90 % of the best rate admitted in the last two whole seconds before *now*.

        Seconds in which nothing was admitted count: a floor of seconds long gone
        would hold a pace the server now refuses whole.
        """
        self._roll(now)
        return ADMITTED_FLOOR * max(self.best, self.last)
