"""`image_manifest` and `linked_catalog`: what the store holds, and the catalog linked to it."""

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetCheckKey, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from catalog_assets import call_ledger, state
from catalog_assets.assets.images import product_images
from catalog_assets.assets.reviews import ReviewLimits, image_reviews
from catalog_assets.budget import ReviewBudget
from catalog_assets.checks.names import BLOCKING_MANIFEST_CHECKS
from catalog_assets.dagster_internals import latest_check_executions
from catalog_assets.errors import RunStopped
from catalog_assets.manifest import (
    MANIFEST_COLUMNS,
    add_search_fields,
    attach_reviews,
    build_manifest,
    collect_outcomes,
    collect_reviews,
    link_catalog,
    previous_vectors,
    rows_digest,
    to_parquet,
)
from catalog_assets.resources.coordination import CoordinationResource, Coordinator
from catalog_assets.resources.embedder import TextEmbedder, TextEmbedderResource
from catalog_assets.resources.image_reviewer import ImageReviewer, ImageReviewerResource
from catalog_assets.resources.store import JSON, PARQUET, ImageStore, ImageStoreResource
from catalog_assets.reviewing import BatchReviewer
from catalog_assets.search_export import (
    BULK_FILE,
    BulkFormatError,
    index_mapping,
    s3_url_mapping,
    validate_bulk_ndjson,
    write_bulk_ndjson,
)
from catalog_assets.util import md_table

NDJSON = "application/x-ndjson"


def _index(client) -> dict:
    index = state.read_index(client)
    if not index:
        raise Failure(
            description=f"no catalog in the store {client.location}: materialize product_catalog first"
        )
    return index


def store_link(client: ImageStore, key: str) -> MetadataValue:
    """A metadata link to an object: a URL where the store has absolute ones, else its file path."""
    where = client.locate(key)
    return MetadataValue.url(where) if "://" in where else MetadataValue.path(where)


class PublishReviewsConfig(ReviewLimits):
    """`image_manifest` and `linked_catalog` review the images their batch's `image_reviews` has not (e.g.
    after `product_images` ran alone); these limits bound the paid reviews each of the two steps makes. Images
    past them are published unreviewed (alt text from their product's fields) and reviewed by a later run."""


@asset(group_name="publish", deps=[product_images, image_reviews], kinds={"json", "parquet"})
def image_manifest(
    context: AssetExecutionContext,
    config: PublishReviewsConfig,
    store: ImageStoreResource,
    image_reviewer: ImageReviewerResource,
    coordination: CoordinationResource,
) -> MaterializeResult:
    """One row per stored image (product_id, key, thumbnail_key, url, thumbnail_url, sha256, bytes, width,
    height, content_type, source, model, prompt_fingerprint, attempts, generated_at, the figures border_mean,
    border_min, border_white_share, fill_share, square, min_edge_ok, and `variants`: the delivery variants'
    key, url, format, width, height, bytes, content_type and sha256), `retakes`, `review` (the stored
    review of that very image) and `review_status`, as JSON and Parquet in the store under
    `manifests/manifest-<UTC timestamp>` plus a stable `manifests/latest.json`. An image whose batch's
    `image_reviews` has not reviewed it yet is reviewed here first. A rerun whose rows equal the latest
    manifest's writes no new one."""
    client = store.get_client()
    index = _index(client)
    rows, problems = build_manifest(client, collect_outcomes(client, index["partitions"]))
    attach_reviews(rows, collect_reviews(client, index["partitions"]), state.read_rejections(client))
    by_product = {row["product_id"]: row for row in rows}
    reviewer = image_reviewer.get_client()
    reviewed_now = _review_missing(
        context, client, reviewer, coordination.get_client(), by_product, config.budget()
    )
    if reviewed_now["reviews_made_at_publish"]:
        attach_reviews(rows, collect_reviews(client, index["partitions"]), state.read_rejections(client))
    manifest_key, written = _write_manifest(client, rows)
    for problem in problems[:20]:
        context.log.warning(problem)
    context.log.info(
        f"{len(rows)} images; manifest {manifest_key} "
        + ("written" if written else "unchanged (same rows as the latest manifest), not rewritten")
    )
    sources: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for row in rows:
        sources[row["source"]] = sources.get(row["source"], 0) + 1
        statuses[row["review_status"]] = statuses.get(row["review_status"], 0) + 1
    total = sum(r["bytes"] for r in rows)
    return MaterializeResult(
        metadata={
            "images": len(rows),
            "products": index["product_count"],
            "missing": index["product_count"] - len(rows),
            "total_bytes": total,
            "mean_bytes": round(total / len(rows)) if rows else 0,
            "sources": MetadataValue.json(sources),
            "reviews": MetadataValue.json(statuses),
            "variants": sum(len(r.get("variants") or []) for r in rows),
            "problems": len(problems),
            "location": store_link(client, state.MANIFEST_LATEST_KEY),
            "manifest_key": manifest_key,
            "manifest_written": written,
            **reviewed_now,
        }
    )


