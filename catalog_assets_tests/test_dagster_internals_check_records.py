"""catalog_assets.dagster_internals, section "asset check records": the private names it relies on still exist
with the meaning it gives them (these fail on a Dagster upgrade that changes them), and each state it reports
comes from a real execution of a check."""

import threading

import dagster
import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetSelection,
    Config,
    DagsterInstance,
    Failure,
    asset,
    asset_check,
    materialize,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from catalog_assets.dagster_internals import CheckExecution, latest_check_executions


def test_the_stored_statuses_are_the_three_the_wrapper_resolves() -> None:
    """The wrapper turns PLANNED / SUCCEEDED / FAILED into states; a new stored status needs a decision."""
    assert {s.value for s in AssetCheckExecutionRecordStatus} == {"PLANNED", "SUCCEEDED", "FAILED"}
    assert not hasattr(dagster, "AssetCheckExecutionRecordStatus"), (
        "Dagster now exports AssetCheckExecutionRecordStatus: import it from `dagster` and drop the wrapper"
    )


class Verdict(Config):
    outcome: str = "pass"  # pass | fail | raise


@asset
def toy() -> int:
    return 1


@asset_check(asset=toy)
def toy_is_fine(config: Verdict) -> AssetCheckResult:
    if config.outcome == "raise":
        raise Failure(description="the check could not run")
    return AssetCheckResult(passed=config.outcome == "pass")


KEY = AssetCheckKey(toy.key, "toy_is_fine")


def _run(instance: DagsterInstance, outcome: str, with_asset: bool = True):
    return materialize(
        [toy, toy_is_fine],
        selection=None if with_asset else AssetSelection.checks(toy_is_fine),
        instance=instance,
        run_config={"ops": {"toy_toy_is_fine": {"config": {"outcome": outcome}}}},
        raise_on_error=False,
    )


def _latest_materialization_storage_id(instance: DagsterInstance) -> int:
    return instance.fetch_materializations(toy.key, limit=1).records[0].storage_id


def test_each_state_from_a_real_execution() -> None:
    with DagsterInstance.ephemeral() as instance:
        assert latest_check_executions(instance, [KEY]) == {KEY: CheckExecution(KEY, "never run")}

        passed = _run(instance, "pass")
        latest = latest_check_executions(instance, [KEY])[KEY]
        assert (latest.state, latest.run_id) == ("succeeded", passed.run_id)
        assert latest.target_storage_id == _latest_materialization_storage_id(instance)

        failed = _run(instance, "fail")
        assert latest_check_executions(instance, [KEY])[KEY].state == "failed"
        assert latest_check_executions(instance, [KEY])[KEY].run_id == failed.run_id

        crashed = _run(instance, "raise")
        assert not crashed.success
        latest = latest_check_executions(instance, [KEY])[KEY]
        assert (latest.state, latest.run_id, latest.target_storage_id) == ("crashed", crashed.run_id, None)


@pytest.mark.parametrize("outcome", ["pass", "fail"])
def test_a_check_run_alone_targets_the_latest_materialization(outcome: str) -> None:
    with DagsterInstance.ephemeral() as instance:
        _run(instance, "pass")
        _run(instance, outcome, with_asset=False)
        latest = latest_check_executions(instance, [KEY])[KEY]
        assert latest.state == ("succeeded" if outcome == "pass" else "failed")
        assert latest.target_storage_id == _latest_materialization_storage_id(instance)


def test_a_check_still_running_is_running() -> None:
    """The state seen from outside while the check's run is going (as linked_catalog alone would see it)."""
    started, release = threading.Event(), threading.Event()

    @asset_check(asset=toy, name="toy_is_slow")
    def toy_is_slow() -> AssetCheckResult:
        started.set()
        assert release.wait(60), "the test never released the check"
        return AssetCheckResult(passed=True)

    key = AssetCheckKey(toy.key, "toy_is_slow")
    with DagsterInstance.ephemeral() as instance:
        runner = threading.Thread(
            target=materialize, args=([toy, toy_is_slow],), kwargs={"instance": instance}, daemon=True
        )
        runner.start()
        try:
            assert started.wait(60), "the check never started"
            assert latest_check_executions(instance, [key])[key].state == "running"
        finally:
            release.set()
            runner.join(60)
        assert latest_check_executions(instance, [key])[key].state == "succeeded"
