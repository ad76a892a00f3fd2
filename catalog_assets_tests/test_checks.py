"""The asset checks: all pass on a clean run; each fails, with its severity and an explanation, on the fault it
exists for; and a blocking check that fails at ERROR keeps the linked catalog from being published."""

import io
import itertools
import json
import random

import pytest
from dagster import AssetCheckSeverity, AssetSelection, materialize
from PIL import Image

from catalog_assets import imaging
from catalog_assets.cards import render_product_card
from catalog_assets.checks import (
    ALL_CHECKS,
    BATCH_FAILURE_RATE,
    CONTENT_POLICY_RATE,
    FALLBACK_RATE,
    IMAGE_FIGURES,
    IMAGE_VALIDITY,
    LINKED_URLS_RESOLVE,
    LINKED_VECTORS,
    MANIFEST_MATCHES_STORE,
    NEAR_DUPLICATE_IMAGES,
    OVERALL_FAILURE_RATE,
    QUARANTINE_RATE,
    REVIEW_REJECTION_RATE,
    stored_image_checks,
)
from catalog_assets.checks.outcome_rates import outcome_figures
from catalog_assets.checks.thresholds import CheckThresholds
from catalog_assets.definitions import ALL_ASSETS, defs
from catalog_assets.imaging import InvalidImage, inspect_image, near_duplicate_pairs
from catalog_assets_tests.check_support import (
    assert_failed,
    catalog,
    checks_by_name,
    flat_jpeg,
    generate_all,
    manifest_rows,
    plant_image,
    publish,
    reencoded,
    rot_bytes,
)
from catalog_assets_tests.conftest import CountingGeneratorResource, Pipeline, write_catalog

MANIFEST_CHECKS = {
    BATCH_FAILURE_RATE,
    OVERALL_FAILURE_RATE,
    FALLBACK_RATE,
    CONTENT_POLICY_RATE,
    IMAGE_VALIDITY,
    NEAR_DUPLICATE_IMAGES,
    MANIFEST_MATCHES_STORE,
    IMAGE_FIGURES,
    REVIEW_REJECTION_RATE,
}
BLOCKING = {IMAGE_VALIDITY, NEAR_DUPLICATE_IMAGES, MANIFEST_MATCHES_STORE}


@pytest.fixture
def published(pipeline: Pipeline, sample_products) -> Pipeline:
    """25 products in batches of 10, every batch generated offline, and published with all checks passing."""
    generate_all(pipeline, sample_products[:25], batch_size=10)
    result = publish(pipeline)
    assert result.success
    checks = checks_by_name(result)
    assert set(checks) == MANIFEST_CHECKS | {LINKED_URLS_RESOLVE, LINKED_VECTORS}
    assert all(c.passed for c in checks.values()), {
        n: c.description for n, c in checks.items() if not c.passed
    }
    # offline cards are placeholders: image_figures records their figures but does not judge them
    assert checks[IMAGE_FIGURES].metadata["offline_cards_not_judged"].value > 0
    return pipeline


def _not_published(result, pipeline: Pipeline, linked_before: bytes | None) -> None:
    """The run failed on the blocking checks: linked_catalog (and the report after it) never ran."""
    assert not result.success
    assert not result.asset_materializations_for_node("linked_catalog")
    assert not result.asset_materializations_for_node("generation_report")
    assert result.asset_materializations_for_node("image_manifest")  # the manifest itself is recorded
    after = pipeline.store.get("catalog/linked_catalog.json") if linked_before is not None else None
    assert after == linked_before  # the published catalog was left as it was
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "blocking asset check" in failure.step_failure_data.error.message


# -- every check on a clean run ----------------------------------------------------------------------------


def test_clean_run_passes_every_check_with_explained_figures(published: Pipeline) -> None:
    result = publish(published)
    checks = checks_by_name(result)
    for name, evaluation in checks.items():
        assert evaluation.passed and evaluation.description, name
        assert "explanation" in evaluation.metadata, name
    assert checks[NEAR_DUPLICATE_IMAGES].metadata["closest_pair_bits"].value > 16  # distinct cards: ~40+
    assert checks[NEAR_DUPLICATE_IMAGES].metadata["threshold"].value == 16
    assert checks[NEAR_DUPLICATE_IMAGES].metadata["threshold_setting"].value == (
        "CATALOG_CHECK_NEAR_DUPLICATE_MAX_BITS"
    )
    assert checks[IMAGE_VALIDITY].metadata["images_checked"].value == 25
    assert checks[BATCH_FAILURE_RATE].metadata["batches_checked"].value == 3


