"""`catalog-images run` as a user types it: bad arguments fail in one line, the publish shows progress, the
run ends with a summary, and its runs are the named jobs the UI's Jobs page lists."""

from __future__ import annotations

import json
import re
import urllib.request

from dagster import DagsterRunStatus

from catalog_assets import dagster_internals
from catalog_assets.checks import ALL_CHECKS
from catalog_assets.runner import CODE_LOCATION
from catalog_assets_tests.conftest import PROJECT
from catalog_assets_tests.dagster_projects import free_port, tail, wait_for
from catalog_assets_tests.runner_projects import runner_project

JOBS = ("catalog_job", "product_images_job", "publish_job")


def test_unknown_partitions_and_a_missing_catalog_fail_in_one_line(tmp_path):
    project = runner_project(tmp_path, 12)
    unknown = project.run("catalog-images", "run", "--partitions", "batch-0000", "batch-0099", "batch-7")
    assert unknown.returncode == 2, tail(unknown.stderr)
    assert "no batch partition named batch-0099, batch-7; this catalog has 1: batch-0000" in unknown.stderr
    with project.instance() as instance:
        # nothing but the catalog ran: no batch was materialized for the known key either
        assert [r.job_name for r in instance.get_runs()] == ["catalog_job"]

    missing = project.run("catalog-images", "run", "--catalog", "nope.json")
    assert missing.returncode == 2
    errors = [line for line in missing.stderr.splitlines() if line.strip()]
    assert errors == [errors[0]] and errors[0].endswith("ERROR nope.json: catalog file not found"), (
        missing.stderr
    )

    (project.root / "bad.json").write_text("{not json")
    bad = project.run("catalog-images", "run", "--catalog", "bad.json")
    assert bad.returncode == 2
    assert "bad.json: expected a JSON array of product objects" in bad.stderr
    assert "Traceback" not in bad.stderr and "Stack Trace" not in bad.stderr, tail(bad.stderr)


def test_a_run_shows_publish_progress_ends_with_a_summary_and_lists_under_its_jobs(tmp_path):
    project = runner_project(tmp_path, 12)
    first = project.run("catalog-images", "run", "--parallel", "2")
    assert first.returncode == 0, tail(first.stderr)
    out = first.stderr
    # the publish, step by step, checks included
    for line in (
        "publish: image_manifest written",
        "publish: check image_manifest:manifest_matches_store passed",
        "publish: check linked_catalog:linked_urls_resolve passed",
        "publish: generation_report written",
    ):
        assert line in out, tail(out)
    assert "summary: 1 batch (0 failed)" in out
    assert "12 images made, 0 already stored, 0 products failed" in out
    publish_checks = [
        key
        for checks in ALL_CHECKS
        for key in checks.check_keys
        if key.asset_key.to_user_string() in ("image_manifest", "linked_catalog")
    ]
    assert f"checks: all {len(publish_checks)} passed" in out
    report = project.root / "data" / "store" / "reports" / "generation_report.md"
    where = re.search(r"report: (\S+)\n", out)
    assert where, tail(out)
    assert (project.root / where[1].removeprefix("file://")).resolve() == report.resolve()

    # The rerun of the complete catalog: its catalog run, then no batch run and no publish run (nothing changed).
    again = project.run("catalog-images", "run", "--parallel", "2")
    assert again.returncode == 0, tail(again.stderr)
    assert "1 batch up to date" in again.stderr, tail(again.stderr)
    assert "nothing changed since the last publish" in again.stderr

    with project.instance() as instance:
        runs = instance.get_runs()
        assert sorted(r.job_name for r in runs) == sorted([*JOBS, "catalog_job"])
        assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
        label = dagster_internals.repository_label(CODE_LOCATION)
        assert {r.tags[dagster_internals.REPOSITORY_LABEL_TAG] for r in runs} == {label}

    # The Jobs page of the UI, loaded from the project's workspace.yaml: each job lists its runs.
    port = free_port()
    project.start(
        "dagster-webserver", "-w", str(PROJECT / "workspace.yaml"), "-p", str(port), log_name="webserver"
    )
    try:
        query = (
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } "
            "jobs { name runs { runId status } } } } } }"
        )

        def jobs_page() -> dict | None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=json.dumps({"query": query}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    return json.load(response)["data"]["repositoriesOrError"]
            except OSError:
                return None

        repositories = wait_for(jobs_page, timeout=120, interval=1, what="the webserver to answer")
    finally:
        project.stop_all()
    [repository] = repositories["nodes"]
    assert repository["location"]["name"] == CODE_LOCATION
    runs_by_job = {job["name"]: job["runs"] for job in repository["jobs"]}
    for job in JOBS:
        expected = ["SUCCESS", "SUCCESS"] if job == "catalog_job" else ["SUCCESS"]
        assert [run["status"] for run in runs_by_job[job]] == expected, (job, runs_by_job)


def test_a_failed_blocking_check_is_named_and_stops_the_publish(tmp_path):
    # every pair of product cards counts as near-duplicates at 64 differing bits of 64
    project = runner_project(tmp_path, 6, env={"CATALOG_CHECK_NEAR_DUPLICATE_MAX_BITS": "64"})
    result = project.run("catalog-images", "run", "--parallel", "1")
    assert result.returncode == 1, tail(result.stderr)
    out = result.stderr
    assert "publish: check image_manifest:near_duplicate_images FAILED (ERROR)" in out, tail(out)
    assert re.search(r"checks: 1 of \d+ FAILED: image_manifest:near_duplicate_images\n", out), tail(out)
    assert "not published: blocking checks failed (image_manifest:near_duplicate_images)" in out
    assert "6 images made, 0 already stored, 0 products failed" in out
    assert not (project.root / "data" / "store" / "catalog" / "linked_catalog.json").exists()
