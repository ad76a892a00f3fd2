"""Where the pipeline keeps its own state in the store, so every worker on every machine sees the same:
the stable batch assignment, each batch's products, the catalog index and each batch's last outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalog_assets.resources.store import ImageStore

ASSIGNMENT_KEY = "state/batch_assignment.json"
INDEX_KEY = "state/catalog_index.json"
MANIFEST_LATEST_KEY = "manifests/latest.json"
LINKED_JSON_KEY = "catalog/linked_catalog.json"
LINKED_PARQUET_KEY = "catalog/linked_catalog.parquet"
REPORT_KEY = "reports/generation_report.md"
CONTACT_SHEET_KEY = "reports/contact_sheet.png"


def batch_products_key(partition: str) -> str:
    return f"state/batches/{partition}.json"


def outcomes_key(partition: str) -> str:
    return f"state/outcomes/{partition}.json"


def read_assignment(store: ImageStore) -> dict[str, int]:
    data = store.get_json(ASSIGNMENT_KEY, default={}) or {}
    return {str(k): int(v) for k, v in (data.get("assignment") or {}).items()}


def read_index(store: ImageStore) -> dict[str, Any]:
    return store.get_json(INDEX_KEY, default=None) or {}


def read_batch_products(store: ImageStore, partition: str) -> list[dict[str, Any]] | None:
    return store.get_json(batch_products_key(partition), default=None)


def read_outcomes(store: ImageStore, partition: str) -> dict[str, dict[str, Any]]:
    data = store.get_json(outcomes_key(partition), default=None) or {}
    return {row["product_id"]: row for row in data.get("results", [])}


def write_outcomes(
    store: ImageStore, partition: str, run_id: str, rows: list[Mapping[str, Any]], **extra
) -> None:
    store.put_json(
        outcomes_key(partition), {"partition": partition, "run_id": run_id, "results": rows, **extra}
    )
