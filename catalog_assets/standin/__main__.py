"""`python -m catalog_assets.standin --port 8089 --latency 2 --images-per-minute 600 --api-key sk-test`:
serve the OpenAI API stand-in (images, files, batches, responses, embeddings) until interrupted; the first
line printed is `OPENAI_BASE_URL=...`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from catalog_assets.standin.config import (
    BATCH_LINE_FAULTS,
    EARLIER_ATTEMPT_FAULTS,
    FAULT_KINDS,
    StandInConfig,
)
from catalog_assets.standin.control import StandInServer


def _fault(text: str, kinds: tuple[str, ...] = FAULT_KINDS) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    if not sep or kind not in kinds:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE with KIND one of {', '.join(kinds)}")
    try:
        return kind, float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"RATE must be a number, not {rate!r}") from None


def _batch_fault(text: str) -> tuple[str, float]:
    return _fault(text, BATCH_LINE_FAULTS)


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m catalog_assets.standin",
        description="Local stand-in for the OpenAI API: POST /v1/images/generations; the Files and Batches "
        "API (/v1/files, /v1/files/ID/content, /v1/batches, /v1/batches/ID/cancel); POST /v1/responses (a "
        "deterministic image review filling the request's JSON schema); POST /v1/embeddings (hashing vectors). "
        "Control endpoints: GET /_stats, POST /_reset, GET|POST /_config (any setting by name), GET /healthz.",
        epilog="Reviews: the product id comes from X-Client-Request-Id (PROD-000123-a1-xyz), else a "
        "'product id: X' line of the input text, else the first ABC-000123-like token; its name from a "
        "'product: X' / 'name: X' line. Batch lines bill the product of their custom_id (PROD-000123, "
        "PROD-000123-a1-xyz or PROD-000123:anything).",
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
    batch = parser.add_argument_group("Files and Batches API")
    batch.add_argument(
        "--batch-delay", type=float, default=0.05, help="seconds a batch validates, and again finalizes"
    )
    batch.add_argument("--batch-line-delay", type=float, default=0.0, help="seconds per batch line")
    batch.add_argument(
        "--batch-fault",
        type=_batch_fault,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"fault per batch line; KIND: {', '.join(BATCH_LINE_FAULTS)} (refusals answer 400, the others "
        "500; --earlier-attempt-mix sets the earlier attempt's mix here too)",
    )
    batch.add_argument(
        "--batch-unsupported-model",
        action="append",
        default=[],
        metavar="MODEL",
        help="batches of this image model fail validation (repeatable)",
    )
    batch.add_argument(
        "--batch-expire-after-lines",
        type=int,
        metavar="N",
        help="a batch expires after N lines ran (the rest: batch_expired in the error file)",
    )
    batch.add_argument(
        "--batch-window", type=float, default=86400.0, help="seconds until a batch expires (default: 24h)"
    )
    batch.add_argument(
        "--batch-queue-limit",
        type=int,
        metavar="N",
        help="images in flight across image batches; a batch past it fails with token_limit_exceeded",
    )
    batch.add_argument(
        "--batch-api-fault",
        type=lambda text: _fault(text, ("rate_limit", "server_error", "hang")),
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="faults of the Files and Batches endpoints themselves (rate_limit, server_error, hang)",
    )
    batch.add_argument("--data-dir", help="where files live (default: a temporary directory)")
    review = parser.add_argument_group("Responses API (image review) and Embeddings API")
    review.add_argument(
        "--review-reject",
        type=_ids,
        action="append",
        default=[],
        metavar="ID,ID",
        help="judge these products' images as not showing the product (repeatable, comma-separated)",
    )
    review.add_argument(
        "--review-reject-rate",
        type=float,
        default=0.0,
        help="share of other products (a hash of the id) judged as not shown",
    )
    review.add_argument(
        "--review-fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="faults of /v1/responses",
    )
    review.add_argument(
        "--embedding-fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="faults of /v1/embeddings",
    )
    review.add_argument("--review-requests-per-minute", type=float, help="rate limit of /v1/responses")
    review.add_argument("--embedding-requests-per-minute", type=float, help="rate limit of /v1/embeddings")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> StandInConfig:
    faults = dict(EARLIER_ATTEMPT_FAULTS) if args.earlier_attempt_mix else {}
    faults.update(dict(args.fault))
    batch_faults = {k: v for k, v in EARLIER_ATTEMPT_FAULTS.items()} if args.earlier_attempt_mix else {}
    batch_faults.update(dict(args.batch_fault))
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
        batch_delay_s=args.batch_delay,
        batch_line_delay_s=args.batch_line_delay,
        batch_faults=batch_faults,
        batch_unsupported_models=args.batch_unsupported_model,
        batch_expire_after_lines=args.batch_expire_after_lines,
        batch_window_s=args.batch_window,
        batch_queue_limit=args.batch_queue_limit,
        batch_api_faults=dict(args.batch_api_fault),
        data_dir=args.data_dir,
        review_reject=[pid for group in args.review_reject for pid in group],
        review_reject_rate=args.review_reject_rate,
        review_faults=dict(args.review_fault),
        embedding_faults=dict(args.embedding_fault),
        review_requests_per_minute=args.review_requests_per_minute,
        embedding_requests_per_minute=args.embedding_requests_per_minute,
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
        f"# OpenAI API stand-in: latency {config.latency_s:g}s, {limit}, {key}, "
        f"faults {config.faults or 'none'}, batch line faults {config.batch_faults or 'none'}; "
        f"stats at {server.root_url}/_stats; Ctrl-C stops",
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
