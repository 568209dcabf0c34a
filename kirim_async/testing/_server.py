"""FakeKirimServer: ``POST /v1/labels`` on loopback, as faithful and as hostile as asked."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Literal, get_args

import attrs
from aiohttp import web

from .. import _json
from .._validators import (
    bearer_token,
    flag,
    non_negative,
    one_of,
    positive,
    text,
    whole_number,
)
from ..errors import InvalidParameterError
from ..models import TEAM_ID_MAX_LENGTH
from ._contract import Rejection, ValidBody, bearer_matches, is_json, validate_body
from ._faults import Fault, FaultPlan, fault_probabilities
from ._ids import new_id
from ._ratelimit import (
    FixedWindow,
    Limiter,
    RetryAfterStyle,
    SlidingWindow,
    TokenBucket,
    retry_after_seconds,
)
from ._threaded import serving_in_thread

__all__ = [
    "FakeKirimServer",
    "HintStyle",
    "LimiterStyle",
    "RetryAfterStyle",
    "ServerStats",
    "SuccessStatus",
    "ValidationStatus",
]

LimiterStyle = Literal["token-bucket", "fixed-window", "sliding-window"]
HintStyle = Literal["x-ratelimit", "github", "discord", "ietf"]
SuccessStatus = Literal[201, 200]
ValidationStatus = Literal[400, 422]

_ERROR_TYPES = {
    400: "invalid_request_error",
    422: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
}
# What a newer API might add (extra_fields=True): a null, a number and a boolean here,
# an array (the envelope's warnings) and a string (an error's doc_url) below.
_EXTRA_LABEL_FIELDS = {"description": None, "usage_count": 0, "archived": False}
_NOT_OURS_WAIT = 0.1  # Fault.RATE_LIMITED: the Retry-After of another caller's 429
_BEFORE_HANDLING = frozenset({Fault.SERVER_ERROR, Fault.BAD_GATEWAY, Fault.UNAVAILABLE, Fault.DROP})
_BAD_GATEWAY_HTML = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


@attrs.define
class ServerStats:
    """What the server has seen, for tests and benchmarks to assert on.

    Attributes:
        requests: Requests received on ``POST /v1/labels``.
        by_status: Answers sent, by HTTP status (dropped connections are not answers).
        in_flight: Requests being handled now.
        max_in_flight: The most requests handled at the same time.
        dropped: Connections dropped on purpose (``Fault.DROP``, ``Fault.STORE_THEN_DROP``).
        truncated: Answers cut short on purpose (``Fault.STORE_THEN_TRUNCATE``).
        faults: Faults injected, by kind.
    """

    requests: int = 0
    by_status: Counter[int] = attrs.field(factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    dropped: int = 0
    truncated: int = 0
    faults: Counter[Fault] = attrs.field(factory=Counter)

    @property
    def rate_limited(self) -> int:
        """How many 429 answers were sent."""
        return self.by_status[429]


def _token_or_random(token: str | None) -> str:
    return token or f"kirim_test_{secrets.token_hex(16)}"


def _team_ids(teams: Sequence[str]) -> tuple[str, ...]:
    # A lone string is a sequence too: "team_a" would become five one-letter teams.
    if isinstance(teams, str) or not teams:
        raise InvalidParameterError("teams", "must be a non-empty sequence of team ids", teams)
    return tuple(teams)


def _port(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise InvalidParameterError(attribute.name, "must be 0-65535 (0: any free port)", value)


def _needs_rate(instance: FakeKirimServer, attribute: attrs.Attribute[Any], value: object) -> None:
    if instance.rate is None:
        raise InvalidParameterError(attribute.name, "applies only with a rate", value)


_fixed = attrs.setters.frozen  # read when the server is built: a later change would be a lie


@attrs.define(kw_only=True, eq=False, repr=False)
class FakeKirimServer:
    """A real aiohttp server implementing the Kirim API's ``POST /v1/labels``.

    Use it as ``async with FakeKirimServer() as server:`` inside a running loop, or
    ``with FakeKirimServer().running_in_thread() as server:`` from synchronous code.
    Every knob is off by default: the server then behaves as the real API does.

    Args:
        token: The bearer token it accepts; a random one by default (``server.token``).
        host: Address to listen on; loopback by default.
        port: Port to listen on; 0 picks a free one (``server.url`` tells which).
        teams: The organisation's team ids. With one team a request may leave
            ``team_id`` out; with several it must send it. An unknown team is a 400.
        rate: Requests per second allowed; None for no limit.
        burst: The token bucket's capacity (default ``ceil(rate)``), or a window's
            limit (default ``ceil(rate * window)``).
        limiter: How the rate is enforced: a ``"token-bucket"`` (GCRA alike), a
            ``"fixed-window"`` whose count resets at once when each window ends, or a
            ``"sliding-window"`` (at most the limit in any window).
        window: A window's length in seconds (the windowed limiters only).
        retry_after: How 429 answers say when to come back: fractional ``"seconds"``,
            whole ``"integer"`` seconds rounded up, an ``"http-date"`` (whole seconds,
            beside the answer's ``Date``), or ``"none"`` at all.
        rate_limit_headers: Send hint headers on every answer while rate limiting (the
            real API documents none), in the style of ``hints``.
        hints: ``"x-ratelimit"``: ``X-RateLimit-Limit/Remaining`` and ``-Reset`` as
            fractional seconds until the quota is whole; ``"github"``: the same names
            in lower case, plus ``-used``, and ``-reset`` as the Unix second the quota
            is whole again; ``"discord"``: ``-Reset`` as a Unix time with decimals and
            ``X-RateLimit-Reset-After`` as fractional seconds; ``"ietf"``: the IETF
            draft's ``RateLimit-Policy: "default";q=L;w=W`` and ``RateLimit:
            "default";r=R;t=T`` (whole numbers).
        faults_spend_quota: Whether a request that meets a fault took its place in the
            rate limit first (as a limiter in front of the API would have), or the
            fault was met before the limiter.
        success_status: The status of a created label's answer: 201, or 200 (the
            vendor's page names neither, and both occur).
        validation_status: The status of a validation failure: 400, or 422 (which the
            API may send for the same).
        extra_fields: Add fields that no client knows yet to every JSON answer, as a
            growing API does: ``description``, ``usage_count`` and ``archived`` in
            ``data``, ``warnings`` beside it, ``doc_url`` in ``error``.
        latency: Seconds added to every request before it is answered.
        faults: Probability of each :class:`Fault` per request (summing to <= 1).
        faults_for: Seconds, from the first request, during which ``faults`` are drawn;
            after that none are (say, 429s of other callers for the first 20 s of a job,
            then none). None: for the server's whole life. Scripted faults ignore it.
        fault_latency: Seconds added by ``Fault.LATENCY``.
        answer_delay: Seconds ``Fault.STORE_THEN_DELAY`` waits before answering.
        seed: Seed for the fault draw, for repeatable runs.
        clock: Monotonic clock for the rate limit, in seconds.

    Raises:
        InvalidParameterError: An option breaks its rule (it is also a ``ValueError``),
            when the server is built or when the attribute is set later. ``rate``,
            ``burst``, ``faults``, ``faults_for``, ``seed`` and ``clock`` cannot be
            changed afterwards.
    """

    token: str = attrs.field(default=None, converter=_token_or_random, validator=bearer_token)
    host: str = "127.0.0.1"
    port: int = attrs.field(default=0, validator=_port)
    teams: tuple[str, ...] = attrs.field(
        default=("team_default",),
        converter=_team_ids,
        validator=attrs.validators.deep_iterable(text(1, TEAM_ID_MAX_LENGTH)),
    )
    rate: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive), on_setattr=_fixed
    )
    burst: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional([whole_number(1), _needs_rate]),
        on_setattr=_fixed,
    )
    retry_after: RetryAfterStyle = attrs.field(
        default="seconds", validator=one_of(get_args(RetryAfterStyle))
    )
    rate_limit_headers: bool = attrs.field(default=True, validator=flag)
    limiter: LimiterStyle = attrs.field(
        default="token-bucket", validator=one_of(get_args(LimiterStyle)), on_setattr=_fixed
    )
    window: float = attrs.field(default=1.0, validator=positive, on_setattr=_fixed)
    hints: HintStyle = attrs.field(default="x-ratelimit", validator=one_of(get_args(HintStyle)))
    faults_spend_quota: bool = attrs.field(default=True, validator=flag)
    success_status: SuccessStatus = attrs.field(
        default=201, validator=one_of(get_args(SuccessStatus))
    )
    validation_status: ValidationStatus = attrs.field(
        default=400, validator=one_of(get_args(ValidationStatus))
    )
    extra_fields: bool = attrs.field(default=False, validator=flag)
    latency: float = attrs.field(default=0.0, validator=non_negative)
    faults: dict[Fault, float] = attrs.field(
        factory=dict, converter=fault_probabilities, on_setattr=_fixed
    )
    faults_for: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive), on_setattr=_fixed
    )
    fault_latency: float = attrs.field(default=0.05, validator=non_negative)
    answer_delay: float = attrs.field(default=30.0, validator=non_negative)
    seed: int | None = attrs.field(default=None, on_setattr=_fixed)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, on_setattr=_fixed)

    stats: ServerStats = attrs.field(init=False, factory=ServerStats)
    _limiter: Limiter | None = attrs.field(init=False)
    _plan: FaultPlan = attrs.field(init=False)
    _labels: dict[tuple[str, str], dict[str, str]] = attrs.field(init=False, factory=dict)
    _runner: web.AppRunner | None = attrs.field(init=False, default=None)
    _closing: asyncio.Event = attrs.field(init=False, factory=asyncio.Event)

    def __attrs_post_init__(self) -> None:
        self._limiter = self._new_limiter()
        self._plan = FaultPlan(
            probabilities=self.faults, seed=self.seed, lasts=self.faults_for, clock=self.clock
        )

    def _new_limiter(self) -> Limiter | None:
        rate = self.rate
        if rate is None:
            return None
        if self.limiter == "token-bucket":
            burst = math.ceil(rate) if self.burst is None else self.burst
            return TokenBucket(rate=rate, burst=burst, clock=self.clock)
        limit = math.ceil(rate * self.window) if self.burst is None else self.burst
        windowed = FixedWindow if self.limiter == "fixed-window" else SlidingWindow
        return windowed(limit=limit, window=self.window, clock=self.clock)

    def __repr__(self) -> str:
        state = self.url if self._runner else "not started"
        return f"<FakeKirimServer {state}>"

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give a client, e.g. ``http://127.0.0.1:54321/v1``."""
        if self._runner is None:
            raise RuntimeError("FakeKirimServer is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    async def start(self) -> None:
        """Start listening; ``server.url`` is valid afterwards."""
        if self._runner is not None:
            raise RuntimeError("FakeKirimServer is already started")
        app = web.Application()
        app.router.add_post("/v1/labels", self._create_label)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        self._closing = asyncio.Event()
        self._runner = runner

    async def close(self) -> None:
        """Stop listening and end every pending answer at once."""
        if self._runner is None:
            return
        self._closing.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> FakeKirimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[FakeKirimServer]:
        """Run the server on its own event loop in a background thread.

        For synchronous tests, subprocess tests and fixtures that must not depend on
        the caller's event loop.
        """
        with serving_in_thread(self.start, self.close, name="FakeKirimServer"):
            yield self

    # -- introspection and control ---------------------------------------------

    @property
    def labels(self) -> list[dict[str, str]]:
        """Every stored label, as the API returned it (less ``extra_fields``), in creation order."""
        return list(self._labels.values())

    def script(self, *faults: Fault | None) -> None:
        """Make the next requests meet these faults, in order (``None``: no fault)."""
        self._plan.script(faults)

    # -- the endpoint ----------------------------------------------------------

    async def _create_label(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await self._handle(request)
        finally:
            stats.in_flight -= 1
        if response is None:  # the connection is gone (dropped on purpose, or by the client)
            return web.Response()
        if not response.prepared:  # a truncated answer counted itself
            stats.by_status[response.status] += 1
        return response

    async def _handle(  # noqa: PLR0911 - one return per kind of answer the API gives
        self, request: web.Request
    ) -> web.StreamResponse | None:
        request_id = new_id("req")
        if self.latency:
            await self._pause(self.latency)
        if not bearer_matches(request.headers.get("Authorization"), self.token):
            return self._error(
                401, "invalid_api_key", "Invalid or missing bearer token.", request_id
            )
        fault, refused = self._admit(request_id)
        if refused is not None:
            return refused
        if fault in _BEFORE_HANDLING:
            return self._unhandled(fault, request, request_id)
        if fault is Fault.LATENCY:
            await self._pause(self.fault_latency)

        try:
            raw = await request.read()
        except ConnectionResetError:  # the client went away mid-body: nothing to answer
            return None
        response = self._process(
            raw,
            request.headers.get("Content-Type"),
            request_id,
            malform=fault is Fault.STORE_THEN_MALFORM,
        )
        if fault is Fault.STORE_THEN_DROP:
            self._drop(request)
            return None
        if fault is Fault.STORE_THEN_TRUNCATE:
            return await self._truncate(request, response)
        if fault is Fault.STORE_THEN_GARBLE:
            return self._garbled(response)
        if fault is Fault.STORE_THEN_DELAY:
            await self._pause(self.answer_delay)
        return response

    def _admit(self, request_id: str) -> tuple[Fault | None, web.Response | None]:
        """Draw the request's fault and take its place in the rate limit (a 429 if none).

        The order follows ``faults_spend_quota``.
        """
        limiter = self._limiter
        if self.faults_spend_quota and limiter is not None and not limiter.try_take():
            return None, self._rate_limited(request_id)
        fault = self._plan.next_fault()
        if fault is not None:
            self.stats.faults[fault] += 1
            if fault is Fault.RATE_LIMITED:  # another caller spent the quota
                return fault, self._rate_limited(request_id, wait=_NOT_OURS_WAIT)
            if fault in _BEFORE_HANDLING:
                return fault, None
        if not self.faults_spend_quota and limiter is not None and not limiter.try_take():
            return fault, self._rate_limited(request_id)
        return fault, None

    def _unhandled(
        self, fault: Fault, request: web.Request, request_id: str
    ) -> web.Response | None:
        """The answer of a fault met before the request is handled: nothing is stored."""
        if fault is Fault.SERVER_ERROR:
            return self._error(500, "internal_error", "Something went wrong.", request_id)
        if fault is Fault.BAD_GATEWAY:
            return web.Response(status=502, body=_BAD_GATEWAY_HTML, content_type="text/html")
        if fault is Fault.UNAVAILABLE:
            return web.Response(status=503)
        self._drop(request)  # Fault.DROP
        return None

    def _process(
        self, raw: bytes, content_type: str | None, request_id: str, *, malform: bool = False
    ) -> web.Response:
        if not is_json(content_type):
            return self._reject(
                Rejection("invalid_content_type", "The Content-Type must be application/json."),
                request_id,
            )
        try:
            body = _json.loads(raw)
        except _json.JSONDecodeError:
            return self._reject(
                Rejection("invalid_json", "The body is not valid JSON."), request_id
            )
        checked = validate_body(body)
        if isinstance(checked, Rejection):
            return self._reject(checked, request_id)
        team_id = self._resolve_team(checked)
        if isinstance(team_id, Rejection):
            return self._reject(team_id, request_id)
        key = (team_id, checked.name)
        if key in self._labels:
            return self._reject(
                Rejection(
                    "invalid_field_value",
                    "A label with this name already exists in this team.",
                    "name",
                ),
                request_id,
            )
        now = _rfc3339_now()
        label = {
            "id": new_id("lbl"),
            "object": "label",
            "name": checked.name,
            "color": checked.color,
            "team_id": team_id,
            "created_at": now,
            "updated_at": now,
        }
        self._labels[key] = label
        return self._created(label, request_id, malform=malform)

    def _created(self, label: dict[str, str], request_id: str, *, malform: bool) -> web.Response:
        """The answer for a label just stored, as the knobs and the fault shape it."""
        if malform:  # the vendor page's example: most required fields, request_id missing
            partial = {"id": label["id"], "object": "label", "color": label["color"]}
            return self._json(self.success_status, {"data": partial})
        if not self.extra_fields:
            return self._json(self.success_status, {"data": label, "request_id": request_id})
        data = {**label, **_EXTRA_LABEL_FIELDS}
        return self._json(
            self.success_status, {"data": data, "request_id": request_id, "warnings": []}
        )

    def _resolve_team(self, body: ValidBody) -> str | Rejection:
        if body.team_id is None:
            if len(self.teams) == 1:
                return self.teams[0]
            return Rejection(
                "missing_field", "team_id is required in a multi-team organisation.", "team_id"
            )
        if body.team_id not in self.teams:
            return Rejection("invalid_field_value", "No team has this team_id.", "team_id")
        return body.team_id

    # -- answers ---------------------------------------------------------------

    def _json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        all_headers = self._rate_limit_headers()
        all_headers.update(headers or {})
        return web.Response(
            status=status,
            body=_json.dumps(payload),
            content_type="application/json",
            headers=all_headers,
        )

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        error: dict[str, str] = {"type": _ERROR_TYPES[status], "code": code, "message": message}
        if param is not None:
            error["param"] = param
        error["request_id"] = request_id
        if self.extra_fields:
            error["doc_url"] = f"https://docs.kirim.example/errors#{code}"  # a reserved domain
        return self._json(status, {"error": error}, headers)

    def _reject(self, rejection: Rejection, request_id: str) -> web.Response:
        return self._error(
            self.validation_status,
            rejection.code,
            rejection.message,
            request_id,
            param=rejection.param,
        )

    def _rate_limited(self, request_id: str, wait: float | None = None) -> web.Response:
        headers = {}
        if wait is None:
            assert self._limiter is not None  # noqa: S101 - only called when limiting
            wait = self._limiter.seconds_until_token
        named = retry_after_seconds(self.retry_after, wait)
        if named is not None and self.retry_after == "http-date":
            headers["Retry-After"] = email.utils.formatdate(time.time() + named, usegmt=True)
        elif named is not None:
            headers["Retry-After"] = (
                f"{named:.3f}" if self.retry_after == "seconds" else f"{named:.0f}"
            )
        return self._error(
            429, "rate_limit_exceeded", "Too many requests.", request_id, headers=headers
        )

    def _rate_limit_headers(self) -> dict[str, str]:
        limiter = self._limiter
        if limiter is None or not self.rate_limit_headers:
            return {}
        limit, remaining, reset = limiter.limit, limiter.remaining, limiter.seconds_until_full
        if self.hints == "x-ratelimit":
            return {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{reset:.3f}",
            }
        if self.hints == "github":
            return {
                "x-ratelimit-limit": str(limit),
                "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-used": str(limit - remaining),
                "x-ratelimit-reset": str(math.ceil(time.time() + reset)),
            }
        if self.hints == "discord":
            return {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{time.time() + reset:.3f}",
                "X-RateLimit-Reset-After": f"{reset:.3f}",
            }
        # "ietf": whole numbers only. A bucket's policy is its rate over a whole second
        # or more; a window's is its limit over its length.
        window = max(1, round(limiter.window))
        if isinstance(limiter, TokenBucket):
            limit = round(limiter.rate * window)
        return {
            "RateLimit-Policy": f'"default";q={limit};w={window}',
            "RateLimit": f'"default";r={remaining};t={math.ceil(reset)}',
        }

    def _drop(self, request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()
        self.stats.dropped += 1

    async def _truncate(self, request: web.Request, full: web.Response) -> web.StreamResponse:
        body = full.body
        assert isinstance(body, bytes)  # noqa: S101 - _json always sets bytes
        partial = web.StreamResponse(status=full.status, headers=full.headers)
        partial.content_length = len(body)
        await partial.prepare(request)
        await partial.write(body[: len(body) // 2])
        transport = request.transport
        if transport is not None:
            transport.close()
        self.stats.truncated += 1
        self.stats.by_status[full.status] += 1
        return partial

    def _garbled(self, full: web.Response) -> web.Response:
        """*full* as a complete answer whose body is the first half of its document."""
        body = full.body
        assert isinstance(body, bytes)  # noqa: S101 - _json always sets bytes
        headers = {k: v for k, v in full.headers.items() if k.lower() != "content-length"}
        return web.Response(status=full.status, body=body[: len(body) // 2], headers=headers)

    async def _pause(self, seconds: float) -> None:
        """Wait *seconds*, or less if the server is closing."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)


def _rfc3339_now() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