def _write_manifest(client: ImageStore, rows: list[dict]) -> tuple[str, bool]:
    """Write a timestamped manifest and latest.json, unless the latest one has these rows already.
    Returns (the key of the manifest that holds these rows, whether it was written now)."""
    digest = rows_digest(rows)
    latest = client.get_json(state.MANIFEST_LATEST_KEY, default=None) or {}
    if latest.get("manifest_key") and latest.get("rows_sha256") == digest:
        return latest["manifest_key"], False
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    key = f"manifests/manifest-{stamp}.json"
    document = {
        "generated_at": stamp,
        "manifest_key": key,
        "rows_sha256": digest,
        "store": client.location,
        "count": len(rows),
        "rows": rows,
    }
    client.put_json(key, document)
    client.put(
        key.removesuffix(".json") + ".parquet", to_parquet(rows, MANIFEST_COLUMNS), content_type=PARQUET
    )
    client.put_json(state.MANIFEST_LATEST_KEY, document)
    return key, True


@asset(group_name="publish", deps=[image_manifest], kinds={"json", "parquet"})
def linked_catalog(
    context: AssetExecutionContext,
    config: PublishReviewsConfig,
    store: ImageStoreResource,
    text_embedder: TextEmbedderResource,
    image_reviewer: ImageReviewerResource,
    coordination: CoordinationResource,
) -> MaterializeResult:
    """The catalog, every input field kept, with `image.url` and `image.thumbnail_url` set to each
    product's store URLs, `image.variants` ([{url, width, type}], AVIF then WebP, narrowest first) and
    `image.srcset` (one srcset string per type) for `<picture>`/`<img srcset>`, `image.alt_text` describing
    the stored image and `image.vector_embedding` (512 unit floats) embedded from that description; products
    without a stored image carry no URL, alt text or vector. JSON and Parquet in the store under `catalog/`,
    beside the search demo's `s3_url_mapping.json`, the Elasticsearch index mapping and bulk NDJSON. The
    local store's URLs are relative to the store root unless a public base URL is set."""
    client = store.get_client()
    _refuse_if_blocked(context)
    index = _index(client)
    manifest = client.get_json(state.MANIFEST_LATEST_KEY, default=None)
    if manifest is None:
        raise Failure(description="no manifest in the store: materialize image_manifest first")
    by_product = {row["product_id"]: row for row in manifest["rows"]}
    coordinator = coordination.get_client()
    reviewed_now = _review_missing(
        context, client, image_reviewer.get_client(), coordinator, by_product, config.budget()
    )
    products = []
    for partition in index["partitions"]:
        products.extend(state.read_batch_products(client, partition) or [])
    linked = link_catalog(products, by_product)
    embedder = text_embedder.get_client()
    with call_ledger.recording(coordinator.call_log(), client, context.run.run_id) as recorder:
        # every embeddings request paced, guarded and recorded like generation's calls
        embedder.share_limits(coordinator, recorder=recorder)
        search = _add_search_fields(context, client, linked, by_product, embedder)
    _put_linked_json(client, linked)
    search.update(_write_search_exports(client, linked))
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
            "location": store_link(client, state.LINKED_JSON_KEY),
            "sample": MetadataValue.md(md_table(["id", "name", "url"], sample)),
            **reviewed_now,
            **search,
        }
    )


