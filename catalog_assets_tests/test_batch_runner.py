"""`catalog-images run --mode batch` as a user types it, against the stand-in over HTTP: every partition
submitted, the wait with its progress lines, each finished batch ingested once, the publish; stopping while
waiting leaves the batches in flight and a rerun submits nothing new."""

from __future__ import annotations

import json
import os
import re
import signal
from collections import Counter
from contextlib import suppress
from pathlib import Path
from types import SimpleNamespace

import pytest
from dagster import RunsFilter

from catalog_assets import dagster_internals
from catalog_assets.batch_mode import read_job
from catalog_assets.batch_runner import BatchProgress, resolve_mode
from catalog_assets.costs import price_per_image
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.standin import StandInProcess
from catalog_assets_tests.dagster_projects import DagsterProject, tail, wait_for
from catalog_assets_tests.runner_projects import runner_project, start_runner
from catalog_assets_tests.support import standin_fixtures

KEY = "sk-test-standin-batch-runner-3c9e"
SIZE = "256x256"
MADE = {"generated", "refined", "fallback"}

standin_process, standin = standin_fixtures(KEY)


def batch_project(root: Path, count: int, standin: StandInProcess) -> DagsterProject:
    return runner_project(
        root,
        count,
        env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": standin.base_url, "CATALOG_IMAGE_SIZE": SIZE},
    )


def store_of(project: DagsterProject) -> LocalImageStore:
    return LocalImageStore(project.root / "data" / "store")


def outcomes(project: DagsterProject) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for obj in store_of(project).list("state/outcomes/"):
        rows |= {r["product_id"]: r for r in store_of(project).get_json(obj.key)["results"]}
    return rows


def resume_in_flight(project: DagsterProject, standin: StandInProcess, images: int):
    """A rerun of `catalog-images run --mode batch` while the one batch is in flight: it submits nothing,
    ingests that batch and bills `images` batch images in all, no sync image. Its output."""
    again = project.run("catalog-images", "run", "--mode", "batch", "--poll-interval", "0.2")
    assert again.returncode == 0, tail(again.stderr)
    assert "0 to submit, 1 with a batch already in flight" in again.stderr
    stats = standin.stats()
    assert stats["endpoints"]["batches.create"] == stats["endpoints"]["files.create"] == 1
    assert stats["images_billed_batch"] == images and stats["images_billed_sync"] == 0
    return again


