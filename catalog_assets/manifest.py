"""Manifest rows and the linked catalog, built from the batches' outcomes and checked against the store."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from catalog_assets import state
from catalog_assets.embeddings import (
    EMBEDDING_DIMENSIONS,
    UNIT_NORM_TOLERANCE,
    as_json_floats,
    embedding_text,
    text_fingerprint,
)
from catalog_assets.image_figures import FIGURE_COLUMNS
from catalog_assets.outcomes import calls_total
from catalog_assets.resources.image_reviewer import is_offline_card
from catalog_assets.resources.store import JPEG, ImageStore
from catalog_assets.retakes import review_status
from catalog_assets.review import offline_description
from catalog_assets.variants import srcset_entries, srcset_strings

if TYPE_CHECKING:
    from catalog_assets.resources.embedder import TextEmbedder

MANIFEST_COLUMNS = [
    "product_id",
    "key",
    "thumbnail_key",
    "url",
    "thumbnail_url",
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
    *FIGURE_COLUMNS,
    "variants",
    "retakes",
    "review_status",
]


def collect_outcomes(store: ImageStore, partitions: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The last recorded outcome of every product of the given batches, by product id."""
    outcomes: dict[str, dict[str, Any]] = {}
    for partition in partitions:
        for pid, row in state.read_outcomes(store, partition).items():
            outcomes[pid] = {**row, "partition": partition}
    return outcomes


def collect_reviews(store: ImageStore, partitions: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored review rows of every product of the given batches, by product id."""
    reviews: dict[str, dict[str, Any]] = {}
    for partition in partitions:
        reviews.update(state.read_reviews(store, partition))
    return reviews


def attach_reviews(
    rows: Iterable[dict[str, Any]],
    reviews: Mapping[str, Mapping[str, Any]],
    rejections: Mapping[str, Mapping[str, Any]],
) -> None:
    """Each manifest row's `review` (the stored review of that very image, by sha256; None when it has
    none yet) and `review_status` (approved, rejected, rejected_by_person, unreviewed), in place."""
    for row in rows:
        pid = row["product_id"]
        outcome = {"key": row["key"], "sha256": row["sha256"], "retakes": row.get("retakes")}
        stored = reviews.get(pid)
        matches = stored is not None and stored.get("image_sha256") == row["sha256"]
        row["review"] = dict(stored["review"]) if matches and stored else None
        row["review_status"] = review_status(outcome, stored, rejections.get(pid))


def build_manifest(
    store: ImageStore, outcomes: Mapping[str, Mapping[str, Any]]
) -> tuple[list[dict], list[str]]:
    """One row per stored image whose object exists with the recorded size. Returns (rows, problems)."""
    listing = {o.key: o for o in store.list("images/")}
    variant_listing = {o.key: o for o in store.list("variants/")}
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
                "thumbnail_url": store.url(rec["thumbnail_key"]) if rec.get("thumbnail_key") else None,
                "sha256": rec.get("sha256"),
                "bytes": obj.size,
                "width": rec.get("width"),
                "height": rec.get("height"),
                "content_type": JPEG,
                "source": rec.get("source"),
                "model": rec.get("model"),
                "prompt_fingerprint": rec.get("prompt_fingerprint"),
                "attempts": calls_total(rec),
                "generated_at": rec.get("generated_at"),
                "etag": obj.etag,
                "partition": rec.get("partition"),
                **{c: (rec.get("figures") or {}).get(c) for c in FIGURE_COLUMNS},
                "variants": _variant_rows(store, pid, rec, variant_listing, problems),
                "retakes": int(rec.get("retakes") or 0),
            }
        )
    return rows, problems


def _variant_rows(
    store: ImageStore, pid: str, rec: Mapping[str, Any], listing: Mapping[str, Any], problems: list[str]
) -> list[dict]:
    """The product's delivery variants that exist with their recorded size (the others are problems)."""
    rows = []
    for v in rec.get("variants") or []:
        obj = listing.get(v.get("key"))
        if obj is None or obj.size != v.get("bytes"):
            where = "missing from the store" if obj is None else f"{obj.size} bytes in the store"
            problems.append(f"{pid}: variant {v.get('key')} is {where}, {v.get('bytes')} bytes recorded")
            continue
        rows.append({**v, "url": store.url(v["key"])})
    return rows


