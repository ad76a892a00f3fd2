"""The failed-batch retry schedule and the catalog sensor, evaluated against a real SQLite instance, and
the scenario of the issue: failures from the stand-in API, a nightly retry of exactly those batches, and a
publish whose checks all pass."""

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    materialize,
)
from dagster._core.loader import LoadingContextForTest
from dagster._core.storage.partition_status_cache import get_partition_subsets
from dagster._core.storage.tags import RUN_KEY_TAG
from dagster_graphql.implementation.fetch_assets import build_partition_statuses

from catalog_assets.definitions import ALL_ASSETS, defs
from catalog_assets.partitions import product_batches
from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets.schedules import (
    DEFAULT_RETRY_CRON,
    LAUNCHED_BY_TAG,
    RETRY_INCLUDE_MISSING_ENV,
    RETRY_OF_TAG,
    RETRY_SCHEDULE_NAME,
    build_failed_batches_retry_schedule,
)
from catalog_assets.sensors import CATALOG_SENSOR_NAME, catalog_batches_sensor
from catalog_assets.standin import StandInConfig, StandInServer
from catalog_assets_tests.check_support import catalog, checks_by_name, persistent_pipeline, publish
from catalog_assets_tests.conftest import CountingGeneratorResource, Pipeline, write_catalog

PRODUCT_IMAGES = AssetKey("product_images")


@pytest.fixture
def pipeline(workdir) -> Iterator[Pipeline]:
    """conftest's pipeline, on a persistent instance (schedule and sensor contexts reopen it from its ref)."""
    with persistent_pipeline(workdir) as running:
        yield running


def evaluate(pipeline: Pipeline, include_missing: bool | None = None) -> list[RunRequest]:
    schedule = build_failed_batches_retry_schedule(env={}, include_missing=include_missing)
    with build_schedule_context(
        instance=pipeline.instance, repository_def=defs.get_repository_def()
    ) as context:
        result = schedule.evaluate_tick(context)
    return list(result.run_requests or [])


def launch(pipeline: Pipeline, request: RunRequest, config: dict | None = None):
    """What the daemon does with a request: a product_images run of that partition with its tags."""
    return materialize(
        ALL_ASSETS,
        selection=["product_images"],
        partition_key=request.partition_key,
        instance=pipeline.instance,
        resources=pipeline.resources(),
        run_config={"ops": {"product_images": {"config": config}}} if config else {},
        tags={**request.tags, RUN_KEY_TAG: request.run_key},
        raise_on_error=False,
    )


def ui_failed_and_missing(pipeline: Pipeline) -> set[str]:
    """The partitions the UI's "Backfill only failed and missing partitions" selects: the GraphQL partition
    statuses of the asset, read the way the launch dialog reads them (usePartitionHealthData.tsx:
    materialized, else materializing, else failed, else missing)."""
    instance = pipeline.instance
    subsets = asyncio.run(
        get_partition_subsets(
            instance, LoadingContextForTest(instance), PRODUCT_IMAGES, instance, product_batches
        )
    )
    statuses = build_partition_statuses(instance, *subsets, product_batches)
    materialized = set(statuses.materializedPartitions)
    materializing = set(statuses.materializingPartitions)
    failed = set(statuses.failedPartitions)

    def status(key: str) -> str:
        if key in materialized:
            return "MATERIALIZED"
        if key in materializing:
            return "MATERIALIZING"
        return "FAILED" if key in failed else "MISSING"

    return {key for key in pipeline.partitions() if status(key) in ("FAILED", "MISSING")}


def failed_run_id(pipeline: Pipeline, partition: str) -> str:
    runs = pipeline.instance.get_runs()
    return next(
        r.run_id
        for r in runs  # newest first
        if r.tags.get("dagster/partition") == partition and r.status == DagsterRunStatus.FAILURE
    )


@pytest.fixture
def three_batches(pipeline: Pipeline, sample_products) -> Pipeline:
    """batch-0000 materialized, batch-0001 failed (one product), batch-0002 never attempted."""
    assert catalog(pipeline, write_catalog(pipeline.root / "c.json", sample_products[:30]), 10).success
    assert pipeline.images("batch-0000").success
    pipeline.generator = CountingGeneratorResource(fail_ids=["PROD-000013"])
    assert not pipeline.images("batch-0001").success
    pipeline.generator = CountingGeneratorResource()
    return pipeline


def test_the_schedule_requests_exactly_the_failed_batches(three_batches: Pipeline) -> None:
    requests = evaluate(three_batches, include_missing=False)
    failed_run = failed_run_id(three_batches, "batch-0001")
    assert [(r.partition_key, r.run_key) for r in requests] == [("batch-0001", f"batch-0001:{failed_run}")]
    tags = requests[0].tags
    assert (tags[LAUNCHED_BY_TAG], tags[RETRY_OF_TAG], tags["dagster/partition"]) == (
        RETRY_SCHEDULE_NAME,
        failed_run,
        "batch-0001",
    )


