"""`catalog_publish_sensor`: republish the manifest, linked catalog and report (`publish_job`, blocking checks
included) once generation has settled after new `product_images` materializations or failures.

Whatever produced them — a backfill, the failed-batch retry schedule, a UI materialization — the sensor waits
until no `product_images` run is queued or running, no backfill that includes `product_images` is still going
(and no run whose worker died is about to be retried), so a backfill of many batches publishes once, at its end.
A backfill that materializes the publish assets itself (the UI's "Materialize all…") is left to do so. The run key is the newest event it saw, so a tick repeated
after a daemon restart asks for the same run and Dagster launches it only once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

PUBLISH_SENSOR_NAME = "catalog_publish_sensor"
PUBLISH_JOB_NAME = "publish_job"  # defined in definitions.py; named here to avoid an import cycle
IMAGES_JOB_NAME = "product_images_job"
PRODUCT_IMAGES = AssetKey("product_images")
IMAGE_MANIFEST = AssetKey("image_manifest")

PUBLISH_INTERVAL_ENV = "CATALOG_PUBLISH_SENSOR_INTERVAL_S"
DEFAULT_PUBLISH_INTERVAL_S = 30
LAUNCHED_BY_TAG = "catalog-images/launched-by"
PUBLISHED_UP_TO_TAG = "catalog-images/published-up-to"

# Dagster's run tags (the values it writes on runs; strings, not imports)
_WILL_RETRY_TAG = "dagster/will_retry"
_PARENT_RUN_ID_TAG = "dagster/parent_run_id"
_BACKFILL_ID_TAG = "dagster/backfill"
_BACKFILL_ENDED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
_BACKFILL_GOING = {"REQUESTED", "CANCELING"}
#: the newest backfills looked at for one still going (older ones have long ended)
BACKFILLS_SCANNED = 50
#: a failed run marked for retry whose retry has not appeared after this long is not waited for any more
RETRY_WAIT_S = 300.0

IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def generates_images(run: DagsterRun) -> bool:
    """The run materializes `product_images`: the images job (backfills, retries) or any asset selection
    naming it (a UI materialization)."""
    if run.asset_selection is not None:
        return PRODUCT_IMAGES in run.asset_selection
    return run.job_name == IMAGES_JOB_NAME


def latest_images_event_id(instance: DagsterInstance) -> int | None:
    """Storage id of the newest `product_images` event that may change what is published: a materialization,
    or a run's plan to materialize it (every run writes one at its start; a batch that failed leaves only
    that, as the status cache reads it), or a failed materialization."""
    ids = [
        result.records[0].storage_id
        for result in (
            instance.fetch_materializations(PRODUCT_IMAGES, limit=1),
            instance.fetch_planned_materializations(PRODUCT_IMAGES, limit=1),
            instance.fetch_failed_materializations(PRODUCT_IMAGES, limit=1),
        )
        if result.records
    ]
    return max(ids, default=None)


def latest_publish_event_id(instance: DagsterInstance) -> int | None:
    result = instance.fetch_materializations(IMAGE_MANIFEST, limit=1)
    return result.records[0].storage_id if result.records else None


def _awaiting_retry(instance: DagsterInstance, now: float) -> list[DagsterRun]:
    """Failed images runs the daemon will retry (their worker died) whose retry is not launched yet."""
    failed = instance.get_runs(
        RunsFilter(
            statuses=[DagsterRunStatus.FAILURE],
            tags={_WILL_RETRY_TAG: "true"},
            updated_after=_utc(now - RETRY_WAIT_S),
        ),
        limit=50,
    )
    waiting = []
    for run in failed:
        if not generates_images(run) or _backfill_ended(instance, run):
            continue
        if not instance.get_runs(RunsFilter(tags={_PARENT_RUN_ID_TAG: run.run_id}), limit=1):
            waiting.append(run)
    return waiting


def _backfill_ended(instance: DagsterInstance, run: DagsterRun) -> bool:
    """The run belongs to a backfill that has ended. Dagster does not retry such runs, even marked for retry:
    a job backfill counts as COMPLETED once it has launched all its runs."""
    backfill_id = run.tags.get(_BACKFILL_ID_TAG)
    if not backfill_id:
        return False
    backfill = instance.get_backfill(backfill_id)
    return backfill is None or backfill.status.value in _BACKFILL_ENDED


def _backfills_generating(instance: DagsterInstance) -> list[str]:
    """Ids of the backfills still launching (or cancelling) runs that materialize `product_images`: an asset
    backfill naming it (the partitions page, the asset graph's "Materialize all…") or a backfill of the images
    job. Between two of its waves — the catalog before the batches, the batches before the publish assets it
    also selects — no images run may be in progress, yet generation has not settled."""
    return [
        backfill.backfill_id
        for backfill in instance.get_backfills(limit=BACKFILLS_SCANNED)
        if backfill.status.value in _BACKFILL_GOING
        and (PRODUCT_IMAGES in (backfill.asset_selection or ()) or backfill.job_name == IMAGES_JOB_NAME)
    ]


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


@dataclass(frozen=True)
class PublishDecision:
    """What one tick decided: a run key to request, or why not (`reason`)."""

    run_key: str | None
    reason: str
    latest_event_id: int | None


def decide(instance: DagsterInstance, now: float | None = None) -> PublishDecision:
    """Publish when a `product_images` event is newer than the last published manifest and generation is idle:
    no images run queued or running, no backfill of product_images going, no retry awaited."""
    now = time.time() if now is None else now
    latest = latest_images_event_id(instance)
    if latest is None:
        return PublishDecision(None, "product_images was never materialized", None)
    published = latest_publish_event_id(instance)
    if published is not None and published > latest:
        return PublishDecision(None, "the catalog is published after the latest product_images event", latest)
    running = instance.get_runs(RunsFilter(statuses=IN_PROGRESS), limit=500)
    generating = [run for run in running if generates_images(run)]
    if generating:
        return PublishDecision(
            None, f"waiting for {len(generating)} product_images run(s) in progress to finish", latest
        )
    backfilling = _backfills_generating(instance)
    if backfilling:
        return PublishDecision(
            None, f"waiting for backfill {', '.join(backfilling)} of product_images to finish", latest
        )
    publishing = [run for run in running if run.job_name == PUBLISH_JOB_NAME]
    if publishing:
        return PublishDecision(None, f"publish run {publishing[0].run_id} is in progress", latest)
    retrying = _awaiting_retry(instance, now)
    if retrying:
        return PublishDecision(
            None, f"waiting for the retry of {len(retrying)} product_images run(s) whose worker died", latest
        )
    return PublishDecision(f"product_images@{latest}", "generation settled", latest)


def _interval(env: Mapping[str, str]) -> int:
    raw = env.get(PUBLISH_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_PUBLISH_INTERVAL_S
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{PUBLISH_INTERVAL_ENV}={raw!r} is not a whole number of seconds") from None
    if value < 1:
        raise ValueError(f"{PUBLISH_INTERVAL_ENV}={raw!r} must be at least 1 second")
    return value


def build_catalog_publish_sensor(
    env: Mapping[str, str] | None = None, minimum_interval_seconds: int | None = None
) -> SensorDefinition:
    """The publish sensor, evaluated every `minimum_interval_seconds` (default `CATALOG_PUBLISH_SENSOR_INTERVAL_S`
    or 30 s, read when the code location loads)."""
    interval = (
        _interval(os.environ if env is None else env)
        if minimum_interval_seconds is None
        else minimum_interval_seconds
    )

    @sensor(
        name=PUBLISH_SENSOR_NAME,
        job_name=PUBLISH_JOB_NAME,
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        description="Runs publish_job (manifest, linked catalog, report and their blocking checks) once "
        "product_images has new materializations or failures, none of its runs is queued or running and no "
        "backfill of it is going: a backfill publishes once, at its end.",
    )
    def catalog_publish_sensor(context: SensorEvaluationContext):
        decision = decide(context.instance)
        seen = json.loads(context.cursor) if context.cursor else {}
        if decision.run_key is None:
            return SkipReason(decision.reason)
        if seen.get("requested") == decision.run_key:
            return SkipReason(f"publish for {decision.run_key} already requested")
        context.log.info(f"{decision.reason}: requesting {PUBLISH_JOB_NAME} ({decision.run_key})")
        return SensorResult(
            run_requests=[
                RunRequest(
                    run_key=decision.run_key,
                    tags={
                        LAUNCHED_BY_TAG: PUBLISH_SENSOR_NAME,
                        PUBLISHED_UP_TO_TAG: str(decision.latest_event_id),
                    },
                )
            ],
            cursor=json.dumps({"requested": decision.run_key}),
        )

    return catalog_publish_sensor


catalog_publish_sensor = build_catalog_publish_sensor()
