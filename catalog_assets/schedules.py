"""`failed_batches_retry_schedule`: every night, rerun exactly the `product_images` batches whose last
materialization failed (plus never-materialized ones, if configured), each once per failure, and the batches
holding images rejected in review or by a person (`catalog-images reject`), once per set of pending retakes.

The selection is the one of the UI's "Backfill only failed and missing partitions": both read the instance's
asset status cache (`instance.get_status_by_partition` here, the GraphQL partition statuses there), in which a
running attempt counts before a failure and a failure before an earlier success. A rerun does only what the
failed run left (already stored images are skipped), so retrying costs only the failed products.
"""

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetPartitionStatus,
    DagsterInstance,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from catalog_assets import state
from catalog_assets.dagster_internals import RUN_KEY_TAG, latest_failed_partition_attempts
from catalog_assets.partitions import BATCH_PARTITIONS_NAME, product_batches
from catalog_assets.resources.store import ImageStore
from catalog_assets.retakes import retake_orders

RETRY_SCHEDULE_NAME = "failed_batches_retry_schedule"
RETRY_JOB_NAME = "product_images_job"  # defined in definitions.py; named here to avoid an import cycle
PRODUCT_IMAGES = AssetKey("product_images")

RETRY_CRON_ENV = "CATALOG_RETRY_CRON"
RETRY_TIMEZONE_ENV = "CATALOG_RETRY_TIMEZONE"
RETRY_INCLUDE_MISSING_ENV = "CATALOG_RETRY_INCLUDE_MISSING"
DEFAULT_RETRY_CRON = "0 2 * * *"  # 02:00 every night
DEFAULT_RETRY_TIMEZONE = "UTC"

RETRY_OF_TAG = "catalog-images/retry-of"
LAUNCHED_BY_TAG = "catalog-images/launched-by"
NEVER_ATTEMPTED = "never-attempted"


@dataclass(frozen=True)
class RetryTarget:
    """A batch to rerun: why, and which attempt it answers (the run key's second half)."""

    partition: str
    status: str  # "failed", "missing" or "retake"
    last_attempt_run_id: str | None  # the failed (or cancelled) run; None when never attempted
    #: for "retake": a digest of the batch's pending retake orders
    retakes: str | None = None

    @property
    def run_key(self) -> str:
        # One run per failed attempt: a later tick sees the same key until that batch is attempted again;
        # one run per set of pending retakes (a new rejection makes a new key).
        if self.status == "retake":
            return f"{self.partition}:retake:{self.retakes}"
        return f"{self.partition}:{self.last_attempt_run_id or NEVER_ATTEMPTED}"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def pending_retakes(store: ImageStore, partition: str, rejections: Mapping[str, Mapping]) -> str | None:
    """A digest of the batch's pending retake orders (with `product_images`' default `max_retakes` and
    `after_retakes`, which the schedule's runs use), or None when it has none."""
    from catalog_assets.assets.images import ProductImagesConfig

    defaults = ProductImagesConfig.model_fields
    orders = retake_orders(
        state.read_outcomes(store, partition),
        state.read_reviews(store, partition),
        rejections,
        max_retakes=defaults["max_retakes"].default,
        after_retakes=defaults["after_retakes"].default,
    )
    if not orders:
        return None
    text = "|".join(f"{o.product_id}:{o.action}:{o.number}" for o in sorted(orders.values(), key=str))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def batches_to_retry(
    instance: DagsterInstance, include_missing: bool, store: ImageStore | None = None
) -> list[RetryTarget]:
    """Batches whose last materialization failed, plus never-materialized ones with `include_missing`, plus
    (with the `store`) materialized ones with pending retakes; batches being materialized now are left
    alone. Ordered by partition key."""
    keys = sorted(instance.get_dynamic_partitions(BATCH_PARTITIONS_NAME))
    if not keys:
        return []
    # None when product_images has no history at all: every batch is missing
    statuses = instance.get_status_by_partition(PRODUCT_IMAGES, keys, product_batches) or {}
    # The attempt each failed partition answers to: the same source the status cache derives FAILED from.
    attempts = latest_failed_partition_attempts(instance, PRODUCT_IMAGES)
    rejections = state.read_rejections(store) if store is not None else {}
    targets = []
    for key in keys:
        status = statuses.get(key)
        run_id = attempts.get(key)
        if status == AssetPartitionStatus.FAILED:
            targets.append(RetryTarget(key, "failed", run_id))
        elif status is None and include_missing:
            targets.append(RetryTarget(key, "missing", run_id))
        elif status == AssetPartitionStatus.MATERIALIZED and store is not None:
            digest = pending_retakes(store, key, rejections)
            if digest:
                targets.append(RetryTarget(key, "retake", run_id, digest))
    return targets