def test_missing_batches_only_when_configured(three_batches: Pipeline, monkeypatch) -> None:
    monkeypatch.setenv(RETRY_INCLUDE_MISSING_ENV, "1")
    with_missing = evaluate(three_batches)  # read from the environment at the tick
    assert [(r.partition_key, r.run_key.split(":")[1]) for r in with_missing] == [
        ("batch-0001", failed_run_id(three_batches, "batch-0001")),
        ("batch-0002", "never-attempted"),
    ]
    monkeypatch.setenv(RETRY_INCLUDE_MISSING_ENV, "0")
    assert [r.partition_key for r in evaluate(three_batches)] == ["batch-0001"]


def test_selection_matches_the_ui_failed_and_missing_backfill(three_batches: Pipeline) -> None:
    pipeline = three_batches
    assert {r.partition_key for r in evaluate(pipeline, include_missing=True)} == ui_failed_and_missing(
        pipeline
    )
    # a batch that was materialized and then failed counts as failed in both
    pipeline.generator = CountingGeneratorResource(fail_ids=["PROD-000002"])
    pipeline.store.delete("images/PROD-000002.jpg")  # so the rerun has to generate it again, and fails
    assert not pipeline.images("batch-0000").success
    pipeline.generator = CountingGeneratorResource()
    selected = {r.partition_key for r in evaluate(pipeline, include_missing=True)}
    assert selected == ui_failed_and_missing(pipeline) == {"batch-0000", "batch-0001", "batch-0002"}
    assert [r.partition_key for r in evaluate(pipeline, include_missing=False)] == [
        "batch-0000",
        "batch-0001",
    ]


def test_run_keys_never_launch_a_batch_twice(three_batches: Pipeline) -> None:
    pipeline = three_batches
    first = evaluate(pipeline)
    assert [r.run_key for r in first] == [r.run_key for r in evaluate(pipeline)]  # stable between ticks

    # The daemon dedupes a schedule's run keys only within one tick: a retry created last night and not
    # started yet must not be requested again by tonight's tick.
    queued = DagsterRun(
        job_name="product_images_job",
        run_id=str(uuid.uuid4()),
        status=DagsterRunStatus.NOT_STARTED,
        tags={**first[0].tags, RUN_KEY_TAG: first[0].run_key, "dagster/partition": "batch-0001"},
    )
    pipeline.instance.add_run(queued)
    assert evaluate(pipeline) == []
    pipeline.instance.delete_run(queued.run_id)

    # The retry fails again: a new failure, a new key, one more run.
    pipeline.generator = CountingGeneratorResource(fail_ids=["PROD-000013"])
    assert not launch(pipeline, first[0]).success
    second = evaluate(pipeline)
    assert [r.partition_key for r in second] == ["batch-0001"]
    assert second[0].run_key != first[0].run_key
    assert second[0].tags[RETRY_OF_TAG] == failed_run_id(pipeline, "batch-0001")

    # It succeeds: nothing left to retry.
    pipeline.generator = CountingGeneratorResource()
    assert launch(pipeline, second[0]).success
    schedule = build_failed_batches_retry_schedule(env={}, include_missing=False)
    with build_schedule_context(
        instance=pipeline.instance, repository_def=defs.get_repository_def()
    ) as context:
        result = schedule.evaluate_tick(context)
    assert not result.run_requests and "no failed batches" in result.skip_message


def test_cron_and_timezone_come_from_the_environment() -> None:
    default = build_failed_batches_retry_schedule(env={})
    assert (default.cron_schedule, default.execution_timezone) == (DEFAULT_RETRY_CRON, "UTC")
    custom = build_failed_batches_retry_schedule(
        env={"CATALOG_RETRY_CRON": "30 3 * * 1-5", "CATALOG_RETRY_TIMEZONE": "Europe/Berlin"}
    )
    assert (custom.cron_schedule, custom.execution_timezone) == ("30 3 * * 1-5", "Europe/Berlin")
    assert custom.name == RETRY_SCHEDULE_NAME and custom.job_name == "product_images_job"
    assert defs.resolve_schedule_def(RETRY_SCHEDULE_NAME).job_name == "product_images_job"
    assert defs.resolve_sensor_def(CATALOG_SENSOR_NAME).job_name == "catalog_job"


def _sensor(pipeline: Pipeline, cursor: str | None):
    with build_sensor_context(instance=pipeline.instance, cursor=cursor) as context:
        return catalog_batches_sensor(context)


