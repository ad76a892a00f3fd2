"""The outcome record of one product: what a run did for it, where its image is, and the fields the batch
record keeps across runs. The one place that reads rows written before `calls_total` / `errors_total` existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from catalog_assets.resources.store import StoredObject

OUTCOMES = ("generated", "refined", "fallback", "failed", "skipped")


def image_key(product_id: str) -> str:
    return f"images/{product_id}.jpg"


def thumbnail_key(product_id: str) -> str:
    return f"thumbnails/{product_id}.jpg"


def calls_total(row: Mapping[str, Any]) -> int:
    """API calls made for the product over every run of its current prompt (older rows: `attempts`)."""
    return int(row.get("calls_total", row.get("attempts")) or 0)


def errors_total(row: Mapping[str, Any]) -> list[str]:
    """Error class of every failed call over every run of its current prompt (older rows: `errors`)."""
    return list(row.get("errors_total", row.get("errors")) or [])


@dataclass
class ProductResult:
    """The outcome of one product in one run; `row()` is what the batch record and manifest keep."""

    product_id: str
    outcome: str = "failed"
    source: str | None = None
    attempts: int = 0  # API calls made for this product in this run
    error_class: str | None = None
    message: str | None = None
    errors: list[str] = field(default_factory=list)  # error class of each failed call, in order
    key: str | None = None
    thumbnail_key: str | None = None
    sha256: str | None = None
    bytes: int = 0
    thumbnail_bytes: int = 0
    width: int | None = None
    height: int | None = None
    model: str | None = None
    prompt_fingerprint: str | None = None
    generated_at: str | None = None
    cost_usd: float = 0.0
    uploaded: bool = False
    replacing: bool = False  # an image of another prompt fingerprint was in the store and is replaced
    failed_runs: int = 0  # consecutive runs in which this product ended failed
    #: retakes made after review rejections (catalog_assets.retakes); kept in the image's metadata
    retakes: int = 0
    #: the fingerprint of the product's own prompt, without a retake's lines (equal to
    #: `prompt_fingerprint` for a first take)
    base_fingerprint: str | None = None
    #: delivery variants (catalog_assets.variants) and main-image figures (catalog_assets.image_figures)
    variants: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] | None = None

    def record_stored(
        self, image: StoredObject, thumb: StoredObject, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Outcome `skipped`: the product's image is in the store; its record comes from the object's metadata."""
        meta = image.metadata if metadata is None else metadata
        self.outcome, self.source = "skipped", meta.get("source", "generated")
        self.key, self.thumbnail_key = image.key, thumb.key
        self.sha256, self.bytes, self.thumbnail_bytes = image.sha256, image.size, thumb.size
        self.width = int(meta["width"]) if meta.get("width") else None
        self.height = int(meta["height"]) if meta.get("height") else None
        self.model, self.generated_at = meta.get("model"), meta.get("generated-at")
        self.cost_usd = float(meta.get("cost-usd") or 0.0)
        self.retakes = int(meta.get("retakes") or 0)
        self.base_fingerprint = meta.get("base-fingerprint") or meta.get("fingerprint")

    def row(self, prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The record kept for the product; calls and errors accumulate over runs of the same prompt."""
        row = asdict(self)
        prior = prior or {}
        same = prior.get("prompt_fingerprint") == self.prompt_fingerprint
        row["calls_total"] = (calls_total(prior) if same else 0) + self.attempts
        row["errors_total"] = (errors_total(prior) if same else []) + self.errors
        return row


def summarize(results: Sequence[ProductResult]) -> dict[str, Any]:
    """Outcome counts and failed calls by error class (a product that failed without a call counts once)."""
    counts = {o: 0 for o in OUTCOMES}
    errors: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
        for e in r.errors:
            errors[e] = errors.get(e, 0) + 1
        if r.outcome == "failed" and r.error_class and not r.errors:
            errors[r.error_class] = errors.get(r.error_class, 0) + 1
    return {"counts": counts, "errors": errors}