def test_definitions_register_the_checks_and_blocking_ones_gate_the_linked_catalog() -> None:
    specs = {spec.name: spec for checks in ALL_CHECKS for spec in checks.check_specs}
    assert set(specs) == MANIFEST_CHECKS | {LINKED_URLS_RESOLVE, LINKED_VECTORS, QUARANTINE_RATE}
    assert {name for name, spec in specs.items() if spec.blocking} == BLOCKING
    assert {specs[n].asset_key.to_user_string() for n in BLOCKING} == {"image_manifest"}
    # the checks name their assets by key: each key must be one of the assets
    assert {spec.asset_key for spec in specs.values()} <= {key for a in ALL_ASSETS for key in a.keys}
    publish_job = defs.resolve_job_def("publish_job")
    selected = {key.name for key in publish_job.asset_layer.asset_graph.asset_check_keys}
    # the publish path runs them, so they can block
    assert selected >= BLOCKING | {LINKED_URLS_RESOLVE, LINKED_VECTORS}


# -- catalog quarantine ------------------------------------------------------------------------------------


def test_quarantine_rate_warns_above_its_threshold(pipeline: Pipeline, sample_products, monkeypatch) -> None:
    bad = [{"id": f"../x{i}", "name": "bad"} for i in range(2)] + [{"id": "OK-1", "price": "free"}]
    path = write_catalog(pipeline.root / "c.json", sample_products[:17] + bad)  # 3 of 20 rows: 15 %
    result = catalog(pipeline, path)
    assert result.success  # not blocking: quarantined rows are simply left out
    check = checks_by_name(result)[QUARANTINE_RATE]
    assert_failed(check, AssetCheckSeverity.WARN, "quarantine_rate", "threshold", "reasons")
    assert check.metadata["quarantine_rate"].value == 0.15
    assert check.metadata["threshold_setting"].value == "CATALOG_CHECK_MAX_QUARANTINE_RATE"
    assert "path separator" in check.metadata["reasons"].value
    monkeypatch.setenv("CATALOG_CHECK_MAX_QUARANTINE_RATE", "0.2")
    assert checks_by_name(catalog(pipeline, path))[QUARANTINE_RATE].passed


# -- outcomes of the batches -------------------------------------------------------------------------------


def test_a_batch_with_injected_failures_fails_the_failure_rate_checks(
    pipeline: Pipeline, sample_products, monkeypatch
) -> None:
    assert catalog(pipeline, write_catalog(pipeline.root / "c.json", sample_products[:20]), 10).success
    pipeline.generator = CountingGeneratorResource(fail_ids=["PROD-000002", "PROD-000004", "PROD-000006"])
    assert not pipeline.images("batch-0000").success
    pipeline.generator = CountingGeneratorResource()
    assert pipeline.images("batch-0001").success
    result = publish(pipeline)
    checks = checks_by_name(result)
    batch = checks[BATCH_FAILURE_RATE]
    assert_failed(batch, AssetCheckSeverity.ERROR, "worst_batch_failure_rate", "threshold", "failing_batches")
    assert batch.metadata["worst_batch"].value == "batch-0000"
    assert batch.metadata["worst_batch_failure_rate"].value == 0.3
    assert "bad_request 3" in batch.metadata["failing_batches"].value
    overall = checks[OVERALL_FAILURE_RATE]
    assert_failed(overall, AssetCheckSeverity.ERROR, "failure_rate", "threshold")
    assert overall.metadata["failure_rate"].value == 0.15
    # not blocking: failed products have no image, so the catalog published without their URLs is correct
    assert result.success and result.asset_materializations_for_node("linked_catalog")
    assert all(checks[name].passed for name in BLOCKING)

    monkeypatch.setenv("CATALOG_CHECK_MAX_BATCH_FAILURE_RATE", "0.5")
    monkeypatch.setenv("CATALOG_CHECK_MAX_FAILURE_RATE", "0.2")
    assert all(c.passed for c in checks_by_name(publish(pipeline)).values())


