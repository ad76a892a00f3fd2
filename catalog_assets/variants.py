"""Delivery variants of each main image: WebP and AVIF at responsive widths under `variants/`, made from the
decoded image when it is stored, or from the stored JPEG's bytes when a product is skipped (no API call), and
written only when missing, like the main image. Each product's variant records go into its outcome row, from
which the manifest and the linked catalog's `srcset`-ready lists are built."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from PIL import Image

from catalog_assets import imaging
from catalog_assets.image_figures import ImageFigures, measure
from catalog_assets.resources.store import ImageStore, StoredObject


class VariantFormat(StrEnum):
    """A delivery format (an Enum, not a Literal: Dagster config accepts a list of these and refuses any other
    value before a run starts)."""

    webp = "webp"
    avif = "avif"


CONTENT_TYPES: dict[str, str] = {"webp": "image/webp", "avif": "image/avif"}
#: AVIF first: a `<picture>` lists the smallest format first and the browser takes the first it supports
SOURCE_ORDER = ("avif", "webp")
PREFIX = "variants/"

# The defaults keep a full run on the bundled catalog within its time on 2 cores: WebP at two widths adds
# about 36 ms of CPU per image, AVIF at the same widths about 40 ms more (AVIF is opt-in: `variant_formats:
# ["webp", "avif"]`); benchmarks/bench_pipeline.py measures each format and width.
DEFAULT_FORMATS: tuple[str, ...] = ("webp",)
DEFAULT_WIDTHS: tuple[int, ...] = (320, 640)

#: Pillow encoder options: quality for shop-grid images, effort chosen for encode time. Measured on bundled
#: cards at 640 px (process CPU per image): WebP method 2 10 ms / 11.9 kB against method 4 24 ms / 11.3 kB;
#: AVIF speed 9 14 ms / 12.4 kB against speed 8 47 ms / 9.6 kB.
ENCODE_OPTIONS: dict[str, dict[str, Any]] = {
    "webp": {"quality": 75, "method": 2},
    "avif": {"quality": 50, "speed": 9},
}


@dataclass(frozen=True)
class VariantSpec:
    """Which variants every product gets: each format at each width no wider than its main image."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    widths: tuple[int, ...] = DEFAULT_WIDTHS

    @classmethod
    def of(cls, formats: Iterable[str | VariantFormat], widths: Iterable[int]) -> VariantSpec:
        formats = tuple(dict.fromkeys(str(getattr(f, "value", f)) for f in formats))
        unknown = [f for f in formats if f not in CONTENT_TYPES]
        if unknown:
            raise ValueError(f"unknown variant format(s) {unknown}: choose from {sorted(CONTENT_TYPES)}")
        widths = tuple(sorted(set(widths)))
        if any(w < 16 or w > 4096 for w in widths):
            raise ValueError(f"variant widths must be 16..4096 px, got {list(widths)}")
        return cls(formats, widths)

    def planned(self, pid: str, source_width: int | None) -> list[tuple[str, str, int]]:
        """(key, format, width) of each variant for a main image this wide; never wider than the image."""
        if not source_width:
            return []
        return [
            (variant_key(pid, width, fmt), fmt, width)
            for width in self.widths
            if width <= source_width
            for fmt in self.formats
        ]


def variant_key(pid: str, width: int, fmt: str) -> str:
    return f"{PREFIX}{pid}-{width}.{fmt}"


def resized(image: Image.Image, width: int) -> Image.Image:
    """The image at `width` (never wider than it is), height in proportion. Bicubic: each step of the chain
    in `write_variants` shrinks by at most about 2x, where it is as sharp as Lanczos at two thirds the cost."""
    rgb = image.convert("RGB")
    if width >= rgb.width:
        return rgb
    height = max(1, round(rgb.height * width / rgb.width))
    return rgb.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=2.0)


def encode(image: Image.Image, fmt: str) -> bytes:
    """One variant's bytes from an image already at its width."""
    buf = io.BytesIO()
    image.save(buf, format=fmt.upper(), **ENCODE_OPTIONS[fmt])
    return buf.getvalue()


def _record(obj: StoredObject, fmt: str, width: int, height: int) -> dict[str, Any]:
    return {
        "key": obj.key,
        "format": fmt,
        "content_type": CONTENT_TYPES[fmt],
        "width": width,
        "height": height,
        "bytes": obj.size,
        "sha256": obj.sha256,
    }


