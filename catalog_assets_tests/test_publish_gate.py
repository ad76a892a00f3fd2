"""The publish gate: linked_catalog is published only when the latest execution of every blocking check on
image_manifest completed and passed, on the manifest there is now; a check that never ran, crashed or failed
keeps the published catalog as it was, also when linked_catalog is materialized on its own."""

import shutil

import pytest
from dagster import AssetCheckSeverity, AssetSelection, materialize

from catalog_assets.checks import ALL_CHECKS, BLOCKING_MANIFEST_CHECKS, MANIFEST_MATCHES_STORE
from catalog_assets.definitions import ALL_ASSETS
from catalog_assets_tests.check_support import (
    assert_failed,
    checks_by_name,
    generate_all,
    manifest_rows,
    publish,
    rot_bytes,
)
from catalog_assets_tests.conftest import Pipeline

LINKED = "catalog/linked_catalog.json"


@pytest.fixture
def published(pipeline: Pipeline, sample_products) -> Pipeline:
    """12 products in two batches, published with every check passing."""
    generate_all(pipeline, sample_products[:12], batch_size=6)
    result = publish(pipeline)
    assert result.success and all(c.passed for c in checks_by_name(result).values())
    return pipeline


def _image_checks_alone(pipeline: Pipeline):
    """The checks on image_manifest against the store as it is (`catalog-images check --select
    image_manifest`, or the UI's "Execute checks")."""
    return materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=AssetSelection.checks_for_assets("image_manifest"),
        instance=pipeline.instance,
        resources=pipeline.resources(),
        raise_on_error=False,
    )


def _without_checks(pipeline: Pipeline, selection: list[str]):
    """Assets materialized by a job whose definitions hold no checks at all."""
    return materialize(
        ALL_ASSETS,
        selection=selection,
        instance=pipeline.instance,
        resources=pipeline.resources(),
        raise_on_error=False,
    )


def _linked_alone_is_refused(pipeline: Pipeline, linked_before: bytes | None) -> str:
    """linked_catalog materialized on its own fails in the gate and leaves the published catalog as it was;
    returns the gate's message."""
    alone = pipeline._run(["linked_catalog"], None, {})
    assert not alone.success
    assert not alone.asset_materializations_for_node("linked_catalog")
    failures = [e.step_failure_data.error.message for e in alone.all_events if e.is_step_failure]
    assert len(failures) == 1 and "not publishing: blocking check(s)" in failures[0], failures
    assert (pipeline.store.get(LINKED) if linked_before is not None else None) == linked_before
    return failures[0]


def test_a_crashed_check_after_a_failure_does_not_open_the_gate(published: Pipeline, monkeypatch) -> None:
    """The store rots, the checks fail; a later run of the checks with a bad threshold setting must not
    count as a pass, so linked_catalog alone is still refused while the store is corrupt."""
    linked_before = published.store.get(LINKED)
    rot_bytes(published, manifest_rows(published)[3]["key"])
    assert not publish(published).success  # manifest_matches_store failed and blocked

    monkeypatch.setenv("CATALOG_CHECK_MIN_PIXEL_STDDEV", "oops")
    bad_setting = _image_checks_alone(published)
    monkeypatch.delenv("CATALOG_CHECK_MIN_PIXEL_STDDEV")

    message = _linked_alone_is_refused(published, linked_before)
    for name in BLOCKING_MANIFEST_CHECKS:
        assert f"{name} failed" in message
    # each check reported a failure naming the variable: a check that cannot judge does not pass
    evaluations = checks_by_name(bad_setting)
    assert set(evaluations) >= set(BLOCKING_MANIFEST_CHECKS)
    for evaluation in evaluations.values():
        assert_failed(evaluation, AssetCheckSeverity.ERROR, "threshold_setting")
        assert "CATALOG_CHECK_MIN_PIXEL_STDDEV='oops' is not a number" in evaluation.description


def test_a_check_whose_run_crashed_keeps_the_gate_closed(published: Pipeline) -> None:
    """A blocking check that raised (here: an object the store cannot read, a directory where the image
    file was) reported nothing; its record stays planned, and that is no pass."""
    linked_before = published.store.get(LINKED)
    key = manifest_rows(published)[5]["key"]
    (published.store_dir / key).unlink()
    (published.store_dir / key).mkdir()
    crashed = _image_checks_alone(published)
    assert not crashed.success
    assert not set(checks_by_name(crashed)) & set(BLOCKING_MANIFEST_CHECKS)  # the outcome checks reported
    message = _linked_alone_is_refused(published, linked_before)
    for name in BLOCKING_MANIFEST_CHECKS:
        assert f"{name} did not report: its run failed first" in message
    shutil.rmtree(published.store_dir / key)


def test_checks_never_run_keep_the_gate_closed(pipeline: Pipeline, sample_products) -> None:
    generate_all(pipeline, sample_products[:6], batch_size=6)
    result = _without_checks(pipeline, ["image_manifest", "linked_catalog"])
    assert result.asset_materializations_for_node("image_manifest")
    assert not result.success and not result.asset_materializations_for_node("linked_catalog")
    assert pipeline.store.head(LINKED) is None
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    for name in BLOCKING_MANIFEST_CHECKS:
        assert f"{name} never ran" in failure
    assert "rematerialize image_manifest with its checks" in failure


def test_a_pass_on_an_older_manifest_does_not_open_the_gate(published: Pipeline) -> None:
    """image_manifest rematerialized without its checks (the store rotted meanwhile): the passes recorded
    before judged another manifest."""
    linked_before = published.store.get(LINKED)
    rot_bytes(published, manifest_rows(published)[1]["key"])
    assert _without_checks(published, ["image_manifest"]).success
    message = _linked_alone_is_refused(published, linked_before)
    for name in BLOCKING_MANIFEST_CHECKS:
        assert f"{name} passed on an older image_manifest" in message
    # the checks run on the new manifest: the rot is found, and the gate stays closed for that reason
    assert not checks_by_name(_image_checks_alone(published))[MANIFEST_MATCHES_STORE].passed
    assert f"{MANIFEST_MATCHES_STORE} failed" in _linked_alone_is_refused(published, linked_before)


def test_after_the_store_is_repaired_the_checks_open_the_gate_again(published: Pipeline) -> None:
    key = manifest_rows(published)[2]["key"]
    good = published.store.get(key)
    rot_bytes(published, key)
    assert not publish(published).success
    published.store.put(key, good, content_type="image/jpeg")  # restored from a backup
    assert _image_checks_alone(published).success
    alone = published._run(["linked_catalog"], None, {})
    assert alone.success and alone.asset_materializations_for_node("linked_catalog")
