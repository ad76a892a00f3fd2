"""`catalog-images`: run the whole pipeline (every batch, then manifest, linked catalog and report) on the
Dagster instance under DAGSTER_HOME, so `dagster dev` shows the runs afterwards; `check` runs the asset checks
and `retry-failed` reruns the failed batches now."""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger("catalog_assets.cli")


def _ensure_dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path(".dagster_home").resolve())
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    return Path(home)


QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _materialize(
    instance,
    selection: Sequence[str],
    partition: str | None = None,
    run_config: dict | None = None,
    tags: Mapping[str, str] | None = None,
):
    from dagster import materialize

    from catalog_assets.checks import ALL_CHECKS
    from catalog_assets.definitions import ALL_ASSETS, resources_for_environment

    # checks included: a blocking check that fails stops linked_catalog from being published
    return materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=list(selection),
        partition_key=partition,
        instance=instance,
        resources=resources_for_environment(),
        run_config={**QUIET_CONSOLE, **(run_config or {})},
        raise_on_error=False,
        tags={"catalog-images/launched-by": "catalog-images run", **(tags or {})},
    )


def _worker(partitions: list[str], run_config: dict, queue) -> None:
    from dagster import DagsterInstance

    try:
        with DagsterInstance.get() as instance:  # one instance per worker: opening it costs more than a batch
            for key in partitions:
                start = time.monotonic()
                try:
                    result = _materialize(instance, ["product_images"], key, run_config)
                    ok, error = result.success, None if result.success else _failure(result)
                except Exception as exc:  # a framework error for one batch must not hang the others
                    ok, error = False, f"{type(exc).__name__}: {exc}"
                queue.put((key, ok, time.monotonic() - start, error))
    finally:
        queue.put(None)


def run(args: argparse.Namespace) -> int:
    home = _ensure_dagster_home()
    catalog_config = {"ops": {"product_catalog": {"config": {"path": args.catalog}}}}
    started = time.monotonic()
    log.info("DAGSTER_HOME=%s; materializing product_catalog from %s", home, args.catalog)
    from dagster import DagsterInstance

    from catalog_assets.partitions import BATCH_PARTITIONS_NAME

    with DagsterInstance.get() as instance:
        result = _materialize(instance, ["product_catalog"], None, catalog_config)
        if not result.success:
            log.error("product_catalog failed: %s", _failure(result))
            return 2
        partitions = sorted(instance.get_dynamic_partitions(BATCH_PARTITIONS_NAME))
    if args.partitions:
        wanted = set(args.partitions)
        partitions = [p for p in partitions if p in wanted]
    images_config = {"ops": {"product_images": {"config": args.images_config}}} if args.images_config else {}
    if os.environ.get("OPENAI_API_KEY") and not os.environ.get("REDIS_URL") and args.parallel > 1:
        # Without Redis each process would pace itself at the account's whole rate limit.
        log.warning("OPENAI_API_KEY is set without REDIS_URL: running batches one at a time (--parallel 1)")
        args.parallel = 1
    total = len(partitions)
    log.info("%d batch partitions to materialize with %d parallel worker(s)", total, args.parallel)
    done: list[tuple[str, bool, float]] = []
    workers = max(1, min(args.parallel, total))
    chunks = [partitions[i::workers] for i in range(workers)]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(chunk, images_config, queue)) for chunk in chunks if chunk]
    for p in procs:
        p.start()
    finished = 0
    t0 = time.monotonic()
    while finished < len(procs):
        item = queue.get()
        if item is None:
            finished += 1
            continue
        key, ok, seconds, error = item
        done.append((key, ok, seconds))
        elapsed = time.monotonic() - t0
        eta = elapsed / len(done) * (total - len(done))
        log.info(
            "batch %s %s in %.1fs — %d/%d batches done, %d failed, ETA %.0fs",
            key,
            "ok" if ok else f"FAILED ({error})",
            seconds,
            len(done),
            total,
            sum(1 for d in done if not d[1]),
            eta,
        )
    for p in procs:
        p.join()
    failed = sorted(k for k, ok, _ in done if not ok)
    with DagsterInstance.get() as instance:
        publish = _materialize(instance, ["image_manifest", "linked_catalog", "generation_report"])
    wall = time.monotonic() - started
    log.info("finished in %.1fs: %d batches, %d failed", wall, total, len(failed))
    if not publish.success:
        log.error("publishing failed: %s", _failure(publish))
        return 1
    if failed:
        log.error(
            "failed batches: %s — rerun with: catalog-images run --partitions %s (already stored images are skipped)",
            ", ".join(failed),
            " ".join(failed),
        )
        return 1
    return 0


