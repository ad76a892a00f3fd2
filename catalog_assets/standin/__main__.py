"""`python -m catalog_assets.standin --port 8089 --latency 2 --images-per-minute 600 --api-key sk-test`:
serve the Images API stand-in until interrupted; the first line printed is `OPENAI_BASE_URL=...`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from catalog_assets.standin.config import EARLIER_ATTEMPT_FAULTS, FAULT_KINDS, StandInConfig
from catalog_assets.standin.control import StandInServer


def _fault(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    if not sep or kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}")
    return kind, float(rate)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m catalog_assets.standin",
        description="Local stand-in for the OpenAI Images API (POST /v1/images/generations). "
        "Control endpoints: GET /_stats, POST /_reset, GET|POST /_config, GET /healthz.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port (default: %(default)s)")
    parser.add_argument("--api-key", help="the only key accepted (default: any non-empty key)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per image (default: %(default)s)")
    parser.add_argument("--jitter", type=float, default=0.0, help="+/- seconds of uniform latency jitter")
    parser.add_argument(
        "--images-per-minute", type=float, help="rate limit answered with 429 (default: none)"
    )
    parser.add_argument("--burst", type=float, help="images allowed at once (default: one second's worth)")
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"inject a fault with this probability; KIND: {', '.join(FAULT_KINDS)} (repeatable)",
    )
    parser.add_argument(
        "--earlier-attempt-mix",
        action="store_true",
        help="faults of the earlier attempt: 22%% of first attempts fail, 42/31/18/9 rate limit/moderation/"
        "hang/500 (implies --first-attempt-only)",
    )
    parser.add_argument("--first-attempt-only", action="store_true", help="inject faults into attempt 1 only")
    parser.add_argument("--moderation-word", action="append", default=[], help="always block prompts with it")
    parser.add_argument(
        "--hang-seconds", type=float, default=30.0, help="how long a hang holds the connection"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws (default: %(default)s)")
    parser.add_argument("--response-shape", choices=("b64_json", "url"), default="b64_json")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> StandInConfig:
    faults = dict(EARLIER_ATTEMPT_FAULTS) if args.earlier_attempt_mix else {}
    faults.update(dict(args.fault))
    return StandInConfig(
        api_key=args.api_key,
        latency_s=args.latency,
        latency_jitter_s=args.jitter,
        images_per_minute=args.images_per_minute,
        burst=args.burst,
        faults=faults,
        first_attempt_only=args.first_attempt_only or args.earlier_attempt_mix,
        moderation_words=args.moderation_word,
        hang_s=args.hang_seconds,
        seed=args.seed,
        response_shape=args.response_shape,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s"
    )
    server = StandInServer(config, host=args.host, port=args.port)
    base_url = server.start()
    print(f"OPENAI_BASE_URL={base_url}", flush=True)
    limit = f"{config.images_per_minute:g} images/min" if config.images_per_minute else "no rate limit"
    key = "one key accepted (--api-key)" if config.api_key else "any key accepted"
    print(
        f"# OpenAI Images API stand-in: latency {config.latency_s:g}s, {limit}, {key}, "
        f"faults {config.faults or 'none'}; stats at {server.root_url}/_stats; Ctrl-C stops",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