@pytest.mark.slow
def test_500_products_through_the_batch_api_with_refusals(tmp_path: Path, standin: StandInProcess) -> None:
    """Five partitions through `catalog-images run --mode batch`: content-policy refusals come back refined,
    transient ones are resubmitted, each product is billed once at the Batch API price, the report says so."""
    standin.configure(
        batch_delay_s=0.05,
        batch_line_delay_s=0.002,
        batch_faults={"moderation_blocked": 0.03, "content_policy_violation": 0.02, "server_error": 0.03},
        first_attempt_only=True,  # a refused line's next round passes: every product is billed exactly once
    )
    project = batch_project(tmp_path, 500, standin)
    done = project.run(
        "catalog-images", "run", "--mode", "batch", "--parallel", "2", "--poll-interval", "0.2"
    )
    assert done.returncode == 0, tail(done.stderr)
    out = done.stderr

    rows = outcomes(project)
    assert len(rows) == 500 and set(Counter(r["outcome"] for r in rows.values())) <= MADE
    refined = [pid for pid, r in rows.items() if r["outcome"] == "refined"]
    stats = standin.stats()
    faults = stats["batch_faults_injected"]
    assert len(refined) == faults["moderation_blocked"] + faults["content_policy_violation"] > 0
    assert stats["images_billed_sync"] == 0 and stats["images_billed_batch"] == 500
    assert set(map(json.dumps, stats["billed_products"].values())) == {json.dumps({"sync": 0, "batch": 1})}
    # one batch per partition, then one per partition that had refused lines; each ingested once
    partitions = [f"batch-{n:04d}" for n in range(5)]
    batches = [b for p in partitions for b in read_job(store_of(project), p)["batches"]]
    assert len(set(batches)) == len(batches) == stats["endpoints"]["batches.create"] > 5
    assert stats["endpoints"]["files.create"] == len(batches)
    assert all(read_job(store_of(project), p)["status"] == "done" for p in partitions)
    ingests = re.findall(r"batch (batch-\d{4}): batch (batch_\w+) completed, ingesting", out)
    assert sorted(b for _, b in ingests) == sorted(batches)
    assert all(f"images/{pid}.jpg" in {o.key for o in store_of(project).list("images/")} for pid in rows)

    # the progress lines: batches submitted / in progress / ingested, images stored, an ETA from the counts
    progress = re.findall(
        r"batches: (\d+) submitted, (\d+) in progress, (\d+) ingested; partitions (\d)/5 complete, 0 failed; "
        r"(\d+) images stored; provider (\d+)/(\d+) lines done, ETA",
        out,
    )
    assert progress, tail(out)
    assert progress[-1][:5] == (str(len(batches)), "0", str(len(batches)), "5", "500")
    assert "summary: 5 batches (0 failed)" in out and "500 images made, 0 already stored" in out

    report = (project.root / "data" / "store" / "reports" / "generation_report.md").read_text()
    sync_estimate = 500 * price_per_image("gpt-image-2", "medium", SIZE)
    cost = re.search(r"\*\*Estimated cost\*\*: \$([\d.,]+) \(Batch API prices, 0\.5 × the synchronous estimate of "
                     r"\$([\d.,]+)\)", report)  # fmt: skip
    assert cost, report
    assert float(cost[1]) == pytest.approx(0.5 * sync_estimate, abs=0.01)
    assert float(cost[2]) == pytest.approx(sync_estimate, abs=0.01)
    assert "**Generation mode**: batch (OpenAI Batch API) for 5 of 5 batches" in report


@pytest.mark.resilience
def test_a_run_stopped_while_waiting_is_resumed_by_a_rerun_that_submits_nothing(
    tmp_path: Path, standin: StandInProcess
) -> None:
    standin.configure(batch_delay_s=0.05, batch_hold=True)  # in flight until released below
    project = batch_project(tmp_path, 12, standin)
    runner = start_runner(project, "--mode", "batch", "--poll-interval", "0.2")
    log = project.root / "runner.log"
    wait_for(lambda: "batches: 1 submitted, 1 in progress" in log.read_text(), timeout=120, what="submitted")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 128 + signal.SIGTERM, tail(log.read_text())
    first = log.read_text()
    assert "stopping: 1 batch(es) stay in flight with the provider (batch-0000)" in first
    job = read_job(store_of(project), "batch-0000")
    assert job["status"] == "submitted" and standin.stats()["endpoints"]["batches.create"] == 1
    assert "publishing" not in first

    standin.configure(batch_hold=False)
    again = resume_in_flight(project, standin, 12)
    assert re.findall(r"batch batch-0000: batch (batch_\w+) completed, ingesting", again.stderr) == [
        job["batch_id"]
    ]
    assert {r["outcome"] for r in outcomes(project).values()} == {"generated"}
    assert "summary: 1 batch (0 failed)" in again.stderr and "report: " in again.stderr
    with project.instance() as instance:  # keyed as the sensor keys it: the daemon requests no second ingest
        (ingest,) = instance.get_runs(RunsFilter(tags={dagster_internals.RUN_KEY_TAG: job["batch_id"]}))
        assert ingest.tags[dagster_internals.SENSOR_NAME_TAG] == "batch_images_sensor"
        assert ingest.tags["dagster/partition"] == "batch-0000" and ingest.job_name == "product_images_job"


