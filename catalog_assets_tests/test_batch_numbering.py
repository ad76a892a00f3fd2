"""Whose batch numbering a store uses: its own, from batch-0000 when it is new, except when a store of
another kind (S3) takes over from the local store it moves from, where products keep their batches."""

from __future__ import annotations

import json

from catalog_assets.resources.local_coordination import LocalCoordinationResource
from catalog_assets.resources.s3_store import S3ImageStoreResource
from catalog_assets_tests.conftest import write_catalog
from catalog_assets_tests.products import make_products


def _numbering(result) -> str:
    return result.asset_materializations_for_node("product_catalog")[0].metadata["batch_numbering"].value


def _history_in_default_store(pipeline) -> dict[str, int]:
    """A local store at data/store (the default import_from_dir) whose numbering a fresh start would not
    repeat: products 1-10 in batches 0-1, then 1-2 removed and 11-14 added (batch 2)."""
    pipeline.store_dir = pipeline.root / "data" / "store"
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", make_products(10)), batch_size=5).success
    later = make_products(12, start=3)
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", later), batch_size=5).success
    data = json.loads((pipeline.store_dir / "state" / "batch_assignment.json").read_text())
    return data["assignment"]


def test_a_fresh_local_store_starts_its_own_numbering(pipeline) -> None:
    _history_in_default_store(pipeline)
    pipeline.store_dir = pipeline.root / "rehearsal-store"
    result = pipeline.catalog(
        write_catalog(pipeline.root / "r.json", make_products(8, start=101)), batch_size=5
    )
    assert result.success
    assignment = json.loads((pipeline.store_dir / "state" / "batch_assignment.json").read_text())[
        "assignment"
    ]
    assert sorted(set(assignment.values())) == [0, 1]
    assert json.loads((pipeline.store_dir / "state" / "catalog_index.json").read_text())["partitions"] == [
        "batch-0000",
        "batch-0001",
    ]
    assert _numbering(result) == "this store"


def test_a_fresh_local_store_with_the_same_products_still_numbers_them_itself(pipeline) -> None:
    history = _history_in_default_store(pipeline)
    pipeline.store_dir = pipeline.root / "rehearsal-store"
    products = make_products(12, start=3)
    assert pipeline.catalog(write_catalog(pipeline.root / "r.json", products), batch_size=5).success
    assignment = json.loads((pipeline.store_dir / "state" / "batch_assignment.json").read_text())[
        "assignment"
    ]
    assert assignment == {p["id"]: i // 5 for i, p in enumerate(products)} != history


def test_moving_to_s3_keeps_every_products_batch(pipeline, s3_bucket, moto_endpoint) -> None:
    history = _history_in_default_store(pipeline)
    fresh = {p["id"]: i // 5 for i, p in enumerate(make_products(12, start=3))}
    assert history != fresh  # so the test tells a taken-over numbering from a fresh one
    pipeline.resources = lambda: {
        "image_generator": pipeline.generator,
        "store": S3ImageStoreResource(bucket=s3_bucket, prefix="moved"),
        "coordination": LocalCoordinationResource(lock_dir=str(pipeline.root / "locks")),
    }
    result = pipeline.catalog(pipeline.root / "c.json", batch_size=5)
    assert result.success
    assert _numbering(result).startswith("the store it moves from")
    store = S3ImageStoreResource(bucket=s3_bucket, prefix="moved").get_client()
    assert store.get_json("state/batch_assignment.json")["assignment"] == history
    # and from now on the S3 store numbers on from its own assignment
    again = pipeline.catalog(
        write_catalog(pipeline.root / "c.json", make_products(14, start=3)), batch_size=5
    )
    assert _numbering(again) == "this store"
    assignment = store.get_json("state/batch_assignment.json")["assignment"]
    assert {k: v for k, v in assignment.items() if k in history} == history
    assert {assignment["PROD-000015"], assignment["PROD-000016"]} == {max(history.values()) + 1}


def test_a_fresh_s3_store_for_another_catalog_starts_its_own_numbering(pipeline, s3_bucket, moto_endpoint):
    _history_in_default_store(pipeline)
    pipeline.resources = lambda: {
        "image_generator": pipeline.generator,
        "store": S3ImageStoreResource(bucket=s3_bucket, prefix="other"),
        "coordination": LocalCoordinationResource(lock_dir=str(pipeline.root / "locks")),
    }
    result = pipeline.catalog(
        write_catalog(pipeline.root / "o.json", make_products(3, start=500)), batch_size=5
    )
    assert result.success and _numbering(result) == "this store"
    store = S3ImageStoreResource(bucket=s3_bucket, prefix="other").get_client()
    assert set(store.get_json("state/batch_assignment.json")["assignment"].values()) == {0}
