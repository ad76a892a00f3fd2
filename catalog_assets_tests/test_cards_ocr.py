"""Proof by reading it back: cards of 252 bundled products (4 per subcategory, all 14 categories) are read
with tesseract; the name comes back, no text sits on decoration, and contrast measured from pixels is AA.
Contact sheets of every category go to catalog_assets_tests/artifacts/cards/."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from catalog_assets.cards import render_card
from catalog_assets.imaging import font
from catalog_assets_tests.card_support import (
    box_figures,
    layout_problems,
    levenshtein,
    name_region,
    normalise_text,
    ocr_names,
)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "cards"
PER_SUBCATEGORY = 4
SHEET_CELL = 256


def sample_products() -> list[dict]:
    rows = json.loads((REPO / "data" / "catalog.json").read_text())
    taken: dict[tuple[str, str], int] = defaultdict(int)
    chosen = []
    for row in sorted(rows, key=lambda r: r["id"]):
        key = (row["category"], row["subcategory"])
        if taken[key] < PER_SUBCATEGORY:
            taken[key] += 1
            chosen.append(row)
    return chosen


def contact_sheet(cards: list[tuple[str, Image.Image]], title: str, cols: int = 6) -> Image.Image:
    rows = (len(cards) + cols - 1) // cols
    head = 48
    sheet = Image.new("RGB", (cols * SHEET_CELL, head + rows * (SHEET_CELL + 22)), (232, 232, 228))
    draw = ImageDraw.Draw(sheet)
    draw.text((12, 12), title, font=font(24), fill=(20, 20, 24))
    for i, (caption, card) in enumerate(cards):
        x, y = (i % cols) * SHEET_CELL, head + (i // cols) * (SHEET_CELL + 22)
        sheet.paste(card.resize((SHEET_CELL - 8, SHEET_CELL - 8), Image.Resampling.LANCZOS), (x + 4, y + 4))
        draw.text((x + 6, y + SHEET_CELL - 2), caption[:34], font=font(14), fill=(40, 40, 44))
    return sheet


def test_names_read_back_by_ocr_no_text_on_decoration_and_aa_contrast() -> None:
    assert shutil.which("tesseract"), "tesseract-ocr is not installed (Debian: apt-get install tesseract-ocr)"
    products = sample_products()
    assert len(products) >= 200 and len({p["category"] for p in products}) == 14

    crops, expected, problems = [], [], []
    min_contrast, foreign_total = float("inf"), 0
    by_category: dict[str, list[tuple[str, Image.Image]]] = defaultdict(list)
    for product in products:
        img, layout = render_card(product)
        problems += [f"{product['id']}: {p}" for p in layout_problems(layout)]
        for text in layout.text:
            figures = box_figures(img, text)
            min_contrast = min(min_contrast, figures.contrast)
            foreign_total += figures.foreign_pixels
            if figures.foreign_pixels:
                problems.append(f"{product['id']}: {figures.foreign_pixels} decoration pixels in {text.role}")
        crop = img.crop(name_region(layout)).convert("L")
        crops.append(crop.resize((crop.width // 2, crop.height // 2), Image.Resampling.LANCZOS))
        expected.append(normalise_text(" ".join(layout.name_lines())))
        by_category[product["category"]].append((f"{product['id']} {layout.pictogram}", img))

    read = [normalise_text(text) for text in ocr_names(crops)]
    errors = sum(levenshtein(e, r) for e, r in zip(expected, read, strict=True))
    total = sum(max(len(e), len(r)) for e, r in zip(expected, read, strict=True))
    recovered = 1 - errors / total
    worst = sorted(zip(expected, read, strict=True), key=lambda er: -levenshtein(*er) / max(1, len(er[0])))[
        :3
    ]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for category, cards in by_category.items():
        slug = "".join(c if c.isalnum() else "-" for c in category.lower()).strip("-")
        contact_sheet(cards, category).save(ARTIFACTS / f"category-{slug}.png")
    contact_sheet(
        [(c, cards[0][1]) for c, cards in sorted(by_category.items())], "14 categories", cols=7
    ).save(ARTIFACTS / "categories.png")
    print(
        f"\ncards checked: {len(products)} ({len(by_category)} categories); characters recovered by OCR: "
        f"{recovered:.2%} ({total - errors}/{total}); min text contrast from pixels: {min_contrast:.2f}:1; "
        f"cards with text over decoration: {len({p.split(':')[0] for p in problems})}; worst reads: {worst}"
    )
    assert problems == [] and foreign_total == 0
    assert min_contrast >= 4.5
    assert recovered >= 0.95