def test_content_policy_refusals_fail_the_fallback_and_content_policy_rates(
    pipeline: Pipeline, sample_products
) -> None:
    assert catalog(pipeline, write_catalog(pipeline.root / "c.json", sample_products[:20])).success
    refused = ["PROD-000003", "PROD-000008", "PROD-000011"]  # refused, refined, refused again: fallback
    pipeline.generator = CountingGeneratorResource(fail_ids=refused, fail_class="content_policy")
    assert pipeline.images("batch-0000").success
    checks = checks_by_name(publish(pipeline))
    fallback = checks[FALLBACK_RATE]
    assert_failed(fallback, AssetCheckSeverity.WARN, "fallback_rate", "threshold")
    assert fallback.metadata["fallback_rate"].value == 0.15
    policy = checks[CONTENT_POLICY_RATE]
    assert_failed(policy, AssetCheckSeverity.WARN, "content_policy_rate", "threshold", "sample")
    assert policy.metadata["content_policy_rate"].value == 0.15
    assert policy.metadata["sample"].value == ", ".join(refused)
    assert (
        checks[BATCH_FAILURE_RATE].passed and checks[OVERALL_FAILURE_RATE].passed
    )  # fallbacks are no failures


# -- the stored images (blocking) --------------------------------------------------------------------------


def test_changed_bytes_fail_store_consistency_and_block_publishing(published: Pipeline) -> None:
    linked_before = published.store.get("catalog/linked_catalog.json")
    row = manifest_rows(published)[4]
    rot_bytes(published, row["key"])  # same length, other bytes: the manifest still lists the object
    result = publish(published)
    check = checks_by_name(result)[MANIFEST_MATCHES_STORE]
    assert_failed(check, AssetCheckSeverity.ERROR, "problems", "mismatches")
    assert row["product_id"] in check.metadata["mismatches"].value
    assert "sha256" in check.metadata["mismatches"].value
    _not_published(result, published, linked_before)


def test_linked_catalog_alone_is_not_published_after_a_blocking_failure(published: Pipeline) -> None:
    linked_before = published.store.get("catalog/linked_catalog.json")
    rot_bytes(published, manifest_rows(published)[2]["key"])
    assert not publish(published).success
    alone = published._run(["linked_catalog"], None, {})  # outside the run that held the checks
    assert not alone.success
    failure = next(e for e in alone.all_events if e.is_step_failure)
    assert "blocking check(s) manifest_matches_store failed" in failure.step_failure_data.error.message
    assert published.store.get("catalog/linked_catalog.json") == linked_before


def test_a_flat_image_with_valid_records_fails_validity_and_blocks_publishing(published: Pipeline) -> None:
    linked_before = published.store.get("catalog/linked_catalog.json")
    plant_image(published, "PROD-000007", flat_jpeg())
    result = publish(published)
    checks = checks_by_name(result)
    assert checks[MANIFEST_MATCHES_STORE].passed  # its records are right; its picture is not
    check = checks[IMAGE_VALIDITY]
    assert_failed(check, AssetCheckSeverity.ERROR, "invalid_images", "invalid", "threshold")
    assert check.metadata["invalid_images"].value == 1
    assert "PROD-000007" in check.metadata["invalid"].value
    assert "single flat colour" in check.metadata["invalid"].value
    _not_published(result, published, linked_before)


def test_wrong_dimensions_fail_validity(published: Pipeline) -> None:
    other = published.store.get("images/PROD-000002.jpg")
    small = imaging.encode_jpeg(Image.open(io.BytesIO(other)).resize((512, 512)))
    plant_image(published, "PROD-000009", small)  # a real picture, but not the 1024x1024 recorded
    result = publish(published)
    check = checks_by_name(result)[IMAGE_VALIDITY]
    assert_failed(check, AssetCheckSeverity.ERROR, "invalid")
    assert "image is 512x512, manifest records 1024x1024" in check.metadata["invalid"].value
    assert not result.asset_materializations_for_node("linked_catalog")


def test_one_picture_for_two_products_fails_near_duplicates(published: Pipeline) -> None:
    linked_before = published.store.get("catalog/linked_catalog.json")
    # the generator "stuck": PROD-000012 got PROD-000005's picture, re-encoded (so other bytes and sha256)
    plant_image(published, "PROD-000012", reencoded(published.store.get("images/PROD-000005.jpg")))
    result = publish(published)
    checks = checks_by_name(result)
    assert checks[IMAGE_VALIDITY].passed and checks[MANIFEST_MATCHES_STORE].passed
    check = checks[NEAR_DUPLICATE_IMAGES]
    assert_failed(check, AssetCheckSeverity.ERROR, "near_duplicate_pairs", "pairs", "threshold")
    assert check.metadata["near_duplicate_pairs"].value == 1
    assert check.metadata["closest_pair_bits"].value <= 16
    assert "PROD-000005 | PROD-000012" in check.metadata["pairs"].value
    _not_published(result, published, linked_before)


