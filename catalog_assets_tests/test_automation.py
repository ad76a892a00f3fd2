"""The publish sensor, evaluated against a real SQLite instance with real `product_images` runs (the offline
renderer, a local store): it asks for one publish once generation has settled, never while it goes on."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from dagster import (
    AssetKey,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    SensorResult,
    build_sensor_context,
    materialize,
)
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

from catalog_assets.automation import (
    LAUNCHED_BY_TAG,
    PUBLISH_INTERVAL_ENV,
    PUBLISH_SENSOR_NAME,
    build_catalog_publish_sensor,
    catalog_publish_sensor,
)
from catalog_assets.checks import ALL_CHECKS
from catalog_assets.definitions import ALL_ASSETS, defs
from catalog_assets_tests.check_support import persistent_pipeline
from catalog_assets_tests.conftest import PROJECT, CountingGeneratorResource, Pipeline, write_catalog

PUBLISH = ["image_manifest", "linked_catalog", "generation_report"]


@pytest.fixture
def pipeline(workdir) -> Iterator[Pipeline]:
    """A persistent instance (sensor contexts reopen it) with a catalog of 3 batches of the bundled one."""
    with persistent_pipeline(workdir) as running:
        products = json.loads((PROJECT / "data" / "catalog.json").read_text())[:12]
        catalog = write_catalog(workdir / "catalog.json", products)
        assert running.catalog(catalog, batch_size=4).success
        assert running.partitions() == ["batch-0000", "batch-0001", "batch-0002"]
        yield running


class Ticks:
    """Successive ticks of the sensor, carrying the cursor from one to the next as the daemon does."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.cursor: str | None = None

    def tick(self) -> SensorResult:
        with build_sensor_context(
            instance=self.pipeline.instance,
            cursor=self.cursor,
            repository_def=defs.get_repository_def(),
        ) as context:
            result = catalog_publish_sensor.evaluate_tick(context)
        if result.cursor is not None:
            self.cursor = result.cursor
        return result


def requested_keys(result) -> list[str]:
    return [request.run_key for request in result.run_requests or []]


def in_progress(pipeline: Pipeline, status: DagsterRunStatus, *, ui: bool = False) -> DagsterRun:
    """A product_images run the daemon has queued or is running: of the images job (a backfill, the retry
    schedule), or of an asset selection naming product_images (a UI materialization)."""
    run = DagsterRun(
        job_name="__ASSET_JOB" if ui else "product_images_job",
        run_id=str(uuid.uuid4()),
        status=status,
        asset_selection=frozenset({AssetKey("product_images")}) if ui else None,
        tags={"dagster/partition": "batch-0002"},
    )
    pipeline.instance.add_run(run)
    return run


def publish(pipeline: Pipeline, run_key: str):
    """What the daemon does with the request: publish_job's assets and their checks, tagged with the key."""
    return materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=PUBLISH,
        instance=pipeline.instance,
        resources=pipeline.resources(),
        tags={"dagster/run_key": run_key, LAUNCHED_BY_TAG: PUBLISH_SENSOR_NAME},
        raise_on_error=False,
    )


def test_nothing_to_publish_before_any_image_run(pipeline):
    result = Ticks(pipeline).tick()
    assert requested_keys(result) == []
    assert "never materialized" in result.skip_message


def test_one_publish_after_generation_settles_none_while_it_runs(pipeline):
    ticks = Ticks(pipeline)
    assert pipeline.images("batch-0000").success
    assert pipeline.images("batch-0001").success

    # a third batch about to start, then running: no publish yet, however many ticks (the daemon's QUEUED
    # runs, which need a code location to be created, are covered by the topology test)
    for status in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED):
        run = in_progress(pipeline, status)
        result = ticks.tick()
        assert requested_keys(result) == []
        assert "waiting for 1 product_images run" in result.skip_message
        pipeline.instance.delete_run(run.run_id)
    ui_run = in_progress(pipeline, DagsterRunStatus.STARTED, ui=True)
    assert requested_keys(ticks.tick()) == []
    pipeline.instance.delete_run(ui_run.run_id)

    # it finished: one request, then none on the next ticks
    assert pipeline.images("batch-0002").success
    first = ticks.tick()
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.job_name in (None, "publish_job")
    assert request.tags[LAUNCHED_BY_TAG] == PUBLISH_SENSOR_NAME
    assert requested_keys(ticks.tick()) == []

    # a tick repeated without the cursor (the daemon died before storing it) asks for the same run
    assert requested_keys(Ticks(pipeline).tick()) == [request.run_key]

    # once published, even a cursor-less tick has nothing to do
    assert publish(pipeline, request.run_key).success
    assert requested_keys(Ticks(pipeline).tick()) == []
    assert requested_keys(ticks.tick()) == []

    # a new materialization (a UI rematerialization of one batch): a new request, with a new key
    assert pipeline.images("batch-0001").success
    second = ticks.tick()
    assert len(second.run_requests) == 1
    assert second.run_requests[0].run_key != request.run_key
    assert requested_keys(ticks.tick()) == []


