"""The asset graph end to end on embedded defaults: skip-if-stored, failure isolation, manifest, links."""

from __future__ import annotations

import json

from dagster import AssetKey

from catalog_assets.cards import OFFLINE_MODEL
from catalog_assets.resources.store import sha256_hex
from catalog_assets.review import offline_description
from catalog_assets_tests.conftest import RENDERS, CountingGeneratorResource, write_catalog


def _step_failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            return event.step_failure_data.error.message
    return ""


def test_definitions_load():
    from catalog_assets.definitions import defs

    repo = defs.get_repository_def()
    names = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert names == {
        "product_catalog",
        "product_images",
        "image_reviews",
        "image_manifest",
        "linked_catalog",
        "generation_report",
    }


def test_catalog_registers_batches_and_quarantines(pipeline, sample_products):
    bad = [
        {"id": "../etc/passwd", "name": "x"},
        {"id": "PROD-000001", "name": "dup"},
        {"id": "OK-1", "price": "free"},
    ]
    path = write_catalog(pipeline.root / "c.json", sample_products + bad)
    result = pipeline.catalog(path, batch_size=30)
    assert result.success
    assert pipeline.partitions() == ["batch-0000", "batch-0001", "batch-0002"]
    meta = result.asset_materializations_for_node("product_catalog")[0].metadata
    assert meta["products"].value == len(sample_products) == 72
    assert meta["quarantined"].value == 3
    assert "path separator" in meta["quarantined_rows"].value
    assert "duplicate id" in meta["quarantined_rows"].value
    # nothing was written outside the store root
    assert not (pipeline.root / "etc").exists()


def test_a_second_materialization_renders_nothing(pipeline, sample_products):
    pipeline.catalog(write_catalog(pipeline.root / "c.json", sample_products[:20]))
    first = pipeline.images("batch-0000")
    assert first.success
    assert sum(RENDERS.values()) == 20
    meta = first.asset_materializations_for_node("product_images")[0].metadata
    assert meta["count_generated"].value == 20
    RENDERS.clear()
    second = pipeline.images("batch-0000")
    assert second.success
    assert sum(RENDERS.values()) == 0
    meta = second.asset_materializations_for_node("product_images")[0].metadata
    assert meta["count_skipped"].value == 20 and meta["count_generated"].value == 0


def test_a_failed_product_fails_the_partition_and_only_it_is_redone(pipeline, sample_products):
    pipeline.catalog(write_catalog(pipeline.root / "c.json", sample_products[:12]))
    pipeline.generator = CountingGeneratorResource(fail_ids=["PROD-000005"])
    failed = pipeline.images("batch-0000")
    assert not failed.success
    assert "1 of 12 products failed (bad_request)" in _step_failure(failed)
    # the successes are stored, the failed product is not
    stored = {o.key for o in pipeline.store.list("images/")}
    assert len(stored) == 11 and "images/PROD-000005.jpg" not in stored
    assert not pipeline.instance.get_latest_materialization_event(AssetKey("product_images"))
    assert RENDERS["PROD-000005"] == 1  # bad_request: no retry
    RENDERS.clear()
    pipeline.generator = CountingGeneratorResource()
    rerun = pipeline.images("batch-0000")
    assert rerun.success
    assert dict(RENDERS) == {"PROD-000005": 1}


def test_manifest_matches_stored_bytes_and_links_never_dangle(pipeline, sample_products):
    pipeline.catalog(write_catalog(pipeline.root / "c.json", sample_products[:25]), batch_size=10)
    pipeline.generator = CountingGeneratorResource(fail_ids=["PROD-000003"])
    results = [pipeline.images(p) for p in pipeline.partitions()]
    assert [r.success for r in results] == [False, True, True]
    assert pipeline.publish().success
    manifest = json.loads(pipeline.store.get("manifests/latest.json"))
    rows = manifest["rows"]
    assert len(rows) == 24
    for row in rows:
        data = pipeline.store.get(row["key"])
        assert sha256_hex(data) == row["sha256"]
        assert len(data) == row["bytes"]
        assert row["content_type"] == "image/jpeg" and data[:3] == b"\xff\xd8\xff"
        assert row["width"] == row["height"] == 1024
        assert row["source"] == "generated" and row["model"] == OFFLINE_MODEL
        assert row["prompt_fingerprint"] and row["generated_at"]
    assert pipeline.store.list("manifests/")  # timestamped json + parquet beside latest.json
    names = sorted(o.key for o in pipeline.store.list("manifests/"))
    assert any(n.endswith(".parquet") for n in names) and "manifests/latest.json" in names
    linked = json.loads(pipeline.store.get("catalog/linked_catalog.json"))
    assert len(linked) == 25
    by_url = {row["url"]: row for row in rows}
    for product in linked:
        url = product["image"]["url"]
        if product["id"] == "PROD-000003":
            assert url is None and product["image"]["alt_text"] is None
        else:
            assert url in by_url and by_url[url]["product_id"] == product["id"]
            # the alt text describes the stored picture: here an offline product card
            assert product["image"]["alt_text"] == offline_description(product, "card")[0]
    report = pipeline.store.get("reports/generation_report.md").decode()
    for heading in (
        "## Overview",
        "## Current Status",
        "## Implementation Details",
        "## Monitoring and Reporting",
        "## Error Analysis",
        "## Sample Images",
        "## Next Steps / Recommendations",
    ):
        assert heading in report
    assert "**Failed Images**: 1" in report
    assert "--partition batch-0000" in report  # the recommendation names the failed batch
    assert pipeline.store.get("reports/contact_sheet.png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_catalog_fails_clearly_and_writes_nothing(pipeline):
    result = pipeline.catalog(pipeline.root / "missing.json")
    assert not result.success
    assert "missing.json: catalog file not found" in _step_failure(result)
    assert not pipeline.store_dir.exists()


def test_the_offline_renderer_says_what_it_drew_not_api_calls(pipeline):
    products = [{"id": f"CARD-{n}", "name": f"Linen Napkin {n}", "category": "Home"} for n in range(5)]
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", products)).success
    result = pipeline.images("batch-0000")
    assert result.success
    messages = [e.user_message for e in pipeline.instance.all_logs(result.run_id)]
    summary = [m for m in messages if m.startswith("batch-0000: ") and "already stored" in m]
    assert len(summary) == 1, messages
    assert "5 product cards drawn offline (no API calls), 0 already stored" in summary[0]
    assert "API calls," not in summary[0]
    assert result.asset_materializations_for_node("product_images")[0].metadata["api_calls"].value == 0