def test_objects_deleted_after_publishing_fail_consistency_and_linked_urls(published: Pipeline) -> None:
    published.store.delete("images/PROD-000010.jpg")
    published.store.delete("thumbnails/PROD-000011.jpg")
    # the checks alone, as `dagster asset check` or the UI's "Execute checks" run them
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=AssetSelection.checks_for_assets("image_manifest", "linked_catalog"),
        instance=published.instance,
        resources=published.resources(),
        raise_on_error=False,
    )
    checks = checks_by_name(result)
    consistency = checks[MANIFEST_MATCHES_STORE]
    assert_failed(consistency, AssetCheckSeverity.ERROR, "missing_objects")
    assert consistency.metadata["missing_objects"].value == 1
    assert "thumbnail missing" in consistency.metadata["mismatches"].value
    linked = checks[LINKED_URLS_RESOLVE]
    assert_failed(linked, AssetCheckSeverity.ERROR, "dangling_urls", "dangling")
    assert linked.metadata["dangling_urls"].value == 1
    assert "PROD-000010" in linked.metadata["dangling"].value


def test_a_url_naming_another_products_existing_image_fails_linked_urls(published: Pipeline) -> None:
    """Two products' image entries swapped in the linked catalog (URL, key and sha256 together, as a mix-up of
    manifest rows would write them): every URL resolves to an existing object, but to the other product's."""
    linked = json.loads(published.store.get("catalog/linked_catalog.json"))
    by_id = {p["id"]: p for p in linked}
    by_id["PROD-000004"]["image"], by_id["PROD-000009"]["image"] = (
        by_id["PROD-000009"]["image"],
        by_id["PROD-000004"]["image"],
    )
    published.store.put_json("catalog/linked_catalog.json", linked)
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=AssetSelection.checks_for_assets("linked_catalog"),
        instance=published.instance,
        resources=published.resources(),
        raise_on_error=False,
    )
    check = checks_by_name(result)[LINKED_URLS_RESOLVE]
    assert_failed(check, AssetCheckSeverity.ERROR, "dangling_urls", "dangling")
    assert check.metadata["dangling_urls"].value == 2
    assert check.metadata["image_urls"].value == 25
    table = check.metadata["dangling"].value
    assert "names images/PROD-000009.jpg instead of images/PROD-000004.jpg" in table
    assert "names images/PROD-000004.jpg instead of images/PROD-000009.jpg" in table


def test_a_missing_manifest_fails_the_image_checks(pipeline: Pipeline) -> None:
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=AssetSelection.checks(stored_image_checks),
        instance=pipeline.instance,
        resources=pipeline.resources(),
        raise_on_error=False,
    )
    checks = checks_by_name(result)
    assert set(checks) == BLOCKING and not any(c.passed for c in checks.values())


def test_a_bad_threshold_setting_fails_every_check_naming_the_variable(
    published: Pipeline, monkeypatch
) -> None:
    linked_before = published.store.get("catalog/linked_catalog.json")
    monkeypatch.setenv("CATALOG_CHECK_MAX_FALLBACK_RATE", "lots")
    result = publish(published)
    checks = checks_by_name(result)
    assert set(checks) == MANIFEST_CHECKS  # each reported; linked_catalog and its check never ran
    for name, evaluation in checks.items():
        assert_failed(evaluation, AssetCheckSeverity.ERROR, "threshold_setting")
        assert "CATALOG_CHECK_MAX_FALLBACK_RATE='lots' is not a number" in evaluation.description, name
        assert evaluation.metadata["threshold_setting"].value == "CATALOG_CHECK_MAX_FALLBACK_RATE"
    _not_published(result, published, linked_before)


