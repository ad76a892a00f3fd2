"""The status report on a real materialization says only what is so: the call limit the batches ran with,
the assets the checks are on and their latest results, what made the stored images, one unit convention,
quarantine reasons as written with their product ids; plus date, run id, duration and counts per category."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance

from catalog_assets.cards import OFFLINE_MODEL
from catalog_assets.dagster_internals import latest_check_executions
from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets_tests.check_support import run_with_checks
from catalog_assets_tests.conftest import CountingGeneratorResource, Pipeline, write_catalog
from catalog_assets_tests.products import make_products

QUARANTINED = [
    {"id": "CON", "name": "Reserved"},  # reason quotes the id: 'CON'
    {"id": "prod-000001", "name": "Case twin"},  # reason quotes the first id: 'PROD-000001'
    {"id": "HTML-1", "name": "Price", "price": "<b>free</b>"},
]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """14 products in 3 batches (one product fails), 3 quarantined rows, batches run with 3 calls per
    product, then published twice with the checks; the report's configured generator is another one.
    Built once: every test below reads the same report."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp, DagsterInstance.ephemeral() as instance:
        for var in (
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "CATALOG_S3_BUCKET",
            "REDIS_URL",
            "CATALOG_STORE_DIR",
        ):
            mp.delenv(var, raising=False)
        mp.chdir(root)
        yield _publish(Pipeline(root, instance))


def _publish(pipeline: Pipeline):
    products = make_products(14)
    path = write_catalog(pipeline.root / "c.json", products + QUARANTINED)
    catalog = {"ops": {"product_catalog": {"config": {"path": str(path), "batch_size": 5}}}}
    catalog_run = run_with_checks(pipeline, ["product_catalog"], run_config=catalog)
    assert catalog_run.success
    pipeline.generator = CountingGeneratorResource(fail_ids=["PROD-000003"])
    limit = {"ops": {"product_images": {"config": {"max_calls_per_product": 3}}}}
    batch_runs = [run_with_checks(pipeline, ["product_images"], p, limit) for p in pipeline.partitions()]
    assert [r.success for r in batch_runs] == [False, True, True]
    # the next runs would use the API: the report must still say the stored images are offline cards
    pipeline.generator = OpenAIImageGeneratorResource(api_key="sk-not-used", model="gpt-image-2")
    first = run_with_checks(pipeline, ["image_manifest", "linked_catalog", "generation_report"])
    assert first.success
    publish = run_with_checks(pipeline, ["image_manifest", "linked_catalog", "generation_report"])
    assert publish.success
    report = pipeline.store.get("reports/generation_report.md").decode()
    return pipeline, products, catalog_run, [first, publish], batch_runs, report


def _item(report: str, label: str) -> str:
    match = re.search(rf"^- \*\*{re.escape(label)}\*\*: (.*)$", report, flags=re.MULTILINE)
    assert match, f"no '{label}' line in the report"
    return match.group(1)


def test_the_report_keeps_the_owners_structure(published) -> None:
    report = published[-1]
    headings = re.findall(r"^## (.*)$", report, flags=re.MULTILINE)
    assert headings == [
        "Overview",
        "Current Status",
        "Implementation Details",
        "Monitoring and Reporting",
        "Error Analysis",
        "Sample Images",
        "Next Steps / Recommendations",
    ]


def test_the_retry_policy_states_the_limit_the_batches_ran_with(published) -> None:
    policy = _item(published[-1], "Retry policy")
    assert "at most 3 calls per product per run" in policy
    assert "4 calls" not in published[-1]


def test_checks_are_named_on_the_assets_they_are_on(published) -> None:
    report = published[-1]
    line = next(text for text in report.splitlines() if text.startswith("- Asset checks"))
    assert "on `product_catalog`: `quarantine_rate`" in line
    assert "on `linked_catalog`: `linked_urls_resolve`" in line
    assert "on `image_manifest`: " in line and "`manifest_matches_store`" in line
    assert "product_images" not in line


def test_check_results_are_the_latest_from_the_instance(published) -> None:
    pipeline, _, catalog_run, publishes, _, report = published
    evaluations = [*catalog_run.get_asset_check_evaluations(), *publishes[-1].get_asset_check_evaluations()]
    assert len(evaluations) >= 9 - 1  # linked_urls_resolve may run after the report in the same run
    latest = {(e.asset_key.to_user_string(), e.check_name): e for e in evaluations}
    for (asset_name, name), evaluation in latest.items():
        result = "passed" if evaluation.passed else "failed"
        row = f"| {name} | {asset_name} | {result} | {evaluation.severity.value} |"
        assert row in report, row
    # the figures are real: 3 of 17 rows quarantined is over 5%, 1 of 14 products failed is over 2%
    assert "| quarantine_rate | product_catalog | failed | WARN |" in report
    assert "| overall_failure_rate | image_manifest | failed | ERROR |" in report
    assert "| linked_urls_resolve | linked_catalog | passed | ERROR |" in report
    assert "not run yet" not in report


