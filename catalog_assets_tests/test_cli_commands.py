"""The README's everyday commands, each run as a subprocess the way a user types it: one partition, a range
of partitions, the downstream assets, the checks, and the failed-partition retry."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.partition_status_cache import AssetPartitionStatus
from dagster._core.storage.tags import BACKFILL_ID_TAG, RUN_KEY_TAG

from catalog_assets.partitions import product_batches
from catalog_assets.schedules import LAUNCHED_BY_TAG, RETRY_SCHEDULE_NAME, retry_run_requests
from catalog_assets.standin import StandInProcess
from catalog_assets_tests.dagster_projects import (
    MODULE,
    DagsterProject,
    make_project,
    tail,
    wait_for,
)

#: end to end, a Dagster CLI process per command (`make test-fast` leaves them out)
pytestmark = pytest.mark.slow

BATCHES = ["batch-0000", "batch-0001"]
PUBLISH = "image_manifest,linked_catalog,generation_report"
STANDIN_KEY = "sk-test-cli-commands-7f3a"


@pytest.fixture
def project(tmp_path) -> DagsterProject:
    """20 products in two batches of 10, the catalog materialized, the shipped dagster.yaml."""
    project = make_project(tmp_path, products=20)
    _ok(project.materialize_catalog(batch_size=10))
    return project


def _ok(result) -> str:
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    return result.stderr


def _statuses(instance: DagsterInstance) -> dict[str, AssetPartitionStatus]:
    statuses = instance.get_status_by_partition(AssetKey("product_images"), BATCHES, product_batches) or {}
    return {key: status for key, status in statuses.items() if status is not None}


def _stored(project: DagsterProject) -> list[str]:
    return sorted(p.name for p in (project.root / "data" / "store" / "images").glob("*.jpg"))


def test_one_partition_then_the_downstream_assets_then_the_checks(project):
    # one partition
    _ok(project.materialize("product_images", partition="batch-0001"))
    assert _stored(project) == [f"PROD-0000{i}.jpg" for i in range(11, 21)]
    with project.instance() as instance:
        assert _statuses(instance) == {"batch-0001": AssetPartitionStatus.MATERIALIZED}

    # the downstream assets, with the checks on them, in one run
    _ok(project.materialize(PUBLISH))
    linked = json.loads((project.root / "data" / "store" / "catalog" / "linked_catalog.json").read_text())
    with_images = sorted(row["id"] for row in linked if row["image"]["url"])
    assert with_images == [f"PROD-0000{i}" for i in range(11, 21)]
    with project.instance() as instance:
        keys = [
            AssetCheckKey(AssetKey("image_manifest"), name)
            for name in ("image_validity", "manifest_matches_store", "batch_failure_rate")
        ]
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        assert {key.name: latest[key].status for key in keys} == dict.fromkeys(
            (key.name for key in keys), AssetCheckExecutionRecordStatus.SUCCEEDED
        )

    # the checks alone: all pass, exit 0, nothing materialized
    before = _materialization_count(project)
    checks = _ok(project.run("catalog-images", "check"))
    assert "0 failed at ERROR severity" in checks
    assert "passed image_manifest:near_duplicate_images" in checks
    assert "passed product_catalog:quarantine_rate" in checks
    assert _materialization_count(project) == before

    # an object lost from the store: the checks on image_manifest say so and the command fails
    (project.root / "data" / "store" / "images" / "PROD-000015.jpg").unlink()
    broken = project.run("catalog-images", "check", "--select", "image_manifest")
    assert broken.returncode == 1, tail(broken.stderr)
    assert "FAILED (ERROR) image_manifest:manifest_matches_store" in broken.stderr
    assert "quarantine_rate" not in broken.stderr  # only the selected asset's checks ran
    typo = project.run("catalog-images", "check", "--select", "image_manifests")
    assert typo.returncode == 2
    assert "no asset named image_manifests" in typo.stderr


def _materialization_count(project: DagsterProject) -> int:
    with project.instance() as instance:
        return sum(
            len(instance.fetch_materializations(AssetKey(key), limit=100).records)
            for key in ("product_catalog", "product_images", *PUBLISH.split(","))
        )


def test_a_partition_range_is_a_backfill_that_the_daemon_runs(project):
    base = ["dagster", "asset", "materialize", *MODULE, "--select", "product_images"]
    refused = project.run(*base, "--partition-range", "batch-0000...batch-0001")
    assert refused.returncode != 0
    assert "BackfillPolicy.single_run()" in refused.stderr  # one run per batch needs the daemon

    backfill = project.run(
        "dagster", "job", "backfill", *MODULE, "-j", "product_images_job", "--from", "batch-0000",
        "--to", "batch-0001", "--noprompt",
    )  # fmt: skip
    assert "Launched backfill job" in _ok(backfill) + backfill.stdout
    with project.instance() as instance:
        queued = [r for r in instance.get_runs() if BACKFILL_ID_TAG in r.tags]
        assert sorted(r.tags["dagster/partition"] for r in queued) == BATCHES  # one run per batch
        # the run queue of dagster.yaml holds them until a daemon dequeues them
        assert {r.status for r in queued} == {DagsterRunStatus.QUEUED}
    backfill_id = queued[0].tags[BACKFILL_ID_TAG]

    project.start("dagster-daemon", "run", *MODULE, log_name="daemon")
    try:
        with project.instance() as instance:

            def finished_runs() -> list | None:
                runs = instance.get_runs(RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
                return runs if all(r.is_finished for r in runs) else None

            runs = wait_for(finished_runs, timeout=240, interval=1, what="the daemon to run the backfill")
            assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * 2, tail(project.log("daemon"))
            assert _statuses(instance) == dict.fromkeys(BATCHES, AssetPartitionStatus.MATERIALIZED)
    finally:
        project.stop_all()
    assert len(_stored(project)) == 20


def test_a_partition_range_without_a_daemon_runs_in_the_runner(tmp_path):
    project = make_project(tmp_path, products=30)
    _ok(project.materialize_catalog(batch_size=10))
    runner = _ok(project.run("catalog-images", "run", "--partitions", "batch-0000", "batch-0002"))
    assert "2/2 batches done, 0 failed" in runner
    with project.instance() as instance:
        statuses = instance.get_status_by_partition(
            AssetKey("product_images"), ["batch-0000", "batch-0001", "batch-0002"], product_batches
        )
        assert {k for k, v in statuses.items() if v == AssetPartitionStatus.MATERIALIZED} == {
            "batch-0000",
            "batch-0002",
        }
    assert len(_stored(project)) == 20


@pytest.fixture
def standin() -> Iterator[StandInProcess]:
    with StandInProcess(["--api-key", STANDIN_KEY]) as process:
        yield process


def test_retry_failed_reruns_exactly_the_failed_batches(tmp_path, standin):
    """A batch fails on API errors; `catalog-images retry-failed` reruns it, and only it, as the schedule
    would, and the next scheduled tick has nothing left to launch."""
    project = make_project(
        tmp_path,
        products=20,
        env={
            "OPENAI_API_KEY": STANDIN_KEY,
            "OPENAI_BASE_URL": standin.base_url,
            "CATALOG_IMAGES_PER_MINUTE": "6000",
        },
    )
    _ok(project.materialize_catalog(batch_size=10))
    standin.configure(faults={"server_error": 1.0})
    # one call per product, and no breaker: its cool-downs would only make the batch slower to fail
    one_call = {
        "ops": {"product_images": {"config": {"max_calls_per_product": 1, "backoff_base_s": 0}}},
        "resources": {"coordination": {"config": {"breaker_failure_threshold": 1000}}},
    }
    failing = project.materialize("product_images", partition="batch-0000", config=one_call)
    assert failing.returncode != 0
    standin.configure(faults={})
    _ok(project.materialize("product_images", partition="batch-0001"))
    with project.instance() as instance:
        assert _statuses(instance) == {
            "batch-0000": AssetPartitionStatus.FAILED,
            "batch-0001": AssetPartitionStatus.MATERIALIZED,
        }
        failed_run = next(r for r in instance.get_runs() if r.status == DagsterRunStatus.FAILURE)
        runs_before = len(instance.get_runs())

    dry = _ok(project.run("catalog-images", "retry-failed", "--dry-run"))
    assert "1 batch(es) to retry: batch-0000" in dry
    calls_before = standin.stats(products=False)["requests"]
    retry = _ok(project.run("catalog-images", "retry-failed"))
    assert "batch batch-0000 ok" in retry
    assert standin.stats(products=False)["requests"] - calls_before == 10  # batch-0001 was not touched

    with project.instance() as instance:
        assert _statuses(instance) == dict.fromkeys(BATCHES, AssetPartitionStatus.MATERIALIZED)
        runs = instance.get_runs()
        assert len(runs) == runs_before + 1
        retried = runs[0]
        assert retried.tags["dagster/partition"] == "batch-0000"
        assert retried.tags[RUN_KEY_TAG] == f"batch-0000:{failed_run.run_id}"
        assert retried.tags[LAUNCHED_BY_TAG] == RETRY_SCHEDULE_NAME
        assert retry_run_requests(instance, include_missing=True) == []  # the nightly tick has nothing to do
    assert "no failed batches to retry" in _ok(project.run("catalog-images", "retry-failed"))
    assert len(_stored(project)) == 20