@pytest.mark.resilience
def test_a_run_killed_half_way_through_an_ingest_is_finished_by_a_rerun(
    tmp_path: Path, standin: StandInProcess
) -> None:
    """SIGKILL of `catalog-images run --mode batch` and every process under it while its ingest has stored
    5 of the batch's 10 images (the stand-in stalls the output file after 5 lines): the rerun submits
    nothing, stores the other 5 and bills no product twice."""
    standin.configure(file_content_stall_after_lines=5)
    project = batch_project(tmp_path, 10, standin)
    runner = start_runner(project, "--mode", "batch", "--poll-interval", "0.2")
    images = project.root / "data" / "store" / "images"
    log = project.root / "runner.log"
    try:
        wait_for(
            lambda: len(list(images.glob("*.jpg"))) >= 5 or runner.poll() is not None,
            timeout=180,
            what="the ingest to store 5 images",
        )
        assert runner.poll() is None, tail(log.read_text())
    finally:
        with suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(30)
    assert len(list(images.glob("*.jpg"))) == 5
    job = read_job(store_of(project), "batch-0000")
    assert job["status"] == "submitted"  # killed before the ingest was recorded
    assert "ingesting" in log.read_text() and "publishing" not in log.read_text()

    standin.configure(file_content_stall_after_lines=None)
    resume_in_flight(project, standin, 10)
    stats = standin.stats()
    assert len(stats["billed_products"]) == 10
    assert all(billed == {"sync": 0, "batch": 1} for billed in stats["billed_products"].values())
    assert sorted(p.stem for p in images.glob("*.jpg")) == sorted(outcomes(project))
    assert len(outcomes(project)) == 10
    assert {r["outcome"] for r in outcomes(project).values()} == {"generated"}


def test_batch_mode_without_an_api_key_is_refused_in_one_line(tmp_path: Path) -> None:
    project = runner_project(tmp_path, 12, env={"CATALOG_GENERATION_MODE": "batch"})
    refused = project.run("catalog-images", "run")
    assert refused.returncode == 2, tail(refused.stderr)
    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "OPENAI_API_KEY is not set" in errors[0], refused.stderr
    assert "--mode sync" in errors[0]
    with project.instance() as instance:
        assert instance.get_runs() == []  # no catalog, no batch was submitted


@pytest.mark.parametrize(
    ("flag", "env", "mode"),
    [(None, {}, "sync"), (None, {"CATALOG_GENERATION_MODE": " Batch "}, "batch"),
     ("sync", {"CATALOG_GENERATION_MODE": "batch"}, "sync"), ("batch", {}, "batch")],
)  # fmt: skip
def test_the_flag_wins_over_the_setting(flag: str | None, env: dict[str, str], mode: str) -> None:
    assert resolve_mode(flag, env) == mode


def test_a_bad_mode_names_where_it_came_from() -> None:
    with pytest.raises(ValueError, match="CATALOG_GENERATION_MODE must be 'sync' or 'batch', not 'fast'"):
        resolve_mode(None, {"CATALOG_GENERATION_MODE": "fast"})


def test_the_eta_comes_from_the_provider_counts() -> None:
    progress = BatchProgress()
    assert progress.eta(0.0).startswith("ETA unknown")
    progress.observe(
        "b1", SimpleNamespace(request_counts=SimpleNamespace(completed=10, failed=0, total=100)), 0.0
    )
    progress.observe(
        "b2", SimpleNamespace(request_counts=SimpleNamespace(completed=0, failed=0, total=100)), 0.0
    )
    assert progress.eta(5.0).startswith("ETA unknown")  # nothing processed since the first poll
    progress.observe(
        "b1", SimpleNamespace(request_counts=SimpleNamespace(completed=50, failed=10, total=100)), 10.0
    )
    # 50 lines in 10 s, 140 lines left: 28 s
    assert (progress.processed, progress.eta(10.0)) == (60, "ETA 28s")
