"""A run's worker counts as gone once its process has exited, even before anything reaps it: a worker
killed together with its parent waits as a zombie until init collects it, which some container inits do
late; meanwhile a rerun must still fail the dead run instead of waiting for it."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from catalog_assets import run_liveness


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def worker() -> Iterator[subprocess.Popen[bytes]]:
    """A process that exits when its stdin closes; the test reaps it only at the end."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _exit_unreaped(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while _state(proc.pid) != "Z":  # exited; nobody has waited for it
        assert time.monotonic() < deadline, "the worker did not exit"
        time.sleep(0.01)


def test_a_live_worker_is_not_gone_and_an_exited_unreaped_one_is(worker) -> None:
    start = run_liveness._process_start(worker.pid)  # noqa: SLF001
    assert start and not run_liveness._pid_is_gone(worker.pid, recorded_start=start)  # noqa: SLF001
    _exit_unreaped(worker)
    assert run_liveness._pid_is_gone(worker.pid, recorded_start=start)  # noqa: SLF001
    assert run_liveness._pid_is_gone(worker.pid, started_by=time.time() - 60)  # noqa: SLF001


def test_an_unfinished_run_whose_worker_exited_unreaped_is_failed(worker) -> None:
    tags = {
        run_liveness.WORKER_PID_TAG: str(worker.pid),
        run_liveness.WORKER_HOST_TAG: run_liveness.socket.gethostname(),
        run_liveness.WORKER_START_TAG: run_liveness._process_start(worker.pid) or "",  # noqa: SLF001
    }
    with DagsterInstance.ephemeral() as instance:
        run = instance.add_run(
            DagsterRun(
                job_name="product_images_job",
                run_id=str(uuid.uuid4()),
                status=DagsterRunStatus.STARTED,
                tags=tags,
            )
        )
        assert not run_liveness.fail_if_dead(instance, run, "checked")
        _exit_unreaped(worker)
        assert run_liveness.fail_if_dead(instance, run, "checked")
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
