"""Main-image figures read from the pixels, as marketplaces judge a product photo: how white the background is
at the border (they ask for pure white, RGB 255), how much of the frame the product fills (about 85%), and
whether the image is square and at least 1000 px."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

#: marketplace guidance the figures are held to (the check and the report name them)
MIN_EDGE_PX = 1000
TARGET_FILL_SHARE = 0.85
#: a product "fills enough" of the frame at this share or more
MIN_FILL_SHARE = 0.80
#: share of border pixels that must be pure white (RGB 255, 255, 255) for a white background
MIN_BORDER_WHITE_SHARE = 0.98
#: the border ring is this share of the shorter edge wide (at least one pixel)
BORDER_SHARE = 0.01
#: a pixel belongs to the background when every channel is within this of the background colour
BACKGROUND_TOLERANCE = 24
#: the fill share is measured on the image shrunk to about this edge (a bounding box needs no more)
FILL_MEASURE_PX = 256

FIGURE_COLUMNS = ["border_mean", "border_min", "border_white_share", "fill_share", "square", "min_edge_ok"]


@dataclass(frozen=True)
class ImageFigures:
    width: int
    height: int
    #: mean of every channel value of the border ring's pixels (255: white)
    border_mean: float
    #: the smallest channel value in the border ring (255: every border pixel is pure white)
    border_min: int
    #: share of border pixels that are exactly RGB 255, 255, 255
    border_white_share: float
    #: bounding box of the non-background pixels over the frame's area (background: the border's colour)
    fill_share: float

    @property
    def square(self) -> bool:
        return self.width == self.height

    @property
    def min_edge_ok(self) -> bool:
        return min(self.width, self.height) >= MIN_EDGE_PX

    def columns(self) -> dict[str, Any]:
        """The manifest's figure columns."""
        return {
            "border_mean": self.border_mean,
            "border_min": self.border_min,
            "border_white_share": self.border_white_share,
            "fill_share": self.fill_share,
            "square": self.square,
            "min_edge_ok": self.min_edge_ok,
        }

    def as_metadata(self) -> dict[str, str]:
        """Object metadata (S3-safe keys and values), so a rerun reads the figures instead of decoding."""
        return {f"fig-{k.replace('_', '-')}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ImageFigures | None:
        try:
            return cls(
                width=int(metadata["fig-width"]),
                height=int(metadata["fig-height"]),
                border_mean=float(metadata["fig-border-mean"]),
                border_min=int(metadata["fig-border-min"]),
                border_white_share=float(metadata["fig-border-white-share"]),
                fill_share=float(metadata["fig-fill-share"]),
            )
        except (KeyError, ValueError):
            return None


def misses(figures: Mapping[str, Any]) -> list[str]:
    """What a product's figure columns miss of the marketplace guidance, in words (empty: nothing)."""
    missed = []
    if figures.get("border_white_share") is None:
        return ["no figures recorded"]
    if figures["border_white_share"] < MIN_BORDER_WHITE_SHARE:
        missed.append(
            f"background not pure white ({figures['border_white_share'] * 100:.0f}% of border pixels are RGB 255)"
        )
    if figures["fill_share"] < MIN_FILL_SHARE:
        missed.append(f"product fills {figures['fill_share'] * 100:.0f}% of the frame")
    if not figures.get("square"):
        missed.append("not square")
    if not figures.get("min_edge_ok"):
        missed.append(f"smaller than {MIN_EDGE_PX} px")
    return missed


def _pixels(image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    """The (rows, cols, 3) pixels of one region: regions, not the whole frame, are copied out of Pillow."""
    return np.asarray(image.crop(box))


def measure(image: Image.Image) -> ImageFigures:
    """The figures of one image (any mode; transparency counts as white, as a page shows it)."""
    rgb = _rgb(image)
    width, height = rgb.size
    ring = max(1, round(min(width, height) * BORDER_SHARE))
    if 2 * ring >= min(width, height):
        ring = max(1, min(width, height) // 4)
    border = np.concatenate(
        [
            _pixels(rgb, (0, 0, width, ring)).reshape(-1, 3),
            _pixels(rgb, (0, height - ring, width, height)).reshape(-1, 3),
            _pixels(rgb, (0, ring, ring, height - ring)).reshape(-1, 3),
            _pixels(rgb, (width - ring, ring, width, height - ring)).reshape(-1, 3),
        ]
    )
    white = np.all(border == 255, axis=1)
    return ImageFigures(
        width=width,
        height=height,
        border_mean=round(float(border.mean()), 2),
        border_min=int(border.min()),
        border_white_share=round(float(white.mean()), 4),
        fill_share=round(_fill_share(rgb, np.median(border, axis=0)), 4),
    )


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "P") and (image.mode != "P" or "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _fill_share(rgb: Image.Image, background: np.ndarray) -> float:
    """Bounding box found on the image shrunk by `factor`, then its four edges refined at full resolution
    within their boundary blocks (exact to the pixel, at a fraction of a full-size pass)."""
    bg = background.astype(np.int16)

    def foreground(pixels: np.ndarray) -> np.ndarray:
        return np.any(np.abs(pixels.astype(np.int16) - bg) > BACKGROUND_TOLERANCE, axis=-1)

    factor = max(1, min(rgb.size) // FILL_MEASURE_PX)
    small = foreground(np.asarray(rgb.reduce(factor) if factor > 1 else rgb))
    rows, cols = np.flatnonzero(small.any(axis=1)), np.flatnonzero(small.any(axis=0))
    if not len(rows):
        return 0.0
    width, height = rgb.size
    top, bottom = int(rows[0]) * factor, min(height, (int(rows[-1]) + 1) * factor) - 1
    left, right = int(cols[0]) * factor, min(width, (int(cols[-1]) + 1) * factor) - 1
    if factor > 1:
        hits = np.flatnonzero(foreground(_pixels(rgb, (left, top, right + 1, top + factor))).any(axis=1))
        top += int(hits[0]) if len(hits) else 0
        start = max(top, bottom - factor + 1)
        hits = np.flatnonzero(foreground(_pixels(rgb, (left, start, right + 1, bottom + 1))).any(axis=1))
        bottom = start + int(hits[-1]) if len(hits) else bottom
        hits = np.flatnonzero(foreground(_pixels(rgb, (left, top, left + factor, bottom + 1))).any(axis=0))
        left += int(hits[0]) if len(hits) else 0
        start = max(left, right - factor + 1)
        hits = np.flatnonzero(foreground(_pixels(rgb, (start, top, right + 1, bottom + 1))).any(axis=0))
        right = start + int(hits[-1]) if len(hits) else right
    return float((bottom - top + 1) * (right - left + 1)) / (height * width)


@dataclass(frozen=True)
class FiguresSummary:
    """The figures of a set of manifest rows, and the products that miss the guidance (with what they miss)."""

    images: int
    measured: int
    mean_border_white_share: float | None
    mean_fill_share: float | None
    white_background: int
    filled: int
    square_and_large: int
    missing: dict[str, list[str]]

    def lines(self, cards: int = 0) -> list[str]:
        """A few sentences for the report; `cards` offline cards were left out (placeholders, not judged)."""
        left_out = (
            [f"offline cards (placeholders, figures recorded but not judged): {cards:,}"] if cards else []
        )
        if not self.images:
            return left_out or ["No stored images to measure."]
        if not self.measured:
            return [
                f"No figures recorded for the {self.images:,} stored images (they were stored before figures).",
                *left_out,
            ]
        n = self.measured
        return [
            *left_out,
            f"pure white background (≥ {MIN_BORDER_WHITE_SHARE * 100:.0f}% of border pixels RGB 255): "
            f"{self.white_background:,} of {n:,} product photos (mean {self.mean_border_white_share * 100:.1f}% white)",
            f"product fills ≥ {MIN_FILL_SHARE * 100:.0f}% of the frame (marketplaces ask ~{TARGET_FILL_SHARE * 100:.0f}%): "
            f"{self.filled:,} of {n:,} (mean fill {self.mean_fill_share * 100:.1f}%)",
            f"square and ≥ {MIN_EDGE_PX} px: {self.square_and_large:,} of {n:,}",
            f"images that miss at least one: {len(self.missing):,} of {self.images:,}",
        ]


def photos_and_cards(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Manifest rows split into product photos (judged by the guidance) and offline cards. A card is a labelled
    placeholder with its own layout (text below a pictogram panel): its figures are recorded, not judged."""
    from catalog_assets.costs import FREE_MODEL_PREFIX  # costs -> cards -> imaging: no cycle at import

    photos, cards = [], []
    for row in rows:
        (cards if str(row.get("model") or "").startswith(FREE_MODEL_PREFIX) else photos).append(row)
    return photos, cards


def summarize(rows: Sequence[Mapping[str, Any]]) -> FiguresSummary:
    measured = [r for r in rows if r.get("border_white_share") is not None]
    return FiguresSummary(
        images=len(rows),
        measured=len(measured),
        mean_border_white_share=(
            round(sum(r["border_white_share"] for r in measured) / len(measured), 4) if measured else None
        ),
        mean_fill_share=round(sum(r["fill_share"] for r in measured) / len(measured), 4)
        if measured
        else None,
        white_background=sum(r["border_white_share"] >= MIN_BORDER_WHITE_SHARE for r in measured),
        filled=sum(r["fill_share"] >= MIN_FILL_SHARE for r in measured),
        square_and_large=sum(bool(r.get("square")) and bool(r.get("min_edge_ok")) for r in measured),
        missing={str(r["product_id"]): m for r in rows if (m := misses(r))},
    )