def _failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            err = event.step_failure_data.error
            user = err.cause if err.cause else err
            return user.message.strip().splitlines()[0] if user.message else str(err)
    return "see the run's logs in the Dagster UI"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="catalog-images", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser(
        "run", help="materialize the catalog, every batch, the manifest, linked catalog and report"
    )
    p_run.add_argument(
        "--catalog", default="data/catalog.json", help="catalog file (json, jsonl, csv, parquet)"
    )
    p_run.add_argument(
        "--parallel", type=int, default=max(1, os.cpu_count() or 1), help="batches run at once (processes)"
    )
    p_run.add_argument("--partitions", nargs="*", help="only these batch partitions (e.g. batch-0007)")
    p_run.add_argument(
        "--images-config",
        type=_json_arg,
        default=None,
        help="JSON config for product_images, e.g. '{\"max_cost_usd\": 5}'",
    )
    _add_operations_commands(sub)
    p_dry = sub.add_parser(
        "dry-run", help="print what `run` would call and cost, per batch, without calling the image API"
    )
    p_dry.add_argument(
        "--catalog", default="data/catalog.json", help="catalog file (json, jsonl, csv, parquet)"
    )
    p_dry.add_argument("--partitions", nargs="*", help="only these batch partitions (e.g. batch-0007)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    # Dagster's SQLite storage runs alembic on every new run database: its INFO lines drown the results
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.command == "run":
        return run(args)
    if args.command == "check":
        return check(args)
    if args.command == "retry-failed":
        return retry_failed(args)
    if args.command == "dry-run":
        from catalog_assets.dryrun import dry_run

        text, code = dry_run(args.catalog, args.partitions)
        print(text, file=sys.stdout if code == 0 else sys.stderr)
        return code
    return 2


def _json_arg(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


# -- everyday operations on an existing instance: run the checks, retry the failed batches now ---------------


def _add_operations_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_check = sub.add_parser(
        "check", help="run the asset checks (no asset is materialized); exit 1 if one fails at ERROR"
    )
    p_check.add_argument(
        "--select", nargs="*", metavar="ASSET", help="only the checks on these assets (e.g. image_manifest)"
    )
    p_retry = sub.add_parser(
        "retry-failed",
        help="rerun now exactly the batches the failed-partition retry schedule would request",
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


def check(args: argparse.Namespace) -> int:
    """All asset checks (or those on `--select` assets) against the store as it is, recorded in the instance
    so the UI shows them. Exit 0: all passed or only WARN failures; 1: an ERROR failure; 2: a check crashed."""
    _ensure_dagster_home()
    from dagster import AssetCheckSeverity, AssetKey, AssetSelection, DagsterInstance, materialize

    from catalog_assets.checks import ALL_CHECKS
    from catalog_assets.definitions import ALL_ASSETS, resources_for_environment

    known = sorted(key.to_user_string() for asset in ALL_ASSETS for key in asset.keys)
    unknown = sorted(set(args.select or []) - set(known))
    if unknown:
        log.error("no asset named %s; the assets are %s", ", ".join(unknown), ", ".join(known))
        return 2
    selection = (
        AssetSelection.checks_for_assets(*(AssetKey(name) for name in args.select))
        if args.select
        else AssetSelection.all_asset_checks()
    )
    with DagsterInstance.get() as instance:
        result = materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=selection,
            instance=instance,
            resources=resources_for_environment(),
            run_config=QUIET_CONSOLE,
            raise_on_error=False,
            tags={"catalog-images/launched-by": "catalog-images check"},
        )
    evaluations = sorted(
        result.get_asset_check_evaluations(), key=lambda e: (e.asset_key.to_user_string(), e.check_name)
    )
    errors = 0
    for e in evaluations:
        verdict = "passed" if e.passed else f"FAILED ({e.severity.value})"
        errors += not e.passed and e.severity == AssetCheckSeverity.ERROR
        log.info("%s %s:%s — %s", verdict, e.asset_key.to_user_string(), e.check_name, e.description or "")
    log.info("%d checks run, %d failed at ERROR severity (run %s)", len(evaluations), errors, result.run_id)
    # A failed blocking check also fails its step; any other step failure is a check that could not run.
    crashed = [
        event.step_key
        for event in result.all_events
        if event.is_step_failure
        and event.step_failure_data.error
        and event.step_failure_data.error.cls_name != "DagsterAssetCheckFailedError"
    ]
    if crashed:
        log.error("checks that could not run: %s — %s", ", ".join(sorted(set(crashed))), _failure(result))
        return 2
    return 1 if errors else 0


def retry_failed(args: argparse.Namespace) -> int:
    """The failed-partition retry schedule's tick, now: the same batches, run keys and tags, so the nightly
    tick does not launch them again. Runs the batches one after another in this process (no daemon needed)."""
    _ensure_dagster_home()
    from dagster import DagsterInstance
    from dagster._core.storage.tags import RUN_KEY_TAG

    from catalog_assets.schedules import retry_run_requests

    with DagsterInstance.get() as instance:
        requests = retry_run_requests(instance, args.include_missing)
        if not requests:
            log.info("no failed batches%s to retry", " or missing batches" if args.include_missing else "")
            return 0
        keys = [r.partition_key for r in requests]
        log.info("%d batch(es) to retry: %s", len(keys), ", ".join(k or "" for k in keys))
        if args.dry_run:
            return 0
        config = {"ops": {"product_images": {"config": args.images_config}}} if args.images_config else {}
        failed = []
        for request in requests:
            tags = {**request.tags, RUN_KEY_TAG: request.run_key or ""}
            result = _materialize(instance, ["product_images"], request.partition_key, config, tags)
            log.info(
                "batch %s %s",
                request.partition_key,
                "ok" if result.success else f"FAILED ({_failure(result)})",
            )
            if not result.success:
                failed.append(request.partition_key)
    if failed:
        log.error("still failing: %s — the retry schedule will try them again", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