def test_a_failed_batch_is_published_too_and_a_publish_in_progress_is_not_doubled(pipeline):
    ticks = Ticks(pipeline)
    assert pipeline.images("batch-0000").success
    first = ticks.tick().run_requests[0]
    assert publish(pipeline, first.run_key).success

    # the retry schedule's run fails for one product: the report must show it, so publish again
    pipeline.generator = CountingGeneratorResource(fail_ids=["PROD-000005"])
    assert not pipeline.images("batch-0001").success
    publishing = DagsterRun(job_name="publish_job", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED)
    pipeline.instance.add_run(publishing)
    result = ticks.tick()
    assert requested_keys(result) == []
    assert "publish run" in result.skip_message
    pipeline.instance.delete_run(publishing.run_id)
    assert len(ticks.tick().run_requests) == 1


def backfill(pipeline: Pipeline, *assets: str) -> PartitionBackfill:
    """An asset backfill the daemon is still working through, selecting `assets`."""
    going = PartitionBackfill(
        backfill_id=uuid.uuid4().hex[:8],
        status=BulkActionStatus.REQUESTED,
        from_failure=False,
        tags={},
        backfill_timestamp=time.time(),
        asset_selection=[AssetKey(name) for name in assets],
    )
    pipeline.instance.add_backfill(going)
    return going


def test_a_backfill_that_publishes_itself_is_not_published_over(pipeline):
    ticks = Ticks(pipeline)
    # a backfill that does not touch the images does not hold publishing back
    backfill(pipeline, "product_catalog")
    assert pipeline.images("batch-0000").success
    first = ticks.tick().run_requests[0]
    assert publish(pipeline, first.run_key).success

    # "Materialize all…" in the asset graph: catalog, then every batch, then the publish assets, in waves. The
    # batches are done and the publish wave not launched yet: no images run is in progress, but no publish
    # either, or it would race the backfill's own (and fail its blocking-check gate)
    everything = backfill(pipeline, "product_catalog", "product_images", *PUBLISH)
    assert pipeline.images("batch-0001").success
    assert pipeline.images("batch-0002").success
    for _ in range(2):
        result = ticks.tick()
        assert requested_keys(result) == []
        assert f"waiting for backfill {everything.backfill_id} of product_images" in result.skip_message
    pipeline.instance.update_backfill(everything.with_status(BulkActionStatus.CANCELING))
    assert requested_keys(ticks.tick()) == []  # still cancelling runs

    # its publish wave ran and it ended: nothing left to publish
    assert publish(pipeline, f"backfill-{everything.backfill_id}").success
    pipeline.instance.update_backfill(everything.with_status(BulkActionStatus.COMPLETED_SUCCESS))
    result = ticks.tick()
    assert requested_keys(result) == []
    assert "published after the latest product_images event" in result.skip_message


def test_waits_for_the_retry_of_a_run_whose_worker_died(pipeline):
    ticks = Ticks(pipeline)
    assert pipeline.images("batch-0000").success
    # a worker died: Dagster marked its run failed and for retry; the retry is not launched yet
    dead = DagsterRun(
        job_name="product_images_job",
        run_id=str(uuid.uuid4()),
        status=DagsterRunStatus.FAILURE,
        tags={"dagster/partition": "batch-0001", "dagster/will_retry": "true"},
    )
    pipeline.instance.add_run(dead)
    result = ticks.tick()
    assert requested_keys(result) == []
    assert "retry of 1 product_images run" in result.skip_message

    retry = DagsterRun(
        job_name="product_images_job",
        run_id=str(uuid.uuid4()),
        status=DagsterRunStatus.STARTED,
        tags={"dagster/partition": "batch-0001", "dagster/parent_run_id": dead.run_id},
    )
    pipeline.instance.add_run(retry)
    assert requested_keys(ticks.tick()) == []  # the retry runs now
    pipeline.instance.delete_run(retry.run_id)
    pipeline.instance.add_run(retry._replace(status=DagsterRunStatus.SUCCESS))
    assert len(ticks.tick().run_requests) == 1


def test_the_sensor_is_registered_running_with_a_configurable_interval():
    sensor = defs.get_repository_def().get_sensor_def(PUBLISH_SENSOR_NAME)
    assert sensor.job_name == "publish_job"
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30
    assert build_catalog_publish_sensor(env={PUBLISH_INTERVAL_ENV: "5"}).minimum_interval_seconds == 5
    with pytest.raises(ValueError, match=PUBLISH_INTERVAL_ENV):
        build_catalog_publish_sensor(env={PUBLISH_INTERVAL_ENV: "soon"})