def rows_digest(rows: Iterable[Mapping[str, Any]]) -> str:
    """A digest of the manifest's rows, independent of when the manifest was written: equal rows, equal
    digest, so a rerun that changed nothing writes no new manifest."""
    text = json.dumps(list(rows), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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
            image["variants"] = srcset_entries(entry.get("variants") or [], lambda v: v["url"])
            image["srcset"] = srcset_strings(image["variants"])
            if entry.get("thumbnail_key"):
                image["thumbnail_key"] = entry["thumbnail_key"]
                image["thumbnail_url"] = entry.get("thumbnail_url")
            else:
                image.pop("thumbnail_key", None)
                image.pop("thumbnail_url", None)
        else:
            image["url"] = None  # never a dangling or stale link
            for stale in ("key", "sha256", "source", "thumbnail_key", "thumbnail_url", "variants", "srcset"):
                image.pop(stale, None)
        row["image"] = image
        linked.append(row)
    return linked


# -- search fields: alt text, caption and vector of each linked product ----------------------------------


def describe_linked(product: Mapping[str, Any], entry: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(alt text, caption) of a linked product's stored image (`entry`: its manifest row), or None when it
    has no image. The review's when the manifest row carries one (`review`); else the offline description
    of what the image is: a product card when the offline renderer drew it, a photo otherwise."""
    image = product.get("image") or {}
    if not entry or not image.get("url"):
        return None
    review = entry.get("review")
    if isinstance(review, Mapping) and review.get("alt_text") and review.get("caption"):
        return str(review["alt_text"]), str(review["caption"])
    kind = "card" if is_offline_card(entry.get("model")) else "photo"
    return offline_description(product, kind)


def previous_vectors(linked: Iterable[Mapping[str, Any]] | None) -> dict[str, list[float]]:
    """Vectors of an earlier linked catalog by embedding fingerprint (text + model + size), to reuse."""
    found: dict[str, list[float]] = {}
    for row in linked or []:
        image = row.get("image") if isinstance(row, Mapping) else None
        if not isinstance(image, Mapping):
            continue
        fingerprint, vector = image.get("embedding_fingerprint"), image.get("vector_embedding")
        if isinstance(fingerprint, str) and _reusable(vector):
            found[fingerprint] = vector
    return found


def _reusable(vector: Any) -> bool:
    """`vector_problem(vector) is None`, in numpy: this runs over every product of every publish."""
    if not isinstance(vector, list) or len(vector) != EMBEDDING_DIMENSIONS:
        return False
    if not all(type(v) is float or type(v) is int for v in vector):
        return False
    array = np.asarray(vector, dtype=np.float64)
    if not np.isfinite(array).all():
        return False
    return abs(float(np.linalg.norm(array)) - 1.0) <= UNIT_NORM_TOLERANCE


@dataclass
class SearchFields:
    """What `add_search_fields` did: texts embedded now, vectors reused from the previous catalog."""

    embedded: int = 0
    reused: int = 0
    without_image: int = 0


def add_search_fields(
    linked: list[dict],
    manifest: Mapping[str, Mapping[str, Any]],
    embedder: TextEmbedder,
    previous: Mapping[str, list[float]] | None = None,
) -> SearchFields:
    """Fill `image.alt_text`, `image.vector_embedding`, `image.embedding_model` and
    `image.embedding_fingerprint` of every linked product with an image, in place. Texts whose fingerprint
    the previous catalog holds keep their vector; the rest are embedded in one `embed` call. A product
    without an image gets no alt text and no vector."""
    previous = previous or {}
    stats = SearchFields()
    pending: dict[str, list[dict]] = {}  # fingerprint -> images awaiting that text's vector
    texts: dict[str, str] = {}
    for product in linked:
        image = product["image"]
        for stale in ("vector_embedding", "embedding_model", "embedding_fingerprint"):
            image.pop(stale, None)
        described = describe_linked(product, manifest.get(product["id"]))
        if described is None:
            image["alt_text"] = None
            image["vector_embedding"] = None
            stats.without_image += 1
            continue
        alt, caption = described
        image["alt_text"] = alt
        text = embedding_text(caption=caption, alt_text=alt, name=str(product.get("name") or ""))
        fingerprint = text_fingerprint(text, embedder.model, embedder.dimensions)
        image["embedding_model"] = embedder.model
        image["embedding_fingerprint"] = fingerprint
        if fingerprint in previous:
            image["vector_embedding"] = previous[fingerprint]
            stats.reused += 1
            continue
        texts[fingerprint] = text
        pending.setdefault(fingerprint, []).append(image)
    if texts:
        order = list(texts)
        vectors = embedder.embed([texts[f] for f in order]).vectors
        for fingerprint, vector in zip(order, vectors, strict=True):
            floats = as_json_floats(vector)
            for image in pending[fingerprint]:
                image["vector_embedding"] = floats
        stats.embedded = len(order)
        stats.reused += sum(len(images) for images in pending.values()) - len(order)
    return stats