def test_the_sensor_reloads_a_grown_catalog_so_new_batches_are_registered(pipeline, sample_products) -> None:
    assert isinstance(_sensor(pipeline, None), SkipReason)  # nothing chose a catalog file yet
    path = write_catalog(pipeline.root / "c.json", sample_products[:25])
    assert catalog(pipeline, path, batch_size=10).success
    assert pipeline.partitions() == ["batch-0000", "batch-0001", "batch-0002"]

    baseline = _sensor(pipeline, None)  # the file predates the materialization: remember it, request nothing
    assert not baseline.run_requests and baseline.cursor
    unchanged = _sensor(pipeline, baseline.cursor)
    assert isinstance(unchanged, SkipReason) and "unchanged" in unchanged.skip_message

    write_catalog(path, sample_products[:45])  # the catalog grows
    grown = _sensor(pipeline, baseline.cursor)
    [request] = grown.run_requests
    config = request.run_config["ops"]["product_catalog"]["config"]
    assert config == {"path": str(path), "batch_size": 10}  # the last materialization's config
    assert grown.cursor != baseline.cursor
    assert _sensor(pipeline, grown.cursor).skip_message  # requested once

    assert catalog(pipeline, path, batch_size=config["batch_size"]).success
    # the stable assignment keeps the first 25 products where they were; the 20 new ones make new batches
    assignment = json.loads(pipeline.store.get("state/batch_assignment.json"))["assignment"]
    assert {assignment[p["id"]] for p in sample_products[:25]} == {0, 1, 2}
    assert pipeline.partitions()[:3] == ["batch-0000", "batch-0001", "batch-0002"]
    assert len(pipeline.partitions()) > 3


# -- the scenario of the issue ---------------------------------------------------------------------------

KEY = "sk-standin-scenario-0123456789"
SCENARIO_IMAGES_CONFIG = {"max_calls_per_product": 1, "backoff_base_s": 0.0, "fallback_after_failed_runs": 3}


def test_scenario_failures_retried_by_the_schedule_then_published_with_all_checks_passing(
    pipeline: Pipeline, sample_products
) -> None:
    config = StandInConfig(api_key=KEY, faults={"server_error": 0.15}, seed=3)
    with StandInServer(config) as server:
        pipeline.generator = OpenAIImageGeneratorResource(
            api_key=KEY, base_url=server.base_url, timeout_s=10, images_per_minute=6000
        )
        assert catalog(pipeline, write_catalog(pipeline.root / "c.json", sample_products[:40]), 10).success
        partitions = pipeline.partitions()
        outcomes = {p: pipeline.images(p, SCENARIO_IMAGES_CONFIG).success for p in partitions}
        failed = sorted(p for p, ok in outcomes.items() if not ok)
        assert 0 < len(failed) < len(partitions), outcomes  # the seed makes some, not all, batches fail

        before = publish(pipeline)
        checks = checks_by_name(before)
        assert not checks["batch_failure_rate"].passed and not checks["overall_failure_rate"].passed
        assert checks["image_validity"].passed and checks["near_duplicate_images"].passed

        requests = evaluate(pipeline, include_missing=False)
        assert [r.partition_key for r in requests] == failed
        assert {r.partition_key for r in requests} == ui_failed_and_missing(pipeline)

        server.configure(faults={})  # the API recovers overnight
        calls_before = server.stats()["requests"]
        for request in requests:
            assert launch(pipeline, request, SCENARIO_IMAGES_CONFIG).success
        failed_products = sum(
            1
            for p in failed
            for row in pipeline.store.get_json(f"state/outcomes/{p}.json")["results"]
            if row["calls_total"] > 1
        )
        # only the failed products were asked for again: the stored ones were skipped
        assert server.stats()["requests"] - calls_before == failed_products
        assert evaluate(pipeline, include_missing=True) == []

    after = publish(pipeline)
    assert after.success
    checks = checks_by_name(after)
    assert set(checks) >= {
        "batch_failure_rate",
        "overall_failure_rate",
        "fallback_rate",
        "content_policy_rate",
        "image_validity",
        "near_duplicate_images",
        "manifest_matches_store",
        "linked_urls_resolve",
    }
    # the stand-in draws its images on coloured gradients: the marketplace-guidance check warns about them,
    # and a warning does not stop the publish
    figures = checks.pop("image_figures")
    assert not figures.passed and figures.severity == AssetCheckSeverity.WARN
    assert all(c.passed for c in checks.values()), {
        n: c.description for n, c in checks.items() if not c.passed
    }
    assert after.asset_materializations_for_node("linked_catalog")
    linked = json.loads(pipeline.store.get("catalog/linked_catalog.json"))
    assert len(linked) == 40 and all(p["image"]["url"] for p in linked)
