"""Which process executes a run, and whether it is still there: runs whose process is gone are marked
failed with the reason and give back their concurrency-pool slots, so a dead run never holds the pool."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from catalog_assets import dagster_internals
from catalog_assets.assets.images import IMAGE_API_POOL

log = logging.getLogger("catalog_assets.run_liveness")

#: which process executes a run: what tells a run in progress from one whose worker is gone
WORKER_PID_TAG = "catalog-images/worker-pid"
WORKER_HOST_TAG = "catalog-images/worker-host"
WORKER_START_TAG = "catalog-images/worker-start"
UNFINISHED = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def _process_start(pid: int) -> str | None:
    """The boot and the kernel start time of `pid` (None where /proc is missing): with the pid, it names one
    process for good, even after the pid is reused."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 22 (starttime), counted after the command name, which may itself hold spaces and parentheses
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def _is_zombie(pid: int) -> bool:
    """True when `pid` has exited but is not reaped yet (state Z or X in /proc): a killed worker whose
    parent died too waits in that state until init collects it, which some container inits do late."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def worker_tags() -> dict[str, str]:
    """Tags naming this process as the one executing a run."""
    pid = os.getpid()
    return {
        WORKER_PID_TAG: str(pid),
        WORKER_HOST_TAG: socket.gethostname(),
        WORKER_START_TAG: _process_start(pid) or "",
    }


def _pid_is_gone(pid: int, recorded_start: str | None = None, started_by: float | None = None) -> bool:
    """True when no process `pid` exists, or the one that does is not the one meant: its start differs
    from `recorded_start`, or it started after `started_by` (epoch seconds)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, another user's
    if _is_zombie(pid):
        return True  # it has exited; only its parent (or an init that reaps late) has not collected it
    current = _process_start(pid)
    if recorded_start and current:
        return recorded_start != current  # the pid now names another process
    if started_by is not None and current:
        return _start_epoch(current) > started_by + 1.0
    return False


def _start_epoch(start: str) -> float:
    ticks = int(start.rsplit(":", 1)[1])
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def worker_is_gone(run: DagsterRun) -> bool:
    """True when the run names its worker process (tags set by `launch`) and that process no longer exists
    on this host; runs of other hosts or without the tags are not judged here."""
    tags = run.tags
    if tags.get(WORKER_HOST_TAG) != socket.gethostname() or not tags.get(WORKER_PID_TAG, "").isdigit():
        return False
    return _pid_is_gone(int(tags[WORKER_PID_TAG]), recorded_start=tags.get(WORKER_START_TAG))


def _logged_process(instance: DagsterInstance, run: DagsterRun) -> tuple[int, float] | None:
    """The process a run's first engine event with a pid names (a run worker of the daemon or UI, a
    `dagster asset materialize` process), and when it said so."""
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        pid = event.engine_event_data.metadata.get("pid") if event else None
        text = str(getattr(pid, "value", pid) or "")
        if text.isdigit():
            return int(text), entry.timestamp
    return None


def _dead_process(instance: DagsterInstance, run: DagsterRun, single_host: bool) -> str | None:
    """Which process of `run` is gone ("pid N"), or None while it may be alive."""
    if WORKER_PID_TAG in run.tags:
        return f"pid {run.tags[WORKER_PID_TAG]}" if worker_is_gone(run) else None
    if not single_host:
        return None  # its process may live on another machine: run monitoring watches those
    logged = _logged_process(instance, run)
    if logged is None:
        return None  # not started yet, or started nowhere we can see
    pid, logged_at = logged
    return f"pid {pid}" if _pid_is_gone(pid, started_by=logged_at) else None


def fail_if_dead(
    instance: DagsterInstance, run: DagsterRun, reason: str, *, single_host: bool | None = None
) -> bool:
    """Marks the unfinished `run` failed, with `reason`, and frees its pool slots when its worker process is
    gone; returns whether it did."""
    if single_host is None:
        single_host = dagster_internals.instance_is_single_host(instance)
    process = _dead_process(instance, run, single_host)
    if process is None:
        return False
    instance.report_run_failed(run, f"{reason}: its worker process ({process}) is gone")
    dagster_internals.free_pool_slots(instance, run.run_id)
    return True


def fail_dead_runs(instance: DagsterInstance, reason: str) -> list[DagsterRun]:
    """Marks failed, with `reason`, every unfinished run whose worker is gone, and frees the pool slots of
    every finished run that still holds some: a dead run never holds the image-API pool. Runs launched
    here name their worker in tags; on a single-host (SQLite) instance, the process any other run logged
    (a run worker of the daemon or UI, `dagster asset materialize`) is checked too. Returns the runs it
    failed."""
    single_host = dagster_internals.instance_is_single_host(instance)
    failed = [
        record.dagster_run
        for record in instance.get_run_records(RunsFilter(statuses=UNFINISHED))
        if fail_if_dead(instance, record.dagster_run, reason, single_host=single_host)
    ]
    holders = dagster_internals.pool_slots_held(instance, IMAGE_API_POOL)
    if holders:
        for record in instance.get_run_records(RunsFilter(run_ids=list(holders))):
            if record.dagster_run.is_finished:
                dagster_internals.free_pool_slots(instance, record.dagster_run.run_id)
            elif WORKER_PID_TAG not in record.dagster_run.tags and not single_host:
                log.warning(
                    "run %s (%s, %s) holds an %s slot and names no worker process; if its process is gone, "
                    "terminate it in the UI so the slot is freed",
                    record.dagster_run.run_id,
                    record.dagster_run.job_name,
                    record.dagster_run.status.value,
                    IMAGE_API_POOL,
                )
    for run in failed:
        log.warning("run %s (%s) had no live worker: marked failed", run.run_id, _run_label(run))
    return failed


def _run_label(run: DagsterRun) -> str:
    partition = run.tags.get(dagster_internals.PARTITION_TAG)
    return f"{run.job_name} {partition}" if partition else run.job_name
