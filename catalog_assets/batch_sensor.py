"""`batch_images_sensor`: polls the partitions' in-flight Batch API jobs, each less often the older it is, and
requests the `product_images` run that ingests a finished one (run key = batch id: ingested once)."""

from __future__ import annotations

import calendar
import json
import time
from typing import Any

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from catalog_assets.batch_mode import JOBS_PREFIX, TERMINAL
from catalog_assets.resources.image_api import ImageGeneratorResource
from catalog_assets.resources.store import ImageStoreResource

JOB_NAME = "product_images_job"  # defined in definitions.py; named here to avoid an import cycle
INGEST_TAG = "catalog/batch"
BATCH_ID_TAG = "catalog/batch_id"
MIN_POLL_S = 30.0
MAX_POLL_S = 600.0
#: an intent older than this without a batch id: its run died around `batches.create`
STALE_INTENT_S = 300.0


def poll_interval(age_s: float, min_s: float = MIN_POLL_S, max_s: float = MAX_POLL_S) -> float:
    """Seconds between polls of a batch `age_s` old: a tenth of its age, within [min_s, max_s]."""
    return min(max_s, max(min_s, age_s / 10.0))


def _epoch(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def batch_requests(
    jobs: list[dict[str, Any]],
    client: Any,
    polled: dict[str, float],
    now: float,
    *,
    min_s: float = MIN_POLL_S,
    max_s: float = MAX_POLL_S,
    observed: dict[str, Any] | None = None,
) -> tuple[list[RunRequest], dict[str, float], list[str]]:
    """Run requests for the finished (or stranded) batches among `jobs`, the new poll times, log lines.
    Each batch is polled at most every `poll_interval(age, min_s, max_s)`; `observed` (if given) receives
    every batch object retrieved, by id."""
    requests, seen, notes = [], {}, []
    for job in jobs:
        partition, status = job.get("partition"), job.get("status")
        if status == "intent" and now - float(job.get("intent_at_ts") or now) > STALE_INTENT_S:
            key = f"recover-{partition}-{str(job.get('content_hash'))[:16]}"
            requests.append(RunRequest(run_key=key, partition_key=partition, tags={INGEST_TAG: "recover"}))
            notes.append(f"{partition}: submission interrupted, requesting a run to find or submit its batch")
            continue
        if status != "submitted" or not job.get("batch_id"):
            continue
        batch_id = job["batch_id"]
        last = polled.get(batch_id, 0.0)
        seen[batch_id] = last
        if now - last < poll_interval(now - _epoch(job.get("submitted_at")), min_s, max_s):
            continue
        batch = client.batches.retrieve(batch_id)
        seen[batch_id] = now
        if observed is not None:
            observed[batch_id] = batch
        counts = batch.request_counts
        done = f"{counts.completed}+{counts.failed}/{counts.total}" if counts else "?"
        notes.append(f"{partition}: batch {batch_id} {batch.status} ({done})")
        if batch.status in TERMINAL:
            requests.append(
                RunRequest(
                    run_key=batch_id,
                    partition_key=partition,
                    tags={INGEST_TAG: "ingest", BATCH_ID_TAG: batch_id},
                )
            )
    return requests, seen, notes


def build_batch_images_sensor(running: bool = False):
    """The sensor, running by default when the definitions are loaded in batch mode."""

    @sensor(
        name="batch_images_sensor",
        job_name=JOB_NAME,
        minimum_interval_seconds=int(MIN_POLL_S),
        default_status=DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED,
        description="Polls the Batch API jobs of product_images partitions (backing off with their age) and "
        "requests the run that stores a finished batch's images (run key = batch id).",
    )
    def batch_images_sensor(
        context: SensorEvaluationContext, store: ImageStoreResource, image_generator: ImageGeneratorResource
    ):
        client = store.get_client()
        jobs = [client.get_json(o.key, default=None) or {} for o in client.list(JOBS_PREFIX)]
        if not any(j.get("status") in ("submitted", "intent") for j in jobs):
            return SkipReason("no Batch API job in flight")
        generator = image_generator.get_client()
        if not hasattr(generator, "client"):
            return SkipReason("batches are in flight, but the image generator is not the OpenAI API")
        polled = json.loads(context.cursor) if context.cursor else {}
        requests, seen, notes = batch_requests(jobs, generator.client(), polled, time.time())
        for note in notes:
            context.log.info(note)
        return SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return batch_images_sensor