def _metadata(pid: str, fp: str, source_sha256: str | None, width: int, height: int, figures) -> dict:
    meta = {"product-id": pid, "fingerprint": fp, "width": str(width), "height": str(height)}
    if source_sha256:
        meta["source-sha256"] = source_sha256
    return {**meta, **(figures.as_metadata() if figures else {})}


def write_variants(
    store: ImageStore,
    pid: str,
    fp: str,
    image: Image.Image,
    spec: VariantSpec,
    *,
    source_sha256: str | None = None,
    figures: ImageFigures | None = None,
    planned: Sequence[tuple[str, str, int]] | None = None,
    create_only: bool = False,
) -> list[dict[str, Any]]:
    """Encode and put the planned variants of `image` (all of the spec by default); returns their records."""
    planned = spec.planned(pid, image.width) if planned is None else planned
    records, sized = [], {}
    # widest first, each width shrunk from the next wider one: a chain of small steps costs less than
    # shrinking the full image for every width
    source = image
    for width in sorted({w for _, _, w in planned}, reverse=True):
        sized[width] = source = resized(source, width)
    for key, fmt, width in planned:
        small = sized[width]
        put = store.put(
            key,
            encode(small, fmt),
            content_type=CONTENT_TYPES[fmt],
            metadata=_metadata(pid, fp, source_sha256, small.width, small.height, figures),
            create_only=create_only,
        )
        records.append(_record(put.object, fmt, small.width, small.height))
    return records


def for_new_image(
    store: ImageStore, pid: str, fp: str, image: Image.Image, spec: VariantSpec, *, create_only: bool = False
) -> tuple[list[dict[str, Any]], ImageFigures]:
    """The variants and figures of an image about to be stored (written before the main image, so a main
    image in the store has its variants; a crash in between leaves variants a rerun rewrites or reuses)."""
    figures = measure(image)
    return write_variants(store, pid, fp, image, spec, figures=figures, create_only=create_only), figures


def new_image_metadata(figures: ImageFigures) -> dict[str, str]:
    """Metadata of the main image that carries its figures, so a skipped product needs no decode."""
    return figures.as_metadata()


def for_stored_image(store: ImageStore, result: Any, metadata: Mapping[str, str], spec: VariantSpec) -> None:
    """Skip path: the product's main image is stored (`result` records it). Reuse every variant that exists for
    this image and make the missing ones from the stored JPEG's bytes: no API call, nothing written twice.
    Sets `result.variants` and `result.figures`."""
    pid, fp = result.product_id, result.prompt_fingerprint or ""
    planned = spec.planned(pid, result.width)
    present, missing = [], []
    figures = ImageFigures.from_metadata(metadata)
    for key, fmt, width in planned:
        head = store.head(key)
        if (
            head is not None
            and head.metadata.get("fingerprint") == fp
            and head.metadata.get("source-sha256") in (None, result.sha256)
        ):
            present.append(
                _record(
                    head, fmt, int(head.metadata.get("width") or width), int(head.metadata.get("height") or 0)
                )
            )
            figures = figures or ImageFigures.from_metadata(head.metadata)
        else:
            missing.append((key, fmt, width))
    made: list[dict[str, Any]] = []
    if missing or figures is None:
        image = imaging.decode_image(store.get(result.key))
        figures = figures or measure(image)
        if missing:
            made = write_variants(
                store, pid, fp, image, spec, source_sha256=result.sha256, figures=figures, planned=missing
            )
    order = {key: i for i, (key, _, _) in enumerate(planned)}
    result.variants = sorted(present + made, key=lambda r: order[r["key"]])
    result.figures = figures.columns()


def srcset_entries(variants: Iterable[Mapping[str, Any]], url_of) -> list[dict[str, Any]]:
    """The linked catalog's `image.variants`: [{url, width, type}], smallest format first, narrowest first."""
    rank = {t: i for i, t in enumerate(CONTENT_TYPES[f] for f in SOURCE_ORDER)}
    entries = [
        {"url": url_of(v), "width": v["width"], "type": v["content_type"]}
        for v in variants
        if v.get("content_type") in rank
    ]
    return sorted(entries, key=lambda e: (rank[e["type"]], e["width"]))


def srcset_strings(entries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """One `srcset` attribute value per content type, e.g. {"image/webp": "a-320.webp 320w, a-640.webp 640w"}."""
    by_type: dict[str, list[str]] = {}
    for e in entries:
        by_type.setdefault(e["type"], []).append(f"{e['url']} {e['width']}w")
    return {t: ", ".join(parts) for t, parts in by_type.items()}
