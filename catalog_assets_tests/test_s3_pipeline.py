"""The asset graph with the S3 store over HTTP (moto's server): keys, checksums and durable links end to
end, a rerun that uploads nothing, and moving an existing local store to S3 without a single generation."""

from __future__ import annotations

import hashlib
import json

import boto3

from catalog_assets.resources.local_coordination import LocalCoordinationResource
from catalog_assets.resources.s3_store import S3ImageStoreResource
from catalog_assets_tests.conftest import RENDERS, CountingGeneratorResource, write_catalog


def _use_s3(pipeline, bucket: str, prefix: str = "shop") -> None:
    pipeline.resources = lambda: {
        "image_generator": pipeline.generator,
        "store": S3ImageStoreResource(bucket=bucket, prefix=prefix),
        "coordination": LocalCoordinationResource(lock_dir=str(pipeline.root / "locks")),
    }


def _objects(endpoint: str, bucket: str, prefix: str) -> dict[str, dict]:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            head = s3.head_object(Bucket=bucket, Key=obj["Key"])
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = {"head": head, "sha256": hashlib.sha256(body).hexdigest(), "etag": obj["ETag"]}
    return out


def _assert_complete(endpoint: str, bucket: str, ids: list[str]) -> dict[str, dict]:
    objects = _objects(endpoint, bucket, "shop/")
    for pid in ids:
        for kind in ("images", "thumbnails"):
            obj = objects[f"shop/{kind}/{pid}.jpg"]
            assert obj["head"]["ContentType"] == "image/jpeg"
            assert obj["head"]["Metadata"]["sha256"] == obj["sha256"]
        assert objects[f"shop/images/{pid}.jpg"]["head"]["Metadata"]["product-id"] == pid
    linked = json.loads(
        boto3.client("s3", endpoint_url=endpoint)
        .get_object(Bucket=bucket, Key="shop/catalog/linked_catalog.json")["Body"]
        .read()
    )
    for product in linked:
        url = product["image"]["url"]
        assert url == f"{endpoint}/{bucket}/shop/images/{product['id']}.jpg"
        assert url.removeprefix(f"{endpoint}/{bucket}/") in objects
    return objects


def test_full_run_on_s3_then_a_rerun_uploads_nothing(pipeline, sample_products, s3_bucket, moto_endpoint):
    _use_s3(pipeline, s3_bucket)
    products = sample_products[:15]
    pipeline.catalog(write_catalog(pipeline.root / "c.json", products), batch_size=10)
    assert all(pipeline.images(p).success for p in pipeline.partitions())
    assert pipeline.publish().success
    before = _assert_complete(moto_endpoint, s3_bucket, [p["id"] for p in products])
    manifest = json.loads(
        boto3.client("s3", endpoint_url=moto_endpoint)
        .get_object(Bucket=s3_bucket, Key="shop/manifests/latest.json")["Body"]
        .read()
    )
    assert {r["etag"] for r in manifest["rows"]} == {
        before[f"shop/{r['key']}"]["etag"].strip('"') for r in manifest["rows"]
    }
    assert any(k.startswith("shop/manifests/manifest-") and k.endswith(".parquet") for k in before)
    RENDERS.clear()
    assert all(pipeline.images(p).success for p in pipeline.partitions())
    after = _objects(moto_endpoint, s3_bucket, "shop/")
    media = [k for k in before if k.startswith(("shop/images/", "shop/thumbnails/"))]
    assert all(after[k]["head"]["LastModified"] == before[k]["head"]["LastModified"] for k in media)
    assert sum(RENDERS.values()) == 0


def test_moving_a_local_store_to_s3_makes_no_generation_call(
    pipeline, sample_products, s3_bucket, moto_endpoint
):
    products = sample_products[:12]
    # 1. a run on the embedded default: the local store at data/store (relative to the working directory)
    pipeline.store_dir = pipeline.root / "data" / "store"
    pipeline.catalog(write_catalog(pipeline.root / "c.json", products), batch_size=5)
    assert all(pipeline.images(p).success for p in pipeline.partitions())
    local_batches = json.loads((pipeline.store_dir / "state" / "batch_assignment.json").read_text())
    # 2. S3 configured: the same job moves what exists, generating nothing
    RENDERS.clear()
    pipeline.generator = CountingGeneratorResource(
        fail_ids=[p["id"] for p in products]
    )  # any call would fail
    _use_s3(pipeline, s3_bucket)
    assert pipeline.catalog(pipeline.root / "c.json", batch_size=5).success
    results = [pipeline.images(p) for p in pipeline.partitions()]
    assert all(r.success for r in results)
    assert sum(RENDERS.values()) == 0
    meta = results[0].asset_materializations_for_node("product_images")[0].metadata
    assert meta["count_skipped"].value == 5 and meta["api_calls"].value == 0
    assert pipeline.publish().success
    objects = _assert_complete(moto_endpoint, s3_bucket, [p["id"] for p in products])
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    assignment = json.loads(
        s3.get_object(Bucket=s3_bucket, Key="shop/state/batch_assignment.json")["Body"].read()
    )
    assert assignment["assignment"] == local_batches["assignment"]  # every product kept its batch
    for pid in (p["id"] for p in products):  # the bytes moved unchanged, verified by sha256
        local = (pipeline.store_dir / "images" / f"{pid}.jpg").read_bytes()
        assert objects[f"shop/images/{pid}.jpg"]["sha256"] == hashlib.sha256(local).hexdigest()
