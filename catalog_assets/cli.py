"""`catalog-images`: run the whole pipeline (every batch, then manifest, linked catalog and report) on the
Dagster instance under DAGSTER_HOME, so `dagster dev` shows the runs afterwards; `check` runs the asset checks,
`retry-failed` reruns the failed batches now, `dry-run` prices a run without calling the image API, and
`search` / `search-image` rank the linked catalog's image vectors against a text or a photo, and `reject` /
`unreject` record a person's verdict on a stored image (the next run retakes a rejected one)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _ensure_dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path(".dagster_home").resolve())
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    return Path(home)


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalog-images", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_run = sub.add_parser(
        "run", help="materialize the catalog, every batch, the manifest, linked catalog and report"
    )
    p_run.add_argument(
        "--catalog", default="data/catalog.json", help="catalog file (json, jsonl, csv, parquet)"
    )
    p_run.add_argument(
        "--parallel",
        type=_positive_int,
        default=max(1, os.cpu_count() or 1),
        help="batches run at once (processes)",
    )
    p_run.add_argument("--partitions", nargs="*", help="only these batch partitions (e.g. batch-0007)")
    p_run.add_argument(
        "--images-config",
        type=_json_arg,
        default=None,
        help="JSON config for product_images, e.g. '{\"max_cost_usd\": 5}'",
    )
    p_run.add_argument(
        "--mode",
        choices=("sync", "batch"),
        default=None,
        help="sync: one Images API call per product; batch: OpenAI's Batch API at half the price, this "
        "command waiting until every batch is ingested (default: CATALOG_GENERATION_MODE, else sync)",
    )
    p_run.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="batch mode: least seconds between two polls of one batch (default 10; grows with its age)",
    )

    p_check = sub.add_parser(
        "check", help="run the asset checks (no asset is materialized); exit 1 if one fails at ERROR"
    )
    p_check.add_argument(
        "--select", nargs="*", metavar="ASSET", help="only the checks on these assets (e.g. image_manifest)"
    )

    p_retry = sub.add_parser(
        "retry-failed", help="rerun now exactly the batches the failed-partition retry schedule would request"
    )
    p_retry.add_argument(
        "--include-missing",
        action="store_true",
        help="never-materialized batches too (like CATALOG_RETRY_INCLUDE_MISSING=1)",
    )
    p_retry.add_argument("--dry-run", action="store_true", help="list the batches, launch nothing")
    p_retry.add_argument(
        "--images-config", type=_json_arg, default=None, help="JSON config for product_images, as for `run`"
    )

    p_dry = sub.add_parser(
        "dry-run", help="print what `run` would call and cost, per batch, without calling the image API"
    )
    p_dry.add_argument(
        "--catalog", default="data/catalog.json", help="catalog file (json, jsonl, csv, parquet)"
    )
    p_dry.add_argument("--partitions", nargs="*", help="only these batch partitions (e.g. batch-0007)")

    p_reject = sub.add_parser(
        "reject", help="reject a product's stored image: the next run of its batch retakes it"
    )
    p_reject.add_argument("product_id", help="e.g. PROD-000123")
    p_reject.add_argument("--reason", required=True, help='what is wrong, e.g. "shows two bottles"')
    p_unreject = sub.add_parser("unreject", help="withdraw a rejection made with `reject`")
    p_unreject.add_argument("product_id", help="e.g. PROD-000123")

    p_search = sub.add_parser(
        "search", help="the products whose image vectors best match a text (id, score, name, image URL)"
    )
    p_search.add_argument("text", help='what to look for, e.g. "blue hand soap"')
    p_search.add_argument("--top", type=_positive_int, default=5, help="how many products to list")
    p_search_image = sub.add_parser(
        "search-image", help="the products whose image vectors best match a photo (described, then embedded)"
    )
    p_search_image.add_argument("path", help="a JPEG, PNG or WebP photo (at most 20 MB)")
    p_search_image.add_argument("--top", type=_positive_int, default=5, help="how many products to list")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    # Dagster's SQLite storage runs alembic on every new run database: its INFO lines drown the results
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.command == "dry-run":
        from catalog_assets.dryrun import dry_run

        text, code = dry_run(args.catalog, args.partitions)
        print(text, file=sys.stdout if code == 0 else sys.stderr)
        return code
    if args.command in ("search", "search-image"):
        from catalog_assets.search_commands import run_search

        image = args.command == "search-image"
        return run_search(args.path if image else args.text, image=image, top=args.top)
    if args.command in ("reject", "unreject"):
        from catalog_assets.review_commands import run_rejection

        withdraw = args.command == "unreject"
        return run_rejection(args.product_id, getattr(args, "reason", None), withdraw=withdraw)
    _ensure_dagster_home()
    if args.command == "run":
        from catalog_assets.runner import RunOptions, run

        return run(
            RunOptions(
                catalog=args.catalog,
                parallel=args.parallel,
                partitions=args.partitions,
                images_config=args.images_config,
                mode=args.mode,
                poll_interval_s=args.poll_interval,
            )
        )
    if args.command == "check":
        from catalog_assets.operations import check

        return check(args.select)
    if args.command == "retry-failed":
        from catalog_assets.operations import retry_failed

        return retry_failed(args.include_missing, dry_run=args.dry_run, images_config=args.images_config)
    return 2


if __name__ == "__main__":
    sys.exit(main())
