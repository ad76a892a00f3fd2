"""The only place that touches Dagster internals (names outside `dagster.*`'s public API), each wrapped once,
so a Dagster upgrade breaks here and in its tests, nowhere else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRunStatus

# -- asset check records ----------------------------------------------------------------------------------
# The event log's latest execution record of a check is public (`EventLogStorage`), but the enum of its
# stored status is not exported: the record says PLANNED until the check reports, whether it is still running
# or its run died. `latest_check_executions` resolves that with the run's status, the way the UI does.
from dagster._core.storage.asset_check_execution_record import (  # noqa: E402
    AssetCheckExecutionRecordStatus,
)

#: never run; run still going; its run failed before it reported (crashed); its run ended without running
#: it (skipped, e.g. its asset failed); reported a failure; reported a pass
CheckState = Literal["never run", "running", "crashed", "skipped", "failed", "succeeded"]


@dataclass(frozen=True)
class CheckExecution:
    """The latest execution of one asset check."""

    key: AssetCheckKey
    state: CheckState
    run_id: str | None = None
    #: storage id of the asset materialization the check judged (None: not reported, or none existed)
    target_storage_id: int | None = None
    #: for a reported result: "ERROR" or "WARN", its description, and when it was recorded
    severity: str | None = None
    description: str | None = None
    timestamp: float | None = None


def latest_check_executions(
    instance: DagsterInstance, keys: Sequence[AssetCheckKey], *, running_run_id: str | None = None
) -> dict[AssetCheckKey, CheckExecution]:
    """The latest execution of each check, by key (every key present: a check never run is `never run`).

    A check still planned in `running_run_id` (the caller's own run, not finished yet) is passed over for the
    execution before it, so a report written inside a publish run shows the previous results, not "running".
    """
    latest: dict[AssetCheckKey, CheckExecution] = {}
    for key in keys:
        latest[key] = CheckExecution(key, "never run")
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=10):
            planned = record.status == AssetCheckExecutionRecordStatus.PLANNED
            if planned and running_run_id is not None and record.run_id == running_run_id:
                continue
            latest[key] = _execution(instance, key, record)
            break
    return latest


def _execution(instance: DagsterInstance, key: AssetCheckKey, record) -> CheckExecution:
    if record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
        state: CheckState = "succeeded"
    elif record.status == AssetCheckExecutionRecordStatus.FAILED:
        state = "failed"
    elif record.status == AssetCheckExecutionRecordStatus.PLANNED:
        run = instance.get_run_by_id(record.run_id)
        if run is None:
            state = "skipped"  # the run was deleted
        elif not run.is_finished:
            state = "running"
        else:
            state = "crashed" if run.status == DagsterRunStatus.FAILURE else "skipped"
    else:
        raise RuntimeError(f"unknown asset check record status {record.status!r}: Dagster changed")
    evaluation = record.evaluation if state in ("succeeded", "failed") else None
    if evaluation is None:
        return CheckExecution(key, state, record.run_id, timestamp=record.create_timestamp)
    target = evaluation.target_materialization_data
    return CheckExecution(
        key,
        state,
        record.run_id,
        target.storage_id if target else None,
        severity=evaluation.severity.value,
        description=evaluation.description,
        timestamp=record.create_timestamp,
    )


# -- runs and concurrency pools ---------------------------------------------------------------------------
# Dagster writes and reads these run tags itself but exports no constant for them; the values are the ones
# its docs and UI show. The test compares each with the constant Dagster uses internally.

#: the run key of a run requested by a schedule or sensor (`RunRequest(run_key=...)`)
RUN_KEY_TAG = "dagster/run_key"
#: the sensor that requested a run; a sensor's daemon skips a request whose run key a run with its name has
SENSOR_NAME_TAG = "dagster/sensor_name"
#: the partition a run materializes
PARTITION_TAG = "dagster/partition"
#: the backfill a run belongs to
BACKFILL_TAG = "dagster/backfill"
#: "<repository>@<code location>": the UI's job and location pages list only runs carrying their label
REPOSITORY_LABEL_TAG = ".dagster/repository"
#: the repository name of a code location defined by one `Definitions` object
SINGLE_REPOSITORY_NAME = "__repository__"


def repository_label(location_name: str) -> str:
    """The label of the code location `location_name`, as the UI filters a job's runs by it."""
    return f"{SINGLE_REPOSITORY_NAME}@{location_name}"


def free_pool_slots(instance: DagsterInstance, run_id: str) -> None:
    """Releases every concurrency-pool slot a run holds, and its place in a pool's waiting line.

    A run worker releases its slots as its steps end; a worker that died cannot, and its slots stay taken
    until released here (the UI's "free concurrency slots" action and the daemon's run monitoring call the
    same storage method)."""
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


# Dagster's SQL event log claims a pool slot in two statements: it selects a free slot row, then writes the
# step into that row by id. `SELECT ... FOR UPDATE` is ignored by SQLite and, on PostgreSQL, holds its lock
# for the select alone (the index connection commits each statement), so two steps starting together can
# select the same free row: both are told CLAIMED, the row names only the later one, and the earlier step
# runs without a slot the pool counts (a fifth step can then take the slot that looks free). The claim below
# is one UPDATE that takes a row only while it is free: of two steps racing for a row, one gets it and the
# other is told BLOCKED and waits, as for any full pool.
def _claim_free_slot(self, concurrency_key: str, run_id: str, step_key: str):  # noqa: ANN202
    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import ConcurrencySlotsTable
    from dagster._core.storage.sqlalchemy_compat import db_select
    from dagster._utils.concurrency import ConcurrencySlotStatus

    slots = ConcurrencySlotsTable.c
    free = (
        db_select([slots.id])
        .where(
            db.and_(
                slots.concurrency_key == concurrency_key, slots.step_key.is_(None), slots.deleted.is_(False)
            )
        )
        .order_by(slots.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with self.index_connection() as conn:
        taken = conn.execute(
            ConcurrencySlotsTable.update()
            .values(run_id=run_id, step_key=step_key)
            .where(db.and_(slots.id == free, slots.step_key.is_(None)))
        ).rowcount
    return ConcurrencySlotStatus.CLAIMED if taken else ConcurrencySlotStatus.BLOCKED


def atomic_pool_claims() -> None:
    """Makes every pool-slot claim of this process one atomic statement (see `_claim_free_slot`), on every
    SQL event log: the claim is `SqlEventLogStorage`'s, which the SQLite, PostgreSQL and MySQL storages
    inherit. Called where the definitions load, so it holds in each process that runs steps: `catalog-images
    run` workers, `dagster asset materialize`, runs the daemon launches."""
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    SqlEventLogStorage._claim_concurrency_slot = _claim_free_slot  # noqa: SLF001


def pool_slots_held(instance: DagsterInstance, pool: str) -> dict[str, int]:
    """Run id → slots of `pool` that run holds now (as `dagster instance concurrency get` counts them)."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    held: dict[str, int] = {}
    for slot in info.claimed_slots:
        held[slot.run_id] = held.get(slot.run_id, 0) + 1
    return held


def instance_is_single_host(instance: DagsterInstance) -> bool:
    """True when the instance keeps its runs in SQLite under DAGSTER_HOME: every run process it has is on
    this machine (SQLite storage is not shared between hosts)."""
    from dagster._core.storage.runs import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def latest_failed_partition_attempts(instance: DagsterInstance, asset_key: AssetKey) -> Mapping[str, str]:
    """Partition → id of the run of its latest materialization attempt, for partitions whose latest attempt
    produced no materialization: the record Dagster derives a partition's FAILED status from."""
    attempts = instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(
        asset_key
    )
    return {partition: attempt[0] for partition, attempt in attempts.items()}
