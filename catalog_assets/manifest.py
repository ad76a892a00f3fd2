"""Manifest rows and the linked catalog, built from the batches' outcomes and checked against the store."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

from catalog_assets import state
from catalog_assets.resources.store import JPEG, ImageStore

MANIFEST_COLUMNS = [
    "product_id",
    "key",
    "thumbnail_key",
    "url",
    "sha256",
    "bytes",
    "width",
    "height",
    "content_type",
    "source",
    "model",
    "prompt_fingerprint",
    "attempts",
    "generated_at",
    "etag",
    "partition",
]


def collect_outcomes(store: ImageStore, partitions: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The last recorded outcome of every product of the given batches, by product id."""
    outcomes: dict[str, dict[str, Any]] = {}
    for partition in partitions:
        for pid, row in state.read_outcomes(store, partition).items():
            outcomes[pid] = {**row, "partition": partition}
    return outcomes


def build_manifest(
    store: ImageStore, outcomes: Mapping[str, Mapping[str, Any]]
) -> tuple[list[dict], list[str]]:
    """One row per stored image whose object exists with the recorded size. Returns (rows, problems)."""
    listing = {o.key: o for o in store.list("images/")}
    rows, problems = [], []
    for pid in sorted(outcomes):
        rec = outcomes[pid]
        key = rec.get("key")
        if not key or rec.get("outcome") == "failed":
            continue
        obj = listing.get(key)
        if obj is None:
            problems.append(f"{pid}: {key} is recorded but missing from the store")
            continue
        if obj.size != rec.get("bytes"):
            problems.append(f"{pid}: {key} is {obj.size} bytes in the store, {rec.get('bytes')} recorded")
            continue
        rows.append(
            {
                "product_id": pid,
                "key": key,
                "thumbnail_key": rec.get("thumbnail_key"),
                "url": store.url(key),
                "sha256": rec.get("sha256"),
                "bytes": obj.size,
                "width": rec.get("width"),
                "height": rec.get("height"),
                "content_type": JPEG,
                "source": rec.get("source"),
                "model": rec.get("model"),
                "prompt_fingerprint": rec.get("prompt_fingerprint"),
                "attempts": rec.get("calls_total", rec.get("attempts")),
                "generated_at": rec.get("generated_at"),
                "etag": obj.etag,
                "partition": rec.get("partition"),
            }
        )
    return rows, problems


def to_parquet(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if columns:
        table = pa.table({c: [r.get(c) for r in rows] for c in columns})
    else:
        table = pa.Table.from_pylist(list(rows))
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def alt_text(product: Mapping[str, Any]) -> str:
    name = str(product.get("name") or "").strip()
    brand = str(product.get("brand") or "").strip()
    kind = str(product.get("subcategory") or product.get("category") or "").strip()
    text = f"{name}" + (f" by {brand}" if brand and brand.lower() not in name.lower() else "")
    return text + (f", {kind.lower()}" if kind and kind.lower() not in name.lower() else "")


def link_catalog(
    products: Iterable[Mapping[str, Any]], manifest: Mapping[str, Mapping[str, Any]]
) -> list[dict]:
    """The catalog with image.url pointing at the stored object; no URL where there is no object."""
    linked = []
    for product in products:
        row = dict(product)
        entry = manifest.get(product["id"])
        image = dict(product.get("image") or {})
        image["alt_text"] = alt_text(product)
        if entry:
            image.update(url=entry["url"], key=entry["key"], sha256=entry["sha256"], source=entry["source"])
            if entry.get("thumbnail_key"):
                image["thumbnail_key"] = entry["thumbnail_key"]
        else:
            image["url"] = None  # never a dangling or stale link
            for stale in ("key", "sha256", "source", "thumbnail_key"):
                image.pop(stale, None)
        row["image"] = image
        linked.append(row)
    return linked