def _review_missing(
    context: AssetExecutionContext,
    client: ImageStore,
    reviewer: ImageReviewer,
    coordinator: Coordinator,
    by_product: dict,
    budget: ReviewBudget,
) -> dict:
    """Reviews for the manifest's images that have none yet (their batch's `image_reviews` did not run,
    e.g. after a run of `product_images` alone), stored like `image_reviews` stores them; each manifest row
    in `by_product` gets its review. Returns the metadata of what was reviewed here."""
    missing: dict[str, list[str]] = {}
    for pid, row in by_product.items():
        if row.get("review") is None:
            missing.setdefault(row.get("partition") or "", []).append(pid)
    if not missing:
        return {"reviews_made_at_publish": 0}
    try:
        reviewer.check_config()
    except RunStopped as exc:
        raise Failure(description=exc.message) from None
    made, calls, failed, left, stopped = 0, 0, 0, 0, ""
    # one record for the step's reviews: copied into the store once, not once per batch
    with call_ledger.recording(coordinator.call_log(), client, context.run.run_id) as recorder:
        for partition, pids in sorted(missing.items()):
            wanted = set(pids)
            products = [p for p in state.read_batch_products(client, partition) or [] if p["id"] in wanted]
            previous = state.read_reviews(client, partition)
            batch = BatchReviewer(
                reviewer=reviewer, store=client, coordinator=coordinator, budget=budget, recorder=recorder
            )
            rows = batch.review(products, state.read_outcomes(client, partition), previous)
            state.write_reviews(client, partition, context.run.run_id, {**previous, **rows}.values())
            for pid, review_row in rows.items():
                if review_row["image_sha256"] == by_product[pid]["sha256"]:
                    by_product[pid]["review"] = review_row["review"]
            made, calls, failed, left = (
                made + batch.stats.reviewed,
                calls + batch.stats.calls,
                failed + len(batch.stats.failed),
                left + len(batch.stats.unreviewed),
            )
            stopped = batch.stats.stopped or stopped
    context.log.info(
        f"{made} images had no stored review and were reviewed now by {reviewer.model} ({calls} calls, "
        f"{failed} failed: those are described from their product's fields)"
    )
    if left:
        context.log.warning(
            f"{left} images left unreviewed ({stopped}): published with alt text from their product's "
            "fields; a later run reviews them"
        )
    return {
        "reviews_made_at_publish": made,
        "review_calls_at_publish": calls,
        "reviews_left_at_publish": left,
    }


def _add_search_fields(
    context: AssetExecutionContext,
    client: ImageStore,
    linked: list[dict],
    manifest: dict,
    embedder: TextEmbedder,
) -> dict:
    """Alt text and vectors for the linked products (vectors of the previous linked catalog reused by
    text fingerprint); returns their metadata."""
    embedder.check_config()
    previous = previous_vectors(client.get_json(state.LINKED_JSON_KEY, default=None))
    started = time.perf_counter()
    stats = add_search_fields(linked, manifest, embedder, previous)
    seconds = time.perf_counter() - started
    context.log.info(
        f"vectors by {embedder.model}: {stats.embedded} texts embedded, {stats.reused} reused, "
        f"{stats.without_image} products without an image ({seconds:.2f} s)"
    )
    return {
        "embedding_model": embedder.model,
        "embedding_offline": not embedder.paid,
        "vectors_embedded": stats.embedded,
        "vectors_reused": stats.reused,
        "search_fields_seconds": round(seconds, 3),
    }