@contextmanager
def environment_store() -> Iterator[ImageStore]:
    """The store the environment selects (definitions' choice, its settings read now)."""
    from catalog_assets.definitions import resources_for_environment

    with resources_for_environment()["store"].process_config_and_initialize_cm() as resource:
        yield resource.get_client()


def _already_requested(instance: DagsterInstance, run_keys: list[str]) -> set[str]:
    """Run keys some earlier tick already launched. The daemon dedupes a schedule's run keys only within one
    tick (its filter includes the scheduled time), so a queued retry must be recognised here."""
    if not run_keys:
        return set()
    runs = instance.get_runs(RunsFilter(tags={RUN_KEY_TAG: run_keys, LAUNCHED_BY_TAG: RETRY_SCHEDULE_NAME}))
    return {run.tags[RUN_KEY_TAG] for run in runs}


def retry_run_requests(
    instance: DagsterInstance, include_missing: bool, store: ImageStore | None = None
) -> list[RunRequest]:
    targets = batches_to_retry(instance, include_missing, store)
    done = _already_requested(instance, [t.run_key for t in targets])
    return [
        RunRequest(
            run_key=t.run_key,
            partition_key=t.partition,
            tags={
                LAUNCHED_BY_TAG: RETRY_SCHEDULE_NAME,
                RETRY_OF_TAG: t.last_attempt_run_id or NEVER_ATTEMPTED,
            },
        )
        for t in targets
        if t.run_key not in done
    ]


def build_failed_batches_retry_schedule(
    env: Mapping[str, str] | None = None, include_missing: bool | None = None
) -> ScheduleDefinition:
    """The retry schedule. Its cron (`CATALOG_RETRY_CRON`, default nightly at 02:00) and timezone
    (`CATALOG_RETRY_TIMEZONE`, default UTC) are part of the definition, so they are read when the code
    location loads; `CATALOG_RETRY_INCLUDE_MISSING` is read at every tick unless `include_missing` is given."""
    env = os.environ if env is None else env
    cron = env.get(RETRY_CRON_ENV, "").strip() or DEFAULT_RETRY_CRON
    timezone = env.get(RETRY_TIMEZONE_ENV, "").strip() or DEFAULT_RETRY_TIMEZONE

    @schedule(
        name=RETRY_SCHEDULE_NAME,
        job_name=RETRY_JOB_NAME,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Reruns the product_images batches whose last materialization failed ({cron}, {timezone}); "
        f"never-materialized batches too when {RETRY_INCLUDE_MISSING_ENV}=1. One run per failed attempt.",
    )
    def failed_batches_retry_schedule(context: ScheduleEvaluationContext):
        missing = (
            _truthy(os.environ.get(RETRY_INCLUDE_MISSING_ENV)) if include_missing is None else include_missing
        )
        with environment_store() as store:
            requests = retry_run_requests(context.instance, missing, store)
        if not requests:
            return SkipReason(
                "no failed batches"
                + (" or missing batches" if missing else "")
                + " to retry, no retakes pending"
            )
        context.log.info(
            f"retrying {len(requests)} batches: {', '.join(r.partition_key or '' for r in requests)}"
        )
        return requests

    return failed_batches_retry_schedule
