"""image_manifest writes a new timestamped manifest only when its rows changed, and the linked catalog
carries each product's image and thumbnail URL."""

from __future__ import annotations

import json
import time

from catalog_assets_tests.conftest import write_catalog
from catalog_assets_tests.products import make_products


def _next_second() -> None:
    """Manifest names carry the UTC second: start the next run in a new one, so a rewrite would show."""
    now = int(time.time())
    while int(time.time()) == now:
        time.sleep(0.05)


def _manifest_meta(result) -> dict:
    meta = result.asset_materializations_for_node("image_manifest")[0].metadata
    return {k: v.value for k, v in meta.items()}


def _manifests(pipeline) -> dict[str, bytes]:
    return {o.key: pipeline.store.get(o.key) for o in pipeline.store.list("manifests/")}


def test_a_rerun_that_changed_nothing_writes_no_new_manifest(pipeline) -> None:
    path = write_catalog(pipeline.root / "c.json", make_products(6))
    assert pipeline.catalog(path).success
    assert pipeline.images("batch-0000").success
    first = pipeline.publish()
    assert first.success
    before = _manifests(pipeline)
    assert len([k for k in before if k.startswith("manifests/manifest-")]) == 2  # .json and .parquet
    key = _manifest_meta(first)["manifest_key"]

    _next_second()
    assert pipeline.images("batch-0000").success  # every product skipped
    rerun = pipeline.publish()
    assert rerun.success
    assert _manifests(pipeline) == before
    assert _manifest_meta(first)["manifest_written"] is True
    assert _manifest_meta(rerun)["manifest_key"] == key
    assert _manifest_meta(rerun)["manifest_written"] is False
    from catalog_assets.manifest import rows_digest

    latest = json.loads(before["manifests/latest.json"])
    assert latest["manifest_key"] == key and latest["rows_sha256"] == rows_digest(latest["rows"])

    # a real change (a new product's image) writes a new manifest
    _next_second()
    assert pipeline.catalog(write_catalog(path, make_products(7))).success
    assert pipeline.images("batch-0001").success  # a new product fills a new batch
    changed = pipeline.publish()
    assert _manifest_meta(changed)["manifest_written"] is True
    assert _manifest_meta(changed)["manifest_key"] != key
    after = _manifests(pipeline)
    assert len([k for k in after if k.startswith("manifests/manifest-")]) == 4
    assert json.loads(after["manifests/latest.json"])["count"] == 7


def test_the_linked_catalog_names_each_products_thumbnail(pipeline) -> None:
    products = make_products(5)
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", products)).success
    assert pipeline.images("batch-0000").success
    assert pipeline.publish().success
    linked = {p["id"]: p["image"] for p in json.loads(pipeline.store.get("catalog/linked_catalog.json"))}
    for pid, image in linked.items():
        assert image["thumbnail_key"] == f"thumbnails/{pid}.jpg"
        assert image["thumbnail_url"] == pipeline.store.url(image["thumbnail_key"])
        assert pipeline.store.head(pipeline.store.key_for_url(image["thumbnail_url"])) is not None
    import pyarrow.parquet as pq

    table = pq.read_table(pipeline.store_dir / "catalog" / "linked_catalog.parquet").to_pylist()
    assert {r["id"]: r["image_thumbnail_url"] for r in table} == {
        pid: image["thumbnail_url"] for pid, image in linked.items()
    }
