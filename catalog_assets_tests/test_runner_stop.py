"""A `catalog-images run` that dies or is stopped leaves no run holding the image-API pool.

The stand-in holds every generation call, so four batch runs sit STARTED, each holding one of the four
`image_api` slots of the shipped dagster.yaml (the pool at its shipped limit). Then:
- SIGKILL of the runner's whole process group, then a plain rerun: it marks the dead runs FAILED with the
  reason, frees their slots and completes with no manual step;
- SIGTERM to the runner, or Ctrl-C to its process group as a terminal sends it: the runner and every
  process under it are gone within 15 s, the exit code is non-zero, no run is left in progress and no
  slot is held.
Real services: the stand-in over HTTP with the `openai` SDK, a private redis-server for coordination."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

from catalog_assets import dagster_internals
from catalog_assets.assets.images import IMAGE_API_POOL
from catalog_assets.dagster_internals import PARTITION_TAG
from catalog_assets.run_liveness import UNFINISHED, WORKER_PID_TAG
from catalog_assets.standin import StandInConfig
from catalog_assets_tests.dagster_projects import BIN, MODULE, DagsterProject, tail, wait_for
from catalog_assets_tests.resilience_support import HoldingStandIn, OwnRedis
from catalog_assets_tests.runner_projects import alive, descendants, runner_project, runs_of, start_runner

pytestmark = pytest.mark.resilience

API_KEY = "sk-runner-stop-5d2e"
POOL_LIMIT = 4  # the shipped dagster.yaml's default pool limit
BATCHES = 4
PER_BATCH = 3


@pytest.fixture
def standin() -> Iterator[HoldingStandIn]:
    with HoldingStandIn(StandInConfig(api_key=API_KEY)) as server:
        yield server


@pytest.fixture
def redis_server(tmp_path) -> Iterator[OwnRedis]:
    with OwnRedis(tmp_path) as server:
        yield server


@pytest.fixture
def project(tmp_path, standin, redis_server) -> DagsterProject:
    """Four batches of three products, assigned once by a catalog run with batch_size 3 (later catalog
    runs keep the assignment), against the stand-in and Redis."""
    project = runner_project(
        tmp_path / "project",
        BATCHES * PER_BATCH,
        env={
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": standin.base_url,
            "REDIS_URL": redis_server.url,
            "CATALOG_IMAGES_PER_MINUTE": "6000",
        },
    )
    catalog = project.materialize_catalog(batch_size=PER_BATCH)
    assert catalog.returncode == 0, tail(catalog.stderr)
    return project


def _all_slots_taken(project: DagsterProject) -> dict[str, int] | None:
    with project.instance() as instance:
        held = dagster_internals.pool_slots_held(instance, IMAGE_API_POOL)
        started = _started_batch_runs(instance)
        return held if sum(held.values()) >= POOL_LIMIT and len(started) >= POOL_LIMIT else None


def _started_batch_runs(instance) -> list:
    return [
        r
        for r in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        if r.tags.get(PARTITION_TAG)
    ]


def _rerun(project: DagsterProject, *args: str) -> str:
    """`catalog-images run ...` to its end (killed with its workers if it hangs); its output."""
    proc = start_runner(project, *args, log_name="rerun")
    try:
        proc.wait(400)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AssertionError(f"the rerun hung:\n{tail(project.log('rerun'))}") from None
    assert proc.returncode == 0, tail(project.log("rerun"))
    return project.log("rerun")


def _start_held_run(project: DagsterProject, standin: HoldingStandIn) -> subprocess.Popen:
    standin.app.hold("before")
    runner = start_runner(project, "--parallel", str(POOL_LIMIT), log_name="first")
    try:
        wait_for(
            lambda: _all_slots_taken(project) if runner.poll() is None else "exited",
            timeout=300,
            interval=0.5,
            what="four batch runs to hold the four image_api slots",
        )
    except AssertionError as exc:
        _kill_group(runner)
        raise AssertionError(f"{exc}\n{tail(project.log('first'))}") from None
    assert runner.poll() is None, tail(project.log("first"))
    return runner


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _failure_message(instance, run_id: str) -> str:
    [event] = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    return event.message


def test_a_rerun_after_sigkill_fails_the_dead_runs_and_completes(project, standin, redis_server):
    runner = _start_held_run(project, standin)
    _kill_group(runner)
    with project.instance() as instance:
        dead = _started_batch_runs(instance)
        assert len(dead) == POOL_LIMIT
        assert sum(dagster_internals.pool_slots_held(instance, IMAGE_API_POOL).values()) == POOL_LIMIT

    # The killed runs' Redis locks would expire on their own; a fresh Redis keeps the test about the pool.
    redis_server.restart(down_s=0)
    standin.app.release()
    rerun = _rerun(project, "--parallel", str(POOL_LIMIT))
    assert f"{BATCHES}/{BATCHES} batches done, 0 failed" in rerun

    with project.instance() as instance:
        for run in dead:
            after = instance.get_run_by_id(run.run_id)
            assert after.status == DagsterRunStatus.FAILURE
            message = _failure_message(instance, run.run_id)
            assert f"its worker process (pid {run.tags[WORKER_PID_TAG]}) is gone" in message, message
        assert runs_of(instance, "product_images_job", UNFINISHED) == []
        assert len(runs_of(instance, "product_images_job", [DagsterRunStatus.SUCCESS])) == BATCHES
        assert dagster_internals.pool_slots_held(instance, IMAGE_API_POOL) == {}
    stored = sorted(p.stem for p in (project.root / "data" / "store" / "images").glob("*.jpg"))
    assert stored == [f"PROD-{i:06d}" for i in range(1, BATCHES * PER_BATCH + 1)]


@pytest.mark.parametrize("how", ["sigterm-to-runner", "ctrl-c-to-group"])
def test_sigterm_or_ctrl_c_stops_the_runner_and_every_child(project, standin, how):
    runner = _start_held_run(project, standin)
    family = descendants(runner.pid) | {runner.pid}
    assert len(family) > POOL_LIMIT  # the runner and its four workers at least
    try:
        if how == "sigterm-to-runner":
            os.kill(runner.pid, signal.SIGTERM)
        else:
            os.killpg(runner.pid, signal.SIGINT)
        # a bound, not a measurement: the runner gives its workers 5 s, then kills them
        wait_for(
            lambda: not any(alive(pid) for pid in family),
            timeout=15,
            interval=0.2,
            what="the runner and all its children to exit",
        )
    finally:
        _kill_group(runner)
    assert runner.returncode != 0
    log = project.log("first")
    assert "stopped by SIG" in log, tail(log)

    with project.instance() as instance:
        runs = [r for r in instance.get_runs() if r.tags.get(PARTITION_TAG)]
        assert len(runs) == POOL_LIMIT
        assert [r for r in runs if r.status in UNFINISHED] == []
        assert {r.status for r in runs} <= {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
        for run in runs:
            if run.status == DagsterRunStatus.FAILURE:
                assert _failure_message(instance, run.run_id), run.run_id
        assert dagster_internals.pool_slots_held(instance, IMAGE_API_POOL) == {}


def test_a_run_whose_dagster_cli_was_killed_is_failed_by_the_next_runner(project, standin, redis_server):
    """A run started by `dagster asset materialize` names no worker in its tags; its process, as its own
    engine events log it, is gone after the kill, and the runner fails it all the same."""
    standin.app.hold("before")
    cli = subprocess.Popen(
        [str(BIN / "dagster"), "asset", "materialize", *MODULE, "--select", "product_images"]
        + ["--partition", "batch-0001"],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def holding() -> dict[str, int] | None:
            with project.instance() as instance:
                return dagster_internals.pool_slots_held(instance, IMAGE_API_POOL) or None

        [run_id] = wait_for(holding, timeout=240, interval=0.5, what="the CLI's run to hold a slot")
    finally:
        _kill_group(cli)
    with project.instance() as instance:
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

    redis_server.restart(down_s=0)
    standin.app.release()
    _rerun(project, "--parallel", "2")
    with project.instance() as instance:
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
        assert "its worker process (pid " in _failure_message(instance, run_id)
        assert dagster_internals.pool_slots_held(instance, IMAGE_API_POOL) == {}


def test_descendants_sees_a_grandchild(tmp_path: Path):
    """The test's own process-tree reader finds children of children (what the stop test relies on)."""
    child = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        wait_for(lambda: descendants(child.pid), timeout=10, what="the grandchild to start")
        assert len(descendants(os.getpid()) & descendants(child.pid)) == 1
    finally:
        child.kill()
        child.wait()