def _put_linked_json(client: ImageStore, linked: list[dict]) -> None:
    """The linked catalog as compact JSON: with 512 floats per product, an indented file is twice the size
    and takes the pure-Python encoder (about 8 times slower)."""
    text = json.dumps(linked, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    client.put(state.LINKED_JSON_KEY, text.encode(), content_type=JSON)


def _write_search_exports(client: ImageStore, linked: list[dict]) -> dict:
    """`s3_url_mapping.json`, the index mapping and the bulk NDJSON beside the linked catalog. The NDJSON is
    validated against the mapping before it is stored: an invalid one fails the asset, the stored one stays."""
    mapping = index_mapping()
    with tempfile.TemporaryDirectory(prefix="catalog-bulk-") as tmp:
        bulk = Path(tmp) / BULK_FILE
        documents = write_bulk_ndjson(linked, bulk)
        # products without an image have no vector (null): valid for Elasticsearch, so not required here
        validation = validate_bulk_ndjson(bulk, mapping, require_vector=False)
        if not validation.ok:
            try:
                validation.raise_for_problems()
            except BulkFormatError as exc:
                raise Failure(description=f"not writing {state.BULK_NDJSON_KEY}: {exc}") from None
        client.put(state.BULK_NDJSON_KEY, bulk.read_bytes(), content_type=NDJSON)
    urls = s3_url_mapping(linked)
    client.put(
        state.S3_URL_MAPPING_KEY,
        json.dumps(urls, indent=2, ensure_ascii=False).encode() + b"\n",
        content_type=JSON,
    )
    client.put(state.ES_MAPPING_KEY, json.dumps(mapping, indent=2).encode() + b"\n", content_type=JSON)
    return {
        "s3_url_mapping": store_link(client, state.S3_URL_MAPPING_KEY),
        "s3_url_mapping_products": len(urls["product_to_s3_url"]),
        "es_mapping": store_link(client, state.ES_MAPPING_KEY),
        "bulk_ndjson": store_link(client, state.BULK_NDJSON_KEY),
        "bulk_documents": documents,
    }


def _refuse_if_blocked(context: AssetExecutionContext) -> None:
    """Publish only on a verdict: the latest execution of every blocking manifest check completed and passed,
    on the image_manifest materialization there is now. A check never run, still running, crashed, skipped or
    failed refuses, in the publish run and when linked_catalog is materialized on its own later."""
    keys = [AssetCheckKey(image_manifest.key, name) for name in BLOCKING_MANIFEST_CHECKS]
    latest = latest_check_executions(context.instance, keys)
    materialized = context.instance.fetch_materializations(image_manifest.key, limit=1).records
    current = materialized[0].storage_id if materialized else None
    # A check judged the current manifest when its evaluation names that materialization, or when it ran in
    # the run that wrote it: in a run with a partition key (e.g. `--partition batch-0003` with the publish
    # assets) the unpartitioned manifest's check evaluations do not name the materialization of that run.
    current_run = materialized[0].run_id if materialized else None
    why = {
        "never run": "never ran",
        "running": "is still running",
        "crashed": "did not report: its run failed first",
        "skipped": "was skipped in its latest run",
        "failed": "failed",
    }
    refused = []
    for key in keys:
        execution = latest[key]
        if execution.state != "succeeded":
            refused.append(f"{key.name} {why[execution.state]}")
        elif (
            current is not None and execution.target_storage_id != current and execution.run_id != current_run
        ):
            refused.append(f"{key.name} passed on an older image_manifest")
    if refused:
        raise Failure(
            description=f"not publishing: blocking check(s) {'; '.join(refused)} on the latest image_manifest; "
            "fix what a failed check reports, then rematerialize image_manifest with its checks (publish_job), "
            "or run them on the store as it is (`catalog-images check --select image_manifest`)"
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
    row["image_thumbnail_url"] = product["image"].get("thumbnail_url")
    row["image_alt_text"] = product["image"].get("alt_text")
    row.update(_parquet_search_columns(product))
    return row


def _parquet_search_columns(product: dict) -> dict:
    """The vector columns: a list of 512 floats (null without an image) and the model that made it."""
    return {
        "image_vector_embedding": product["image"].get("vector_embedding"),
        "image_embedding_model": product["image"].get("embedding_model"),
    }


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
