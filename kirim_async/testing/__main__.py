"""Run FakeKirimServer standalone: ``python -m kirim_async.testing --port 8080``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import get_args

from ._faults import Fault
from ._server import (
    FakeKirimServer,
    HintStyle,
    LimiterStyle,
    RetryAfterStyle,
    SuccessStatus,
    ValidationStatus,
)


def _fault_probability(text: str) -> tuple[Fault, float]:
    kind, _, probability = text.partition("=")
    try:
        return Fault(kind), float(probability)
    except ValueError:
        kinds = ", ".join(f.value for f in Fault)
        msg = f"expected KIND=PROBABILITY with KIND one of {kinds}, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kirim_async.testing",
        description="Run a fake Kirim API server (POST /v1/labels) for local testing.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port, 0 for any (default: 8080)")
    parser.add_argument("--token", help="bearer token to accept (default: a random one, printed)")
    parser.add_argument(
        "--team",
        action="append",
        dest="teams",
        metavar="TEAM_ID",
        help="a team of the organisation; repeat for a multi-team one",
    )
    parser.add_argument("--rate", type=float, help="requests per second before 429s")
    parser.add_argument(
        "--burst",
        type=int,
        help="token bucket capacity (default: ceil(rate)), or a window's limit "
        "(default: ceil(rate * window))",
    )
    parser.add_argument(
        "--limiter",
        choices=get_args(LimiterStyle),
        default="token-bucket",
        help="how the rate is enforced (default: %(default)s)",
    )
    parser.add_argument(
        "--window", type=float, default=1.0, help="a window's seconds (default: %(default)s)"
    )
    parser.add_argument(
        "--hints",
        choices=get_args(HintStyle),
        default="x-ratelimit",
        help="style of the rate-limit hint headers (default: %(default)s)",
    )
    parser.add_argument(
        "--faults-before-quota",
        dest="faults_spend_quota",
        action="store_false",
        help="a faulted request does not spend its place in the rate limit",
    )
    parser.add_argument(
        "--retry-after",
        choices=get_args(RetryAfterStyle),
        default="seconds",
        help="form of the Retry-After header on 429 (default: %(default)s)",
    )
    parser.add_argument(
        "--no-rate-limit-headers",
        dest="rate_limit_headers",
        action="store_false",
        help="leave the rate-limit hint headers out of answers",
    )
    parser.add_argument(
        "--success-status",
        type=int,
        choices=get_args(SuccessStatus),
        default=201,
        help="status of a created label's answer (default: %(default)s)",
    )
    parser.add_argument(
        "--validation-status",
        type=int,
        choices=get_args(ValidationStatus),
        default=400,
        help="status of a validation failure (default: %(default)s)",
    )
    parser.add_argument(
        "--extra-fields",
        action="store_true",
        help="add fields no client knows yet to every answer, as a growing API does",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    parser.add_argument(
        "--fault",
        action="append",
        type=_fault_probability,
        default=[],
        metavar="KIND=P",
        help="inject a fault with probability P; KIND is one of: "
        + ", ".join(f.value for f in Fault),
    )
    parser.add_argument(
        "--faults-for",
        type=float,
        metavar="SECONDS",
        help="draw the --fault faults only for this long from the first request",
    )
    parser.add_argument(
        "--answer-delay",
        type=float,
        default=30.0,
        help="seconds store-then-delay waits (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, help="seed for the fault draw")
    return parser


async def _serve(server: FakeKirimServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"FakeKirimServer listening on {server.url}", flush=True)
        print(f"token: {server.token}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse *argv*, run the server until SIGINT or SIGTERM, return the exit status."""
    args = _parser().parse_args(argv)
    try:
        server = FakeKirimServer(
            token=args.token,
            host=args.host,
            port=args.port,
            teams=args.teams or ("team_default",),
            rate=args.rate,
            burst=args.burst,
            limiter=args.limiter,
            window=args.window,
            hints=args.hints,
            faults_spend_quota=args.faults_spend_quota,
            retry_after=args.retry_after,
            rate_limit_headers=args.rate_limit_headers,
            success_status=args.success_status,
            validation_status=args.validation_status,
            extra_fields=args.extra_fields,
            latency=args.latency,
            faults=dict(args.fault),
            faults_for=args.faults_for,
            answer_delay=args.answer_delay,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(server))
    except OSError as exc:  # the address is taken, or not one of this machine's
        print(f"error: cannot listen on {args.host} port {args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
