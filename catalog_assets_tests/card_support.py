"""Figures read off rendered product cards: contrast and foreign pixels inside each text box, OCR of the name
region, and character recovery (1 - normalised Levenshtein distance)."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from catalog_assets.cards import ELLIPSIS, CardLayout, TextBox

#: a pixel farther than this (RGB distance) from the line between background and ink is not text
FOREIGN_PIXEL_DISTANCE = 30.0


@dataclass(frozen=True)
class BoxFigures:
    contrast: float  # text core vs the least favourable background pixel around it
    foreign_pixels: int  # pixels that are neither background, ink nor a blend of the two
    background_spread: float  # largest RGB distance of a border pixel from the background median


def box_figures(img: Image.Image, text: TextBox) -> BoxFigures:
    """Measure one text box from pixels: its border ring is the background, its most distant pixels the ink."""
    x0, y0, x1, y1 = text.box
    px = np.asarray(img.convert("RGB").crop((x0, y0, x1, y1)), dtype=np.float64)
    ring = np.concatenate([px[0], px[-1], px[:, 0], px[:, -1]])
    bg = np.median(ring, axis=0)
    spread = float(np.max(np.linalg.norm(ring - bg, axis=1)))
    flat = px.reshape(-1, 3)
    dist = np.linalg.norm(flat - bg, axis=1)
    if dist.max() < 1:
        return BoxFigures(1.0, 0, spread)
    ink = np.median(flat[dist >= 0.6 * dist.max()], axis=0)
    # every text pixel lies on the segment background → ink (anti-aliasing blends the two)
    axis = ink - bg
    t = np.clip(((flat - bg) @ axis) / float(axis @ axis), 0, 1)
    residual = np.linalg.norm(flat - (bg + t[:, None] * axis), axis=1)
    foreign = int(np.count_nonzero(residual > FOREIGN_PIXEL_DISTANCE))
    ink_l, ring_l = luminance(ink[None, :])[0], luminance(ring)
    worst = float(np.min((np.maximum(ink_l, ring_l) + 0.05) / (np.minimum(ink_l, ring_l) + 0.05)))
    return BoxFigures(worst, foreign, spread)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG 2 relative luminance of rows of sRGB colours (0..255)."""
    c = rgb / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def boxes_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def layout_problems(layout: CardLayout) -> list[str]:
    """What is wrong with a layout: text over decoration, text over text, text off the card."""
    problems = []
    for t in layout.text:
        if min(t.box[:2]) < 0 or max(t.box[2:]) > layout.size:
            problems.append(f"{t.role} {t.text!r} leaves the card: {t.box}")
        problems += [
            f"{t.role} {t.text!r} over decoration {d}" for d in layout.decoration if boxes_overlap(t.box, d)
        ]
    for i, a in enumerate(layout.text):
        for b in layout.text[i + 1 :]:
            if boxes_overlap(a.box, b.box):
                problems.append(f"{a.role} {a.text!r} over {b.role} {b.text!r}")
    return problems


def name_region(layout: CardLayout, pad: int = 12) -> tuple[int, int, int, int]:
    boxes = [t.box for t in layout.text if t.role == "name"]
    return (
        min(b[0] for b in boxes) - pad,
        min(b[1] for b in boxes) - pad,
        max(b[2] for b in boxes) + pad,
        max(b[3] for b in boxes) + pad,
    )


def ocr_names(crops: Sequence[Image.Image]) -> list[str]:
    """OCR many name crops in one tesseract process (a list file: one page per image, split on form feed)."""
    import pytesseract

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, crop in enumerate(crops):
            path = Path(tmp) / f"{i:05d}.png"
            crop.save(path)
            paths.append(str(path))
        listing = Path(tmp) / "crops.txt"
        listing.write_text("\n".join(paths) + "\n")
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        text = pytesseract.image_to_string(str(listing), config="--psm 6")
    pages = text.split("\f")
    return [p.strip() for p in pages[: len(crops)]] + [""] * max(0, len(crops) - len(pages))


def normalise_text(text: str) -> str:
    text = text.replace(ELLIPSIS, "...").replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'")
    return re.sub(r"\s+", " ", text).strip()


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
