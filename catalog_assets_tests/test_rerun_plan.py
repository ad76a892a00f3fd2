"""A rerun of a complete catalog plans before launching: batches whose products are all stored with their
current fingerprint (thumbnails and variants too) get no run; a batch missing one image gets its run. The
publish run is left out when nothing it reads changed since the last one.
`catalog-images run` as a user types it, on the embedded defaults (offline renderer, local store)."""

from __future__ import annotations

import pytest

from catalog_assets.rerun_plan import up_to_date
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.variants import VariantSpec
from catalog_assets_tests.dagster_projects import tail
from catalog_assets_tests.runner_projects import runner_project

BATCHES = 3
PER_BATCH = 3


def _runs(project) -> dict[str, int]:
    with project.instance() as instance:
        counts: dict[str, int] = {}
        for run in instance.get_runs():
            counts[run.job_name] = counts.get(run.job_name, 0) + 1
        return counts


@pytest.mark.slow
def test_a_complete_catalog_reruns_no_batch_and_a_missing_image_reruns_only_its_batch(tmp_path):
    project = runner_project(tmp_path, BATCHES * PER_BATCH)
    assert project.materialize_catalog(batch_size=PER_BATCH).returncode == 0
    first = project.run("catalog-images", "run", "--parallel", "2")
    assert first.returncode == 0, tail(first.stderr)
    assert "batches up to date" not in first.stderr
    assert _runs(project)["product_images_job"] == BATCHES

    rerun = project.run("catalog-images", "run")
    assert rerun.returncode == 0, tail(rerun.stderr)
    assert f"{BATCHES} batches up to date" in rerun.stderr, tail(rerun.stderr)
    assert "0 batch partitions to materialize" in rerun.stderr
    assert f"summary: {BATCHES} batches (0 failed)" in rerun.stderr
    runs = _runs(project)
    assert runs["product_images_job"] == BATCHES, "no batch run was launched"
    assert runs["publish_job"] == 1, "nothing changed since the last publish: no publish run"
    assert "nothing changed since the last publish" in rerun.stderr

    # One image gone from the store: its batch runs (and redraws it), the other two stay up to date.
    (project.root / "data" / "store" / "images" / "PROD-000005.jpg").unlink()
    again = project.run("catalog-images", "run")
    assert again.returncode == 0, tail(again.stderr)
    assert f"{BATCHES - 1} batches up to date" in again.stderr, tail(again.stderr)
    assert "1 batch partitions to materialize" in again.stderr
    assert "1 images made" in again.stderr
    assert _runs(project)["product_images_job"] == BATCHES + 1
    assert _runs(project)["publish_job"] == 2, "a batch ran: published again"
    assert (project.root / "data" / "store" / "images" / "PROD-000005.jpg").exists()

    # Other delivery variants than the stored ones: every batch has work, so the plan launches every batch.
    with project.instance() as instance:
        store = LocalImageStore(project.root / "data" / "store")
        batches = [f"batch-{i:04d}" for i in range(BATCHES)]
        generator = OfflineCardGenerator()
        assert up_to_date(instance, store, generator, batches, VariantSpec()) == batches
        assert up_to_date(instance, store, generator, batches, VariantSpec.of(["webp", "avif"], [320])) == []