def test_offline_renders_are_not_called_api_calls(published) -> None:
    report = published[-1]
    assert "No API call failed" not in report
    assert (
        "No image API calls: the offline renderer drew every image (14 renders); 1 render failed:" in report
    )
    assert _item(report, "Image API calls") == "0"
    assert _item(report, "Offline renders (no API call)") == "14"


def test_the_generator_comes_from_the_stored_rows(published) -> None:
    report = published[-1]
    made = f"13 by the offline renderer (`{OFFLINE_MODEL}`)"
    assert f"Stored images: {made}." in report
    assert _item(report, "Images in the store made by") == made
    assert _item(report, "Configured generator (next runs)") == "OpenAI Images API (`gpt-image-2`)"
    assert "generated with **OpenAI" not in report


def test_sizes_use_one_decimal_convention(published) -> None:
    pipeline, *_, report = published
    rows = json.loads(pipeline.store.get("manifests/latest.json"))["rows"]
    total = sum(r["bytes"] for r in rows)
    assert _item(report, "Total Size (MB)") == f"{total / 1e6:.2f}"
    assert _item(report, "Average Image Size") == f"{total / len(rows) / 1000:.1f} kB"
    assert not re.search(r"\b(KiB|MiB|KB)\b", report)


def test_quarantine_reasons_read_as_written_with_their_product_ids(published) -> None:
    report = published[-1]
    assert "&#x27;" not in report and "&quot;" not in report
    assert "| 15 | CON | id 'CON' is a reserved device name on Windows |" in report
    assert (
        "| 16 | prod-000001 | duplicate id (differs only in letter case from 'PROD-000001' at row 1) |"
        in report
    )
    assert "| 17 | HTML-1 | non-numeric price &lt;b&gt;free&lt;/b&gt; |" in report  # no raw HTML


def test_date_run_id_and_duration(published) -> None:
    pipeline, _, _, publishes, batch_runs, report = published
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert _item(report, "Date").startswith(today)
    assert _item(report, "Run").startswith(f"`{publishes[-1].run_id}` (generation_report)")
    records = [pipeline.instance.get_run_record_by_id(r.run_id) for r in batch_runs]
    first = datetime.fromtimestamp(min(r.start_time for r in records), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    last = datetime.fromtimestamp(max(r.end_time for r in records), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert _item(report, "Duration").startswith(f"the batches' latest runs (3) went from {first} to {last}: ")


def test_counts_per_category(published) -> None:
    _, products, *_, report = published
    expected = {}
    for p in products:
        row = expected.setdefault(p["category"], [0, 0, 0, 0])
        row[0] += 1
        row[1 if p["id"] != "PROD-000003" else 3] += 1
    for category, (n, images, fallback, failed) in expected.items():
        assert f"| {category} | {n} | {images} | {fallback} | {failed} |" in report


def test_latest_check_executions_reads_the_instance(published) -> None:
    """Pins the private event-log call that dagster_internals wraps: an upgrade that moves it fails here."""
    pipeline, _, catalog_run, publishes, _, _ = published
    keys = [
        AssetCheckKey(AssetKey("product_catalog"), "quarantine_rate"),
        AssetCheckKey(AssetKey("image_manifest"), "manifest_matches_store"),
        AssetCheckKey(AssetKey("image_manifest"), "no_such_check"),
    ]
    found = latest_check_executions(pipeline.instance, keys)
    quarantine, store, missing = (found[k] for k in keys)
    assert (quarantine.state, quarantine.severity, quarantine.run_id) == (
        "failed",
        "WARN",
        catalog_run.run_id,
    )
    assert (store.state, store.severity, store.run_id) == ("succeeded", "ERROR", publishes[-1].run_id)
    assert quarantine.description and quarantine.timestamp > 0
    assert missing.state == "never run" and missing.run_id is None
    # a check still planned in the caller's own run gives way to the one before it
    again = latest_check_executions(pipeline.instance, keys[1:2], running_run_id=publishes[-1].run_id)
    assert again[keys[1]].run_id == publishes[-1].run_id  # completed in that run: kept
