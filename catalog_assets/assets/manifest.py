"""`image_manifest` and `linked_catalog`: what the store holds, and the catalog linked to it."""

from datetime import UTC, datetime

from dagster import AssetCheckKey, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from catalog_assets import state
from catalog_assets.assets.images import product_images
from catalog_assets.manifest import (
    MANIFEST_COLUMNS,
    build_manifest,
    collect_outcomes,
    link_catalog,
    to_parquet,
)
from catalog_assets.resources.store import PARQUET, ImageStoreResource
from catalog_assets.util import md_table


def _index(client) -> dict:
    index = state.read_index(client)
    if not index:
        raise Failure(
            description=f"no catalog in the store {client.location}: materialize product_catalog first"
        )
    return index


@asset(group_name="publish", deps=[product_images], kinds={"json", "parquet"})
def image_manifest(context: AssetExecutionContext, store: ImageStoreResource) -> MaterializeResult:
    """One row per stored image (product_id, key, url, sha256, bytes, width, height, content_type, source,
    model, prompt_fingerprint, attempts, generated_at), as JSON and Parquet in the store under
    `manifests/manifest-<UTC timestamp>` plus a stable `manifests/latest.json`."""
    client = store.get_client()
    index = _index(client)
    outcomes = collect_outcomes(client, index["partitions"])
    rows, problems = build_manifest(client, outcomes)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = {"generated_at": stamp, "store": client.location, "count": len(rows), "rows": rows}
    client.put_json(f"manifests/manifest-{stamp}.json", document)
    client.put(
        f"manifests/manifest-{stamp}.parquet", to_parquet(rows, MANIFEST_COLUMNS), content_type=PARQUET
    )
    client.put_json(state.MANIFEST_LATEST_KEY, document)
    for problem in problems[:20]:
        context.log.warning(problem)
    sources: dict[str, int] = {}
    for row in rows:
        sources[row["source"]] = sources.get(row["source"], 0) + 1
    total = sum(r["bytes"] for r in rows)
    return MaterializeResult(
        metadata={
            "images": len(rows),
            "products": index["product_count"],
            "missing": index["product_count"] - len(rows),
            "total_bytes": total,
            "mean_bytes": round(total / len(rows)) if rows else 0,
            "sources": MetadataValue.json(sources),
            "problems": len(problems),
            "location": MetadataValue.url(client.url(state.MANIFEST_LATEST_KEY)),
            "manifest_key": f"manifests/manifest-{stamp}.json",
        }
    )


@asset(group_name="publish", deps=[image_manifest], kinds={"json", "parquet"})
def linked_catalog(context: AssetExecutionContext, store: ImageStoreResource) -> MaterializeResult:
    """The catalog with `image.url` set to each product's durable store URL and `image.alt_text` from the
    product; products without a stored image carry no URL. JSON and Parquet in the store under `catalog/`."""
    client = store.get_client()
    _refuse_if_blocked(context)
    index = _index(client)
    manifest = client.get_json(state.MANIFEST_LATEST_KEY, default=None)
    if manifest is None:
        raise Failure(description="no manifest in the store: materialize image_manifest first")
    by_product = {row["product_id"]: row for row in manifest["rows"]}
    products = []
    for partition in index["partitions"]:
        products.extend(state.read_batch_products(client, partition) or [])
    linked = link_catalog(products, by_product)
    client.put_json(state.LINKED_JSON_KEY, linked)
    flat = [_parquet_row(p) for p in linked]
    client.put(state.LINKED_PARQUET_KEY, to_parquet(flat), content_type=PARQUET)
    with_url = sum(1 for p in linked if p["image"].get("url"))
    expiry = client.url_expires_in_s
    sample = [[p["id"], p["name"], p["image"].get("url") or "—"] for p in linked[:5]]
    return MaterializeResult(
        metadata={
            "products": len(linked),
            "with_image_url": with_url,
            "without_image": len(linked) - with_url,
            "url_expiry": "never (durable URLs)" if not expiry else f"presigned, expires in {expiry} s",
            "location": MetadataValue.url(client.url(state.LINKED_JSON_KEY)),
            "sample": MetadataValue.md(md_table(["id", "name", "url"], sample)),
        }
    )


def _refuse_if_blocked(context: AssetExecutionContext) -> None:
    """Blocking checks stop linked_catalog within their run; this also holds when linked_catalog is
    materialized on its own later: the latest run of a blocking manifest check must not have failed."""
    from catalog_assets.checks import BLOCKING_MANIFEST_CHECKS

    keys = [AssetCheckKey(image_manifest.key, name) for name in BLOCKING_MANIFEST_CHECKS]
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    failed = [
        k.name for k, record in latest.items() if record.status == AssetCheckExecutionRecordStatus.FAILED
    ]
    if failed:
        raise Failure(
            description=f"not publishing: blocking check(s) {', '.join(sorted(failed))} failed on the latest "
            "image_manifest; fix the store and rematerialize image_manifest with its checks"
        )


# Columns with one known type; every other field (attributes, extra catalog fields of any shape) goes to
# Parquet as JSON text, so a field whose type varies across rows never breaks the file.
_TYPED_COLUMNS = {
    "id": str,
    "name": str,
    "description": str,
    "category": str,
    "subcategory": str,
    "brand": str,
    "stock_status": str,
    "created_at": str,
    "updated_at": str,
    "price": float,
    "rating": float,
    "review_count": float,
}


def _parquet_row(product: dict) -> dict:
    row: dict = {}
    for key, value in product.items():
        if key == "image":
            continue
        kind = _TYPED_COLUMNS.get(key)
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            row[key] = float(value)
        elif kind is str and isinstance(value, str):
            row[key] = value
        else:
            row[key] = None if value is None and kind else _json(value)
    row["image_url"] = product["image"].get("url")
    row["image_alt_text"] = product["image"].get("alt_text")
    return row


def _json(value) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
