"""Where the pipeline keeps its own state in the store, so every worker on every machine sees the same:
the stable batch assignment, each batch's products, the catalog index and each batch's last outcomes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from catalog_assets.resources.store import ImageStore, LocalImageStore, seed_store

ASSIGNMENT_KEY = "state/batch_assignment.json"
INDEX_KEY = "state/catalog_index.json"
MANIFEST_LATEST_KEY = "manifests/latest.json"
LINKED_JSON_KEY = "catalog/linked_catalog.json"
LINKED_PARQUET_KEY = "catalog/linked_catalog.parquet"
# The linked catalog in the search demo's forms, written beside it by linked_catalog.
S3_URL_MAPPING_KEY = "catalog/s3_url_mapping.json"
ES_MAPPING_KEY = "catalog/es_mapping.json"
BULK_NDJSON_KEY = "catalog/products_bulk.ndjson"
REPORT_KEY = "reports/generation_report.md"
CONTACT_SHEET_KEY = "reports/contact_sheet.png"


def batch_products_key(partition: str) -> str:
    return f"state/batches/{partition}.json"


def outcomes_key(partition: str) -> str:
    return f"state/outcomes/{partition}.json"


def read_assignment(store: ImageStore) -> dict[str, int]:
    data = store.get_json(ASSIGNMENT_KEY, default={}) or {}
    return {str(k): int(v) for k, v in (data.get("assignment") or {}).items()}


def assignment_to_continue(
    store: ImageStore, import_from_dir: str | None, product_ids: Iterable[str]
) -> tuple[dict[str, int], str]:
    """The batch assignment new batches continue from, and whose it is.

    A store keeps its own numbering. A store with none yet starts at batch-0000, except when it is a move:
    a store of another kind (S3) taking over from the local store in `import_from_dir`, whose assignment
    holds products of this catalog; then products keep the batches they had there. A local store never
    takes over another's numbering (to move one, move its folder).
    """
    own = read_assignment(store)
    if own:
        return own, "this store"
    seed = None if isinstance(store, LocalImageStore) else seed_store(import_from_dir, store)
    if seed is not None:
        theirs = read_assignment(seed)
        if any(pid in theirs for pid in product_ids):
            return theirs, f"the store it moves from, {seed.location}"
    return {}, "this store"


def read_index(store: ImageStore) -> dict[str, Any]:
    return store.get_json(INDEX_KEY, default=None) or {}


def read_batch_products(store: ImageStore, partition: str) -> list[dict[str, Any]] | None:
    return store.get_json(batch_products_key(partition), default=None)


def read_outcomes(store: ImageStore, partition: str) -> dict[str, dict[str, Any]]:
    data = store.get_json(outcomes_key(partition), default=None) or {}
    return {row["product_id"]: row for row in data.get("results", [])}


def read_outcomes_header(store: ImageStore, partition: str) -> dict[str, Any]:
    """A batch's last outcomes without their rows: the run that wrote them (`run_id`), the generator `model`
    it ran with, ...; empty when the batch never ran."""
    data = store.get_json(outcomes_key(partition), default=None) or {}
    return {k: v for k, v in data.items() if k != "results"}


def write_outcomes(
    store: ImageStore, partition: str, run_id: str, rows: list[Mapping[str, Any]], **extra
) -> None:
    store.put_json(
        outcomes_key(partition), {"partition": partition, "run_id": run_id, "results": rows, **extra}
    )


# -- reviews and rejections ------------------------------------------------------------------------------

REJECTIONS_KEY = "state/rejections.json"
REVIEW_GALLERY_KEY = "reports/review_gallery.html"


def reviews_key(partition: str) -> str:
    return f"state/reviews/{partition}.json"


def read_reviews(store: ImageStore, partition: str) -> dict[str, dict[str, Any]]:
    """A batch's stored reviews by product id: `image_sha256` (what was reviewed), `review_fingerprint`,
    `review` (`ImageReview.to_dict()`), `reviewed_at`, `calls`, `cost_usd`."""
    data = store.get_json(reviews_key(partition), default=None) or {}
    return {row["product_id"]: row for row in data.get("results", [])}


def write_reviews(store: ImageStore, partition: str, run_id: str, rows: Iterable[Mapping[str, Any]]) -> None:
    ordered = sorted(rows, key=lambda row: row["product_id"])
    store.put_json(reviews_key(partition), {"partition": partition, "run_id": run_id, "results": ordered})


def read_rejections(store: ImageStore) -> dict[str, dict[str, Any]]:
    """A person's rejections by product id: `reason`, `image_sha256` (the image rejected), `rejected_at`."""
    data = store.get_json(REJECTIONS_KEY, default=None) or {}
    return dict(data.get("rejections") or {})


def write_rejections(store: ImageStore, rejections: Mapping[str, Mapping[str, Any]]) -> None:
    store.put_json(REJECTIONS_KEY, {"rejections": dict(sorted(rejections.items()))})
