"""The shipped dagster.yaml: its limits load as Dagster reads them, the `image_api` pool really holds a
partition step back across runs, and `make` installs the file into DAGSTER_HOME without clobbering one."""

from __future__ import annotations

import subprocess

from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.run_coordinator import QueuedRunCoordinator

from catalog_assets.assets.images import IMAGE_API_POOL
from catalog_assets_tests.conftest import PROJECT
from catalog_assets_tests.dagster_projects import (
    BIN,
    MODULE,
    SHIPPED_INSTANCE,
    make_project,
    stop_process_group,
    tail,
    wait_for,
)

POOL_LIMIT = 4


def test_shipped_instance_config_is_what_dagster_loads(tmp_path, monkeypatch):
    project = make_project(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(project.home))
    with DagsterInstance.get() as instance:
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == POOL_LIMIT
        assert concurrency.pool_config.pool_granularity.value == "op"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = concurrency.run_queue_config
        assert queue.max_concurrent_runs == 8
        assert queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": 6}]
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 2
        # product failures are left to the failed-partition retry schedule, not re-run blindly
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        # run monitoring: the daemon that `dagster dev` starts watches runs and frees slots of ended ones
        assert instance.run_monitoring_enabled
        assert "MONITORING" in instance.get_required_daemon_types()
        assert instance.run_monitoring_max_resume_run_attempts == 0  # the default launcher cannot resume
        assert instance.run_monitoring_poll_interval_seconds == 30
        assert instance.run_monitoring_start_timeout_seconds == 300
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60


def test_pool_holds_a_partition_step_until_a_slot_frees(tmp_path, monkeypatch):
    """With every `image_api` slot taken by other runs, a CLI-launched partition waits, then runs."""
    project = make_project(tmp_path)
    catalog = project.materialize_catalog(batch_size=10)
    assert catalog.returncode == 0, tail(catalog.stderr)
    monkeypatch.setenv("DAGSTER_HOME", str(project.home))
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        # what Dagster does on a pool's first use: create it with the config's default limit
        storage.initialize_concurrency_limit_to_default(IMAGE_API_POOL)
        assert storage.get_concurrency_info(IMAGE_API_POOL).slot_count == POOL_LIMIT
        holders = [(f"other-run-{i}", "product_images") for i in range(POOL_LIMIT)]
        for run_id, step in holders:
            assert storage.claim_concurrency_slot(IMAGE_API_POOL, run_id, step).is_claimed

        proc = subprocess.Popen(
            [str(BIN / "dagster"), "asset", "materialize", *MODULE, "--select", "product_images"]
            + ["--partition", "batch-0000"],
            cwd=project.root,
            env=project.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:

            def blocked_run() -> str | None:
                records = instance.fetch_run_status_changes(DagsterEventType.RUN_START, limit=10).records
                for record in records:
                    logs = instance.all_logs(record.run_id, of_type=DagsterEventType.ENGINE_EVENT)
                    if any(f"blocked by limit for pool {IMAGE_API_POOL}" in e.message for e in logs):
                        return record.run_id
                return None

            run_id = wait_for(blocked_run, timeout=120, what="the partition step to block on the pool")
            assert proc.poll() is None
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED
            assert _materializations(instance) == 0

            storage.free_concurrency_slot_for_step(*holders[0])
            output, _ = proc.communicate(timeout=180)
            assert proc.returncode == 0, tail(output)
        finally:
            stop_process_group(proc)
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
        assert _materializations(instance) == 1


def _materializations(instance: DagsterInstance) -> int:
    return len(instance.fetch_materializations(AssetKey("product_images"), limit=10).records)


def test_make_installs_the_shipped_config_once(tmp_path):
    home = tmp_path / "home"
    make = ["make", "-s", "-C", str(PROJECT), f"DAGSTER_HOME={home}", "instance"]
    subprocess.run(make, check=True, capture_output=True, timeout=60)
    installed = home / "dagster.yaml"
    assert installed.read_text() == SHIPPED_INSTANCE.read_text()
    installed.write_text("# the user's own instance\n")
    subprocess.run(make, check=True, capture_output=True, timeout=60)
    assert installed.read_text() == "# the user's own instance\n"
