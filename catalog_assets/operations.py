"""Everyday operations on an existing instance: run the asset checks, retry the failed batches now."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetCheckSeverity, AssetKey, AssetSelection, DagsterInstance, materialize

from catalog_assets import dagster_internals
from catalog_assets.runner import CONSOLE_WARNINGS, IMAGES_JOB, fail_dead_runs, failure_message, launch

log = logging.getLogger("catalog_assets.operations")


def check(select: Sequence[str] | None) -> int:
    """All asset checks (or those on the `select` assets) against the store as it is, recorded in the
    instance so the UI shows them. Exit 0: all passed or only WARN failures; 1: an ERROR failure; 2: a check
    could not run (or no such asset)."""
    from catalog_assets.checks import ALL_CHECKS
    from catalog_assets.definitions import ALL_ASSETS, resources_for_environment

    known = sorted(key.to_user_string() for asset in ALL_ASSETS for key in asset.keys)
    unknown = sorted(set(select or []) - set(known))
    if unknown:
        log.error("no asset named %s; the assets are %s", ", ".join(unknown), ", ".join(known))
        return 2
    targets = {AssetKey(name) for name in select} if select else None
    selection = (
        AssetSelection.checks_for_assets(*targets)
        if targets is not None
        else AssetSelection.all_asset_checks()
    )
    expected = {
        key
        for checks in ALL_CHECKS
        for key in checks.check_keys
        if targets is None or key.asset_key in targets
    }
    with DagsterInstance.get() as instance:
        result = materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=selection,
            instance=instance,
            resources=resources_for_environment(),
            run_config=CONSOLE_WARNINGS,
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
    # A check that ran has an evaluation, passed or not; one without could not run.
    crashed = sorted(expected - {e.asset_check_key for e in evaluations}, key=lambda k: k.to_user_string())
    if crashed:
        names = ", ".join(f"{k.asset_key.to_user_string()}:{k.name}" for k in crashed)
        log.error("checks that could not run: %s — %s", names, failure_message(result))
        return 2
    return 1 if errors else 0


def retry_failed(
    include_missing: bool, *, dry_run: bool = False, images_config: Mapping[str, Any] | None = None
) -> int:
    """The failed-partition retry schedule's tick, now: the same batches, run keys and tags, so the nightly
    tick does not launch them again. Runs the batches one after another in this process (no daemon needed)."""
    from catalog_assets.schedules import environment_store, retry_run_requests

    with DagsterInstance.get() as instance, environment_store() as store:
        fail_dead_runs(instance, "found by catalog-images retry-failed before launching")
        requests = retry_run_requests(instance, include_missing, store)
        if not requests:
            log.info("no failed batches%s to retry", " or missing batches" if include_missing else "")
            return 0
        keys = [r.partition_key for r in requests]
        log.info("%d batch(es) to retry: %s", len(keys), ", ".join(k or "" for k in keys))
        if dry_run:
            return 0
        config = {"ops": {"product_images": {"config": dict(images_config)}}} if images_config else {}
        failed = []
        for request in requests:
            result = launch(
                instance,
                IMAGES_JOB,
                partition=request.partition_key,
                run_config=config,
                tags={**request.tags, dagster_internals.RUN_KEY_TAG: request.run_key or ""},
            )
            log.info(
                "batch %s %s",
                request.partition_key,
                "ok" if result.success else f"FAILED ({failure_message(result)})",
            )
            if not result.success:
                failed.append(request.partition_key)
    if failed:
        log.error("still failing: %s — the retry schedule will try them again", ", ".join(failed))
        return 1
    return 0