# -- pure helpers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, CheckThresholds()),
        ({"CATALOG_CHECK_MAX_FAILURE_RATE": "0.1"}, CheckThresholds(max_failure_rate=0.1)),
        ({"CATALOG_CHECK_NEAR_DUPLICATE_MAX_BITS": "20"}, CheckThresholds(near_duplicate_max_bits=20)),
        ({"CATALOG_CHECK_IMAGE_WORKERS": " 2 "}, CheckThresholds(image_workers=2)),
    ],
)
def test_thresholds_from_the_environment(env, expected) -> None:
    assert CheckThresholds.from_env(env) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CATALOG_CHECK_MAX_FAILURE_RATE": "1.5"}, "out of range (0..1)"),
        ({"CATALOG_CHECK_NEAR_DUPLICATE_MAX_BITS": "3.5"}, "is not an integer"),
        ({"CATALOG_CHECK_IMAGE_WORKERS": "0"}, "must be at least 1"),
        ({"CATALOG_CHECK_MIN_PIXEL_STDDEV": "-1"}, "out of range (>= 0)"),
    ],
)
def test_bad_threshold_values_are_refused(env, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CheckThresholds.from_env(env)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 300])
@pytest.mark.parametrize("max_bits", [0, 16, 120])
def test_near_duplicate_pairs_match_brute_force(n: int, max_bits: int) -> None:
    rng = random.Random(n * 1000 + max_bits)
    hashes = [(f"p{i:03d}", rng.getrandbits(256)) for i in range(n)]
    if n > 5:  # plant a twin and a near-twin
        hashes.append(("twin", hashes[1][1]))
        hashes.append(("near", hashes[4][1] ^ (1 << 7) ^ (1 << 190) ^ (1 << 255)))
    pairs, closest = near_duplicate_pairs(hashes, max_bits)
    every = [(a, b, imaging.hamming(x, y)) for (a, x), (b, y) in itertools.combinations(hashes, 2)]
    assert pairs == sorted((p for p in every if p[2] <= max_bits), key=lambda p: (p[2], p[0], p[1]))
    assert closest == (min(p[2] for p in every) if every else None)


def test_inspect_image_reads_size_flatness_and_hash(sample_products) -> None:
    card = imaging.encode_jpeg(render_product_card(sample_products[0]))
    facts = inspect_image(card)
    assert (facts.width, facts.height) == (1024, 1024) and facts.stddev > 4
    # the reduced decode hashes like a full one: a re-encoded copy is close, another product's card is not
    assert imaging.hamming(facts.dhash, inspect_image(reencoded(card)).dhash) <= 16
    other = inspect_image(imaging.encode_jpeg(render_product_card(sample_products[1])))
    assert imaging.hamming(facts.dhash, other.dhash) > 16
    png = io.BytesIO()
    render_product_card(sample_products[0], size=640).save(png, format="PNG")
    assert (inspect_image(png.getvalue()).width, inspect_image(png.getvalue()).height) == (640, 640)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not an image", "does not decode"),
        ("truncated", "does not decode"),
        (flat_jpeg(), "single flat colour"),
        (flat_jpeg(colour=(0, 0, 0)), "single flat colour"),
    ],
)
def test_inspect_image_refuses_what_is_no_picture(data, message, sample_products) -> None:
    if data == "truncated":
        card = imaging.encode_jpeg(render_product_card(sample_products[0]))
        data = card[: len(card) * 2 // 3]
    with pytest.raises(InvalidImage, match=message):
        inspect_image(data)


def test_outcome_figures_count_failures_fallbacks_and_refusals() -> None:
    outcomes = {
        "A": {
            "partition": "batch-0000",
            "outcome": "generated",
            "key": "images/A.jpg",
            "source": "generated",
        },
        "B": {"partition": "batch-0000", "outcome": "failed", "error_class": "transient", "errors_total": []},
        "C": {
            "partition": "batch-0001",
            "outcome": "skipped",
            "key": "images/C.jpg",
            "source": "fallback",
            "errors_total": ["content_policy", "content_policy"],
        },
        "D": {"partition": "batch-0001", "outcome": "refined", "key": "images/D.jpg", "source": "refined"},
    }
    index = {"partitions": ["batch-0000", "batch-0001", "batch-0002"]}
    figures = outcome_figures(index, outcomes)
    assert (figures.products, figures.failed, figures.with_image, figures.fallback) == (4, 1, 3, 1)
    assert figures.content_policy_ids == ["C", "D"]
    assert figures.batches_without_outcomes == ["batch-0002"]
    assert figures.failed_classes == {"batch-0000": {"transient": 1}}
    assert json.dumps({p: dict(c) for p, c in figures.by_batch.items()}, sort_keys=True) == json.dumps(
        {"batch-0000": {"failed": 1, "generated": 1}, "batch-0001": {"refined": 1, "skipped": 1}},
        sort_keys=True,
    )
