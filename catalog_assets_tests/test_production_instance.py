"""The production instance (deploy/dagster-production.yaml) on the machine's PostgreSQL: a partition
materialized through the real CLI lands in PostgreSQL's run and event-log tables, not in SQLite."""

from __future__ import annotations

import os

import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from catalog_assets import dagster_internals
from catalog_assets_tests.dagster_projects import (
    PRODUCTION_INSTANCE,
    SHIPPED_INSTANCE,
    DagsterProject,
    make_project,
    tail,
)
from catalog_assets_tests.pg_support import connect, instance_env


@pytest.fixture
def production_project(tmp_path, pg_database) -> DagsterProject:
    return make_project(
        tmp_path,
        instance_yaml=PRODUCTION_INSTANCE,
        env=instance_env(pg_database),
    )


def test_a_partition_materialized_by_the_cli_is_stored_in_postgresql(production_project, pg_database):
    project = production_project
    info = project.run("dagster", "instance", "info")
    assert info.returncode == 0, tail(info.stderr)
    for line in (
        "run_storage: PostgresRunStorage",
        "event_log_storage: PostgresEventLogStorage",
        "schedule_storage: PostgresScheduleStorage",
    ):
        assert line in info.stdout

    catalog = project.materialize_catalog(batch_size=10)
    assert catalog.returncode == 0, tail(catalog.stderr)
    images = project.materialize("product_images", partition="batch-0001")
    assert images.returncode == 0, tail(images.stderr)

    with connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'product_batches' "
            "ORDER BY partition"
        )
        assert [r[0] for r in cur.fetchall()] == ["batch-0000", "batch-0001"]

        cur.execute(
            "SELECT e.run_id, r.status FROM event_logs e JOIN runs r ON r.run_id = e.run_id "
            "WHERE e.dagster_event_type = 'ASSET_MATERIALIZATION' AND e.asset_key = %s AND e.partition = %s",
            ('["product_images"]', "batch-0001"),
        )
        materializations = cur.fetchall()
        assert len(materializations) == 1
        run_id, status = materializations[0]
        assert status == "SUCCESS"
        cur.execute("SELECT key, value FROM run_tags WHERE run_id = %s", (run_id,))
        assert dict(cur.fetchall())["dagster/partition"] == "batch-0001"

        # the pool limit of the config reached the shared storage, where every worker will see it
        cur.execute('SELECT "limit" FROM concurrency_limits WHERE concurrency_key = %s', ("image_api",))
        assert cur.fetchall() == [(4,)]

    # nothing went to SQLite under DAGSTER_HOME
    assert not list(project.home.rglob("*.db"))

    # Dagster's own API on the same instance reads it back
    previous = os.environ.copy()
    os.environ.update(project.env)
    try:
        with DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            record = instance.get_latest_materialization_event(AssetKey("product_images"))
            assert record is not None
            assert record.run_id == run_id
            assert record.dagster_event.partition == "batch-0001"
            assert instance.get_run_by_id(run_id).tags["dagster/partition"] == "batch-0001"
    finally:
        os.environ.clear()
        os.environ.update(previous)


def test_production_config_keeps_the_shipped_limits():
    """Pool, run queue and retry settings must not drift between the local and the production instance."""
    local = yaml.safe_load(SHIPPED_INSTANCE.read_text())
    production = yaml.safe_load(PRODUCTION_INSTANCE.read_text())
    for key in ("concurrency", "run_retries", "run_monitoring"):
        assert production[key] == local[key], key
    assert set(production["storage"]["postgres"]["postgres_db"]) >= {
        "hostname",
        "port",
        "username",
        "password",
        "db_name",
    }
    assert all(
        isinstance(value, dict) and value["env"].startswith("DAGSTER_PG_")
        for name, value in production["storage"]["postgres"]["postgres_db"].items()
        if name != "scheme"
    )


def test_production_instance_loads_with_run_monitoring(production_project):
    """The daemon of a deployment runs the monitoring daemon, with the settings of the file."""
    previous = os.environ.copy()
    os.environ.update(production_project.env)
    try:
        with DagsterInstance.get() as instance:
            assert instance.run_monitoring_enabled
            assert "MONITORING" in instance.get_required_daemon_types()
            assert instance.run_monitoring_max_resume_run_attempts == 0
            assert instance.run_monitoring_poll_interval_seconds == 30
            assert instance.run_monitoring_start_timeout_seconds == 300
            assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
            # workers may run on other machines: the runner leaves their liveness to run monitoring
            assert not dagster_internals.instance_is_single_host(instance)
    finally:
        os.environ.clear()
        os.environ.update(previous)
