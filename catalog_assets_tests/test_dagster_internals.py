"""Each Dagster internal that catalog_assets/dagster_internals.py wraps still exists and does what we rely
on: this file fails on the Dagster upgrade that changes one, before any run does."""

from __future__ import annotations

import ast

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DynamicPartitionsDefinition,
    Failure,
    asset,
    materialize,
)
from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.storage import tags as dagster_tags

from catalog_assets import dagster_internals
from catalog_assets_tests.conftest import PROJECT

# -- runs and concurrency pools ---------------------------------------------------------------------------


def test_run_tag_names_are_the_ones_dagster_writes():
    assert dagster_internals.RUN_KEY_TAG == dagster_tags.RUN_KEY_TAG
    assert dagster_internals.SENSOR_NAME_TAG == dagster_tags.SENSOR_NAME_TAG
    assert dagster_internals.PARTITION_TAG == dagster_tags.PARTITION_NAME_TAG
    assert dagster_internals.BACKFILL_TAG == dagster_tags.BACKFILL_ID_TAG
    assert dagster_internals.REPOSITORY_LABEL_TAG == dagster_tags.REPOSITORY_LABEL_TAG
    assert dagster_internals.SINGLE_REPOSITORY_NAME == SINGLETON_REPOSITORY_NAME
    # the label the UI filters a job's runs by, as Dagster builds it for a code location
    origin = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("loc"), SINGLETON_REPOSITORY_NAME)
    assert dagster_internals.repository_label("loc") == origin.get_label()


def test_a_partitioned_run_carries_the_partition_tag():
    batches = DynamicPartitionsDefinition(name="things")

    @asset(partitions_def=batches)
    def part() -> int:
        return 1

    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("things", ["a"])
        result = materialize([part], partition_key="a", instance=instance)
        assert instance.get_run_by_id(result.run_id).tags[dagster_internals.PARTITION_TAG] == "a"


def test_pool_slots_of_a_run_are_counted_and_freed(tmp_path):
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("pool-x", 2)
        assert storage.claim_concurrency_slot("pool-x", "run-a", "step-1").is_claimed
        assert storage.claim_concurrency_slot("pool-x", "run-a", "step-2").is_claimed
        assert not storage.claim_concurrency_slot("pool-x", "run-b", "step-1").is_claimed  # waits in line
        assert dagster_internals.pool_slots_held(instance, "pool-x") == {"run-a": 2}

        dagster_internals.free_pool_slots(instance, "run-a")
        assert dagster_internals.pool_slots_held(instance, "pool-x") == {}
        # the waiting step can claim now
        assert storage.claim_concurrency_slot("pool-x", "run-b", "step-1").is_claimed
        assert dagster_internals.pool_slots_held(instance, "pool-x") == {"run-b": 1}


def test_a_sqlite_instance_is_single_host(tmp_path):
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        assert dagster_internals.instance_is_single_host(instance)


def test_latest_failed_attempts_name_the_failed_run_per_partition(tmp_path):
    batches = DynamicPartitionsDefinition(name="batches")

    @asset(partitions_def=batches)
    def made(context) -> int:
        if context.partition_key == "bad":
            raise Failure("no")
        return 1

    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        instance.add_dynamic_partitions("batches", ["good", "bad"])
        materialize([made], partition_key="good", instance=instance)
        failed = materialize([made], partition_key="bad", instance=instance, raise_on_error=False)
        assert not failed.success
        attempts = dagster_internals.latest_failed_partition_attempts(instance, AssetKey("made"))
        assert dict(attempts) == {"bad": failed.run_id}


# -- nothing else reaches into Dagster ---------------------------------------------------------------------

#: the modules that launch, watch and schedule runs
RUN_MODULES = ("cli.py", "runner.py", "run_liveness.py", "operations.py", "schedules.py", "sensors.py")


@pytest.mark.parametrize("module", RUN_MODULES)
def test_run_modules_use_only_public_dagster(module):
    path = PROJECT / "catalog_assets" / module
    tree = ast.parse(path.read_text())
    private = [
        f"{module}:{node.lineno}"
        for node in ast.walk(tree)
        if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dagster._"))
        or (isinstance(node, ast.Import) and any(a.name.startswith("dagster._") for a in node.names))
        # an exception told apart by the text of its class name breaks when Dagster renames it
        or (isinstance(node, ast.Attribute) and node.attr == "cls_name")
    ]
    assert private == [], f"Dagster internals outside catalog_assets/dagster_internals.py: {private}"
    for name in ("get_latest_asset_partition_materialization_attempts", "free_concurrency_slots_for_run"):
        assert name not in path.read_text(), f"{module} calls storage internals ({name})"
