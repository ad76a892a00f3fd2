"""The offline product card: a calm, legible placeholder drawn from the product's own fields (no network).
Text sits in its own region on plain white; the pictogram, chosen from a category table, sits in a panel above.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from PIL import Image, ImageDraw

from catalog_assets.imaging import font

#: the model label stored with every card; a new label regenerates stored cards on purpose
OFFLINE_MODEL = "offline-card-v2"

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]

WHITE: RGB = (255, 255, 255)
INK: RGB = (44, 44, 52)
NAME_COLOUR: RGB = (26, 26, 30)
DETAIL_COLOUR: RGB = (72, 72, 80)
NOTE_COLOUR: RGB = (98, 98, 106)
PLACEHOLDER_NOTE = "Illustration - not a photo of the product"
ELLIPSIS = "\u2026"

# Longer phrases first, so that "navy blue" wins over "blue".
_NAMED_COLOURS: dict[str, RGB] = {
    "space gray": (110, 112, 118),
    "heather gray": (165, 165, 168),
    "navy blue": (30, 44, 96),
    "light blue": (150, 190, 228),
    "sky blue": (120, 180, 230),
    "royal blue": (40, 70, 180),
    "lime green": (140, 200, 60),
    "sage green": (150, 175, 140),
    "forest green": (40, 95, 55),
    "mint green": (160, 220, 190),
    "blush pink": (236, 180, 185),
    "rose gold": (215, 150, 140),
    "black": (35, 35, 38),
    "white": (246, 246, 244),
    "silver": (190, 192, 196),
    "gray": (128, 130, 134),
    "grey": (128, 130, 134),
    "red": (200, 40, 45),
    "blue": (40, 90, 190),
    "navy": (30, 44, 96),
    "green": (50, 140, 70),
    "yellow": (238, 200, 40),
    "orange": (235, 130, 30),
    "purple": (120, 60, 160),
    "pink": (232, 120, 160),
    "brown": (120, 80, 50),
    "beige": (218, 202, 172),
    "gold": (210, 170, 60),
    "teal": (30, 140, 140),
    "turquoise": (60, 190, 190),
    "tan": (200, 170, 120),
    "cream": (242, 232, 204),
    "charcoal": (60, 62, 66),
    "burgundy": (120, 30, 50),
    "olive": (110, 120, 50),
    "maroon": (110, 30, 40),
    "clear": (205, 228, 238),
    "transparent": (205, 228, 238),
    "rose": (220, 120, 140),
    "lavender": (180, 160, 220),
    "mint": (160, 220, 190),
    "coral": (240, 120, 100),
    "khaki": (190, 175, 130),
    "ivory": (245, 240, 225),
    "copper": (184, 115, 51),
    "terracotta": (200, 100, 70),
    "rainbow": (150, 90, 200),
}


@dataclass(frozen=True)
class TextBox:
    """One drawn line of text: its role (category, name, brand, colour, note), the text and its pixel box."""

    role: str
    text: str
    box: Box
    fill: RGB


@dataclass(frozen=True)
class CardLayout:
    """Where a card's text and decoration went: text boxes never meet a decoration box."""

    size: int
    pictogram: str
    text: tuple[TextBox, ...]
    decoration: tuple[Box, ...]

    def name_lines(self) -> list[str]:
        return [t.text for t in self.text if t.role == "name"]


# --- pictogram choice -------------------------------------------------------------------------------------


def normalise(label: str) -> str:
    """'Women's' → 'women', 'Patio, Lawn & Garden' → 'patio lawn and garden' (case, '&', apostrophes)."""
    text = label.casefold().replace("&", " and ")
    text = re.sub(r"['\u2019]s?\b|['\u2019]", "", text)
    return " ".join(re.findall(r"[a-z0-9]+", text))


@lru_cache(maxsize=1)
def _pictogram_table() -> dict[str, Any]:
    raw = json.loads(resources.files("catalog_assets").joinpath("pictograms.json").read_text("utf-8"))
    categories = {}
    for name, entry in raw["categories"].items():
        subs = {normalise(k): v for k, v in (entry.get("subcategories") or {}).items()}
        categories[normalise(name)] = {"default": entry["default"], "subcategories": subs}
    return {"neutral": raw["neutral"], "categories": categories}


def _head_words(name: str) -> list[str]:
    # the product noun stands before any ',', ' - ', 'with' or 'for' clause: "Wireless Earbuds with Deep Bass"
    head = re.split(r",| - | with | for ", f" {name} ", maxsplit=1)[0]
    return normalise(head).split()


def pictogram_for(product: Mapping[str, Any]) -> str:
    """The pictogram for a product: from its category/subcategory table entry, whole words only."""
    table = _pictogram_table()
    category = table["categories"].get(normalise(str(product.get("category") or "")))
    if category is None:
        return table["neutral"]
    entry = category["subcategories"].get(
        normalise(str(product.get("subcategory") or "")), category["default"]
    )
    if isinstance(entry, str):
        return entry
    words = entry.get("words") or {}
    for word in reversed(_head_words(str(product.get("name") or ""))):
        if word in words:
            return words[word]
    return entry["default"]


def table_pictograms() -> set[str]:
    """Every pictogram name the table can choose."""
    table = _pictogram_table()
    names = {table["neutral"]}
    for category in table["categories"].values():
        for entry in [category["default"], *category["subcategories"].values()]:
            if isinstance(entry, str):
                names.add(entry)
            else:
                names.add(entry["default"])
                names.update(entry.get("words", {}).values())
    return names


# --- colours ----------------------------------------------------------------------------------------------


def colour_label(product: Mapping[str, Any]) -> str:
    attrs = product.get("attributes")
    if not isinstance(attrs, Mapping):
        return ""
    value = attrs.get("color") or attrs.get("colour") or ""
    return " ".join(str(value).split())[:40] if isinstance(value, str | int | float) else ""


def named_colour(label: str) -> RGB | None:
    text = " " + " ".join(re.findall(r"[a-z]+", label.casefold())) + " "
    for phrase, rgb in _NAMED_COLOURS.items():
        if f" {phrase} " in text:
            return rgb
    return None


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0..255 channels)."""

    def lin(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _hsv(h: float, s: float, v: float) -> RGB:
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h % 1, s, v))  # type: ignore[return-value]


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _category_hue(category: str) -> float:
    return (_seed(normalise(category) or "-") % 1000) / 1000


def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(max(0, min(255, int(c * factor))) for c in rgb)  # type: ignore[return-value]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


# --- pictograms -------------------------------------------------------------------------------------------


class _Pen:
    """Draws on a 0..100 grid scaled to the canvas: flat shapes in the product colour with one ink outline."""

    def __init__(self, draw: ImageDraw.ImageDraw, px: int, main: RGB) -> None:
        self.d, self.k = draw, px / 100
        self.w = max(1, int(px * 0.028))
        self.colours = {
            "m": main,
            "d": _shade(main, 0.7),
            "l": _mix(main, WHITE, 0.55),
            "w": (250, 250, 248),
            "i": INK,
            "g": (150, 152, 158),
            "s": (176, 206, 232),  # screen glass, whatever the case colour
        }

    def _c(self, key: str | None) -> RGB | None:
        return None if key is None else self.colours[key]

    def _xy(self, *v: float) -> list[float]:
        return [c * self.k for c in v]

    def rect(self, x0: float, y0: float, x1: float, y1: float, r: float = 0, fill: str | None = "m") -> None:
        self.d.rounded_rectangle(
            self._xy(x0, y0, x1, y1), radius=r * self.k, fill=self._c(fill), outline=INK, width=self.w
        )

    def oval(self, x0: float, y0: float, x1: float, y1: float, fill: str | None = "m") -> None:
        self.d.ellipse(self._xy(x0, y0, x1, y1), fill=self._c(fill), outline=INK, width=self.w)

    def poly(self, pts: list[tuple[float, float]], fill: str | None = "m") -> None:
        flat = [(x * self.k, y * self.k) for x, y in pts]
        self.d.polygon(flat, fill=self._c(fill), outline=INK, width=self.w)

    def line(self, pts: list[tuple[float, float]], width: float = 0, fill: str = "i") -> None:
        w = int(width * self.k) if width else self.w
        self.d.line([(x * self.k, y * self.k) for x, y in pts], fill=self._c(fill), width=w, joint="curve")

    def arc(self, box: tuple[float, float, float, float], start: float, end: float, width: float = 0) -> None:
        w = int(width * self.k) if width else self.w
        self.d.arc(self._xy(*box), start, end, fill=INK, width=w)

    def dot(self, x: float, y: float, r: float, fill: str = "i") -> None:
        self.d.ellipse(self._xy(x - r, y - r, x + r, y + r), fill=self._c(fill))


def _tag(p: _Pen) -> None:
    p.poly([(18, 38), (40, 16), (84, 16), (84, 84), (40, 84), (18, 62)])
    p.oval(30, 44, 42, 56, fill="w")


def _box(p: _Pen) -> None:
    p.poly([(14, 34), (50, 20), (86, 34), (50, 48)], fill="l")
    p.poly([(14, 34), (50, 48), (50, 88), (14, 74)])
    p.poly([(86, 34), (50, 48), (50, 88), (86, 74)], fill="d")


def _car(p: _Pen) -> None:
    p.poly([(10, 66), (12, 50), (28, 46), (38, 30), (66, 30), (78, 46), (90, 50), (90, 66)])
    p.poly([(34, 46), (42, 35), (52, 35), (52, 46)], fill="w")
    p.poly([(56, 46), (56, 35), (64, 35), (72, 46)], fill="w")
    p.oval(20, 58, 38, 76, fill="i")
    p.oval(62, 58, 80, 76, fill="i")
    p.dot(29, 67, 3, "g")
    p.dot(71, 67, 3, "g")


def _tire(p: _Pen) -> None:
    p.oval(12, 12, 88, 88, fill="i")
    p.oval(32, 32, 68, 68, fill="m")
    p.oval(44, 44, 56, 56, fill="g")


def _jug(p: _Pen) -> None:
    p.rect(22, 30, 78, 90, 10)
    p.rect(30, 14, 48, 30, 3, fill="d")
    p.arc((48, 20, 86, 56), 270, 90, width=6)
    p.rect(32, 50, 68, 76, 5, fill="w")


def _wrench(p: _Pen) -> None:
    p.line([(24, 80), (62, 40)], width=14)
    p.line([(24, 80), (62, 40)], width=9, fill="m")
    p.oval(52, 12, 90, 50)
    p.poly([(66, 10), (78, 10), (78, 32), (66, 32)], fill="w")
    p.oval(16, 72, 30, 86, fill="m")


def _baby_bottle(p: _Pen) -> None:
    p.poly([(44, 8), (56, 8), (60, 22), (40, 22)], fill="l")
    p.rect(32, 22, 68, 32, 3, fill="d")
    p.rect(30, 32, 70, 90, 12, fill="w")
    p.rect(30, 52, 70, 90, 12)
    for y in (44, 58, 72):
        p.line([(30, y), (40, y)])


def _pump_bottle(p: _Pen) -> None:
    p.line([(50, 10), (72, 10), (76, 16)], width=6)
    p.rect(44, 10, 56, 28, 2, fill="g")
    p.rect(38, 26, 62, 36, 3, fill="d")
    p.rect(26, 36, 74, 90, 12)
    p.rect(34, 50, 66, 76, 4, fill="w")


def _lipstick(p: _Pen) -> None:
    p.poly([(40, 36), (40, 18), (60, 8), (60, 36)])
    p.rect(34, 36, 66, 52, 2, fill="g")
    p.rect(30, 52, 70, 90, 4, fill="i")


def _toothbrush(p: _Pen) -> None:
    p.line([(18, 86), (62, 34)], width=12)
    p.line([(18, 86), (62, 34)], width=7, fill="m")
    p.rect(54, 14, 78, 38, 4, fill="w")
    for x in (60, 66, 72):
        p.line([(x, 14), (x, 26)], width=3)


def _jar(p: _Pen) -> None:
    p.rect(22, 22, 78, 40, 4, fill="d")
    p.rect(18, 38, 82, 84, 12)
    p.rect(30, 50, 70, 72, 4, fill="w")


def _first_aid(p: _Pen) -> None:
    p.rect(38, 16, 62, 30, 4, fill=None)
    p.rect(12, 28, 88, 84, 10)
    p.rect(44, 40, 56, 74, 1, fill="w")
    p.rect(33, 51, 67, 63, 1, fill="w")


def _tshirt(p: _Pen) -> None:
    p.poly(
        [(36, 14), (12, 26), (20, 44), (30, 40), (30, 88), (70, 88), (70, 40), (80, 44), (88, 26), (64, 14)]
    )
    p.arc((38, 4, 62, 24), 20, 160)


def _jacket(p: _Pen) -> None:
    p.poly(
        [
            (36, 12),
            (16, 22),
            (10, 84),
            (22, 86),
            (28, 42),
            (28, 90),
            (72, 90),
            (72, 42),
            (78, 86),
            (90, 84),
            (84, 22),
            (64, 12),
        ]
    )
    p.poly([(36, 12), (50, 30), (64, 12)], fill="d")
    p.line([(50, 30), (50, 90)])


def _hat(p: _Pen) -> None:
    p.oval(42, 6, 58, 22, fill="l")
    p.poly([(18, 70), (18, 48), (30, 26), (50, 18), (70, 26), (82, 48), (82, 70)])
    p.rect(12, 64, 88, 86, 6, fill="d")


def _pants(p: _Pen) -> None:
    p.poly([(26, 10), (74, 10), (80, 90), (58, 90), (50, 36), (42, 90), (20, 90)])
    p.line([(26, 20), (74, 20)])


def _dress(p: _Pen) -> None:
    p.poly([(38, 10), (44, 10), (50, 18), (56, 10), (62, 10), (62, 34), (82, 90), (18, 90), (38, 34)])
    p.line([(38, 36), (62, 36)])


def _shoe(p: _Pen) -> None:
    p.poly([(12, 40), (30, 40), (42, 52), (70, 58), (88, 66), (88, 78), (12, 78)])
    p.rect(10, 74, 90, 84, 4, fill="w")
    for x in (28, 34, 40):
        p.line([(x, 44), (x + 6, 50)], width=3)


def _plug(p: _Pen) -> None:
    p.rect(36, 10, 42, 28, 1, fill="g")
    p.rect(58, 10, 64, 28, 1, fill="g")
    p.rect(28, 26, 72, 50, 8)
    p.poly([(34, 50), (66, 50), (56, 64), (44, 64)], fill="d")
    p.line([(50, 64), (50, 76), (30, 90)], width=5)


def _screen(p: _Pen) -> None:
    p.rect(16, 16, 78, 84, 4, fill="l")
    p.rect(24, 24, 86, 92, 4, fill="w")
    p.line([(36, 40), (54, 28)], width=4, fill="g")
    p.line([(36, 54), (66, 34)], width=4, fill="g")


def _mouse(p: _Pen) -> None:
    p.rect(28, 16, 72, 88, 22)
    p.line([(50, 16), (50, 42)])
    p.line([(28, 42), (72, 42)])


def _camera(p: _Pen) -> None:
    p.rect(34, 20, 56, 30, 3, fill="d")
    p.rect(12, 28, 88, 78, 10)
    p.oval(34, 36, 66, 68, fill="w")
    p.oval(42, 44, 58, 60, fill="i")


def _laptop(p: _Pen) -> None:
    p.rect(20, 18, 80, 64, 4)
    p.rect(25, 23, 75, 59, 1, fill="s")
    p.poly([(10, 72), (20, 64), (80, 64), (90, 72)], fill="g")
    p.rect(8, 72, 92, 80, 3, fill="g")


def _headphones(p: _Pen) -> None:
    p.arc((18, 14, 82, 78), 180, 360, width=8)
    p.line([(18, 46), (18, 58)], width=8)
    p.line([(82, 46), (82, 58)], width=8)
    p.rect(12, 50, 32, 84, 8)
    p.rect(68, 50, 88, 84, 8)


def _speaker(p: _Pen) -> None:
    p.rect(24, 10, 76, 90, 10)
    p.oval(38, 20, 62, 44, fill="d")
    p.oval(32, 50, 68, 86, fill="d")
    p.dot(50, 68, 5)


def _monitor(p: _Pen) -> None:
    p.rect(10, 14, 90, 66, 4)
    p.rect(15, 19, 85, 61, 1, fill="s")
    p.rect(44, 66, 56, 80, 0, fill="g")
    p.rect(30, 80, 70, 88, 3, fill="g")


def _tv(p: _Pen) -> None:
    p.rect(6, 20, 94, 74, 3)
    p.rect(11, 25, 89, 69, 1, fill="s")
    p.line([(20, 74), (14, 86)], width=5)
    p.line([(80, 74), (86, 86)], width=5)


def _router(p: _Pen) -> None:
    p.rect(12, 56, 88, 80, 6)
    p.line([(26, 56), (20, 24)], width=5)
    p.line([(74, 56), (80, 24)], width=5)
    for x in (30, 42, 54):
        p.dot(x, 68, 3, "w")
    for r in (10, 20):
        p.arc((50 - r, 42 - r, 50 + r, 42 + r), 225, 315, width=4)


def _phone(p: _Pen) -> None:
    p.rect(30, 8, 70, 92, 8)
    p.rect(34, 16, 66, 80, 2, fill="s")
    p.dot(50, 86, 3, "g")


def _drive(p: _Pen) -> None:
    p.rect(18, 12, 82, 88, 8)
    p.oval(32, 24, 68, 60, fill="l")
    p.dot(50, 42, 5)
    p.line([(50, 42), (64, 66)], width=4)
    p.dot(70, 78, 4, "w")


def _grocery_bag(p: _Pen) -> None:
    p.arc((34, 10, 66, 42), 180, 360, width=5)
    p.poly([(16, 28), (84, 28), (78, 90), (22, 90)])
    p.rect(34, 48, 66, 70, 4, fill="w")


def _cup(p: _Pen) -> None:
    p.arc((58, 36, 86, 66), 270, 90, width=7)
    p.poly([(18, 26), (72, 26), (66, 86), (24, 86)])
    p.rect(22, 44, 68, 60, 0, fill="w")
    for x in (36, 50):
        p.arc((x - 6, 6, x + 6, 22), 100, 260, width=3)


def _bowl(p: _Pen) -> None:
    p.poly([(10, 44), (90, 44), (80, 72), (64, 84), (36, 84), (20, 72)])
    p.rect(38, 84, 62, 90, 2, fill="d")
    for x, y in ((30, 38), (44, 34), (58, 38), (70, 34)):
        p.oval(x - 6, y - 5, x + 6, y + 5, fill="l")


def _can(p: _Pen) -> None:
    p.rect(24, 16, 76, 88, 6)
    p.oval(24, 10, 76, 24, fill="l")
    p.rect(24, 40, 76, 66, 0, fill="w")


def _carton(p: _Pen) -> None:
    p.poly([(28, 28), (50, 10), (72, 28)], fill="l")
    p.rect(28, 28, 72, 90, 2)
    p.rect(44, 6, 56, 14, 1, fill="d")
    p.rect(34, 44, 66, 70, 3, fill="w")


def _fish(p: _Pen) -> None:
    p.poly([(70, 50), (90, 30), (90, 70)], fill="d")
    p.oval(10, 28, 76, 72)
    p.dot(28, 46, 4)
    p.arc((38, 32, 62, 68), 300, 60, width=4)


def _apple(p: _Pen) -> None:
    p.oval(14, 26, 86, 92)
    p.line([(50, 30), (54, 12)], width=5)
    p.poly([(56, 18), (72, 8), (74, 20)], fill="d")


def _paper_roll(p: _Pen) -> None:
    p.rect(14, 22, 70, 82, 0, fill="w")
    p.oval(56, 22, 86, 82, fill="w")
    p.oval(64, 42, 78, 62, fill="g")
    p.rect(14, 82, 40, 90, 0, fill="w")
    p.line([(14, 22), (14, 90)])


def _house(p: _Pen) -> None:
    p.poly([(8, 50), (50, 12), (92, 50)], fill="d")
    p.rect(18, 46, 82, 90, 2)
    p.rect(42, 62, 58, 90, 2, fill="w")


def _kettle(p: _Pen) -> None:
    p.arc((28, 6, 72, 50), 200, 340, width=6)
    p.poly([(78, 52), (92, 36), (96, 42), (84, 64)], fill="d")
    p.poly([(24, 30), (76, 30), (84, 84), (16, 84)])
    p.rect(12, 84, 88, 92, 3, fill="i")


def _pan(p: _Pen) -> None:
    p.line([(60, 56), (94, 30)], width=9)
    p.oval(6, 34, 66, 82, fill="i")
    p.oval(12, 40, 60, 76)


def _towel(p: _Pen) -> None:
    p.rect(14, 14, 86, 28, 4, fill="g")
    p.rect(20, 24, 80, 90, 4)
    p.rect(20, 70, 80, 78, 0, fill="w")


def _bed(p: _Pen) -> None:
    p.rect(10, 20, 20, 88, 2, fill="d")
    p.rect(80, 44, 90, 88, 2, fill="d")
    p.rect(18, 50, 82, 74)
    p.rect(22, 38, 42, 52, 5, fill="w")


def _spray(p: _Pen) -> None:
    p.poly([(30, 14), (66, 14), (66, 30), (48, 30)], fill="d")
    p.line([(30, 18), (18, 24)], width=5)
    p.rect(36, 30, 56, 40, 2, fill="g")
    p.rect(28, 40, 68, 90, 10)
    p.rect(34, 54, 62, 76, 3, fill="w")


def _lamp(p: _Pen) -> None:
    p.poly([(30, 12), (70, 12), (84, 48), (16, 48)])
    p.line([(50, 48), (50, 80)], width=6)
    p.rect(30, 80, 70, 90, 4, fill="d")


def _clock(p: _Pen) -> None:
    p.oval(12, 12, 88, 88)
    p.oval(20, 20, 80, 80, fill="w")
    p.line([(50, 50), (50, 28)], width=5)
    p.line([(50, 50), (66, 58)], width=5)


def _plate(p: _Pen) -> None:
    p.oval(20, 14, 92, 86)
    p.oval(34, 28, 78, 72, fill="w")
    p.line([(10, 14), (10, 86)], width=5)
    p.line([(4, 16), (4, 36), (16, 36), (16, 16)], width=3)


def _chair(p: _Pen) -> None:
    p.rect(26, 10, 74, 52, 8)
    p.rect(20, 52, 80, 64, 4, fill="d")
    p.line([(28, 64), (24, 92)], width=6)
    p.line([(72, 64), (76, 92)], width=6)


def _pencil(p: _Pen) -> None:
    p.poly([(66, 12), (88, 34), (38, 84), (16, 62)])
    p.poly([(16, 62), (38, 84), (10, 92)], fill="w")
    p.poly([(12, 80), (20, 88), (10, 92)], fill="i")
    p.poly([(66, 12), (88, 34), (80, 42), (58, 20)], fill="g")


def _folder(p: _Pen) -> None:
    p.poly([(10, 22), (38, 22), (46, 30), (90, 30), (90, 84), (10, 84)], fill="d")
    p.rect(10, 38, 90, 84, 3)


def _calculator(p: _Pen) -> None:
    p.rect(22, 8, 78, 92, 8)
    p.rect(30, 16, 70, 34, 2, fill="w")
    for row in range(3):
        for col in range(3):
            x, y = 34 + col * 16, 46 + row * 15
            p.rect(x - 5, y - 4, x + 5, y + 6, 2, fill="w")


def _notebook(p: _Pen) -> None:
    p.rect(24, 10, 82, 90, 4)
    p.rect(40, 22, 72, 36, 2, fill="w")
    for y in range(18, 90, 12):
        p.oval(16, y - 3, 30, y + 3, fill=None)


def _backpack(p: _Pen) -> None:
    p.arc((34, 4, 66, 30), 180, 360, width=5)
    p.rect(20, 16, 80, 90, 16)
    p.rect(30, 56, 70, 84, 6, fill="d")
    p.line([(36, 64), (64, 64)], width=3)


def _plant(p: _Pen) -> None:
    p.poly([(50, 58), (30, 34), (34, 14), (50, 36)], fill="l")
    p.poly([(50, 58), (70, 34), (66, 14), (50, 36)], fill="l")
    p.poly([(50, 58), (24, 50), (14, 34), (40, 40)], fill="l")
    p.poly([(26, 58), (74, 58), (66, 90), (34, 90)])
    p.rect(22, 56, 78, 66, 2, fill="d")


def _birdhouse(p: _Pen) -> None:
    p.line([(50, 70), (50, 94)], width=6)
    p.poly([(12, 38), (50, 8), (88, 38)], fill="d")
    p.rect(22, 36, 78, 74, 2)
    p.oval(40, 44, 60, 64, fill="i")


def _paw(p: _Pen) -> None:
    p.oval(28, 46, 72, 86)
    p.oval(14, 34, 30, 54)
    p.oval(30, 16, 46, 40)
    p.oval(54, 16, 70, 40)
    p.oval(70, 34, 86, 54)


def _bone(p: _Pen) -> None:
    p.oval(8, 26, 28, 46)
    p.oval(8, 44, 28, 64)
    p.oval(72, 36, 92, 56)
    p.oval(72, 54, 92, 74)
    p.poly([(20, 40), (80, 50), (80, 62), (20, 52)])


def _bicycle(p: _Pen) -> None:
    p.oval(6, 48, 40, 82, fill=None)
    p.oval(60, 48, 94, 82, fill=None)
    p.line([(23, 65), (42, 40), (70, 40), (77, 65)], width=5, fill="m")
    p.line([(23, 65), (50, 65), (42, 40)], width=5, fill="m")
    p.line([(50, 65), (70, 40)], width=5, fill="m")
    p.line([(36, 32), (48, 32)], width=5)
    p.line([(70, 40), (66, 28), (76, 26)], width=5)


def _dumbbell(p: _Pen) -> None:
    p.line([(24, 50), (76, 50)], width=8, fill="g")
    p.rect(14, 26, 30, 74, 4)
    p.rect(70, 26, 86, 74, 4)
    p.rect(6, 34, 16, 66, 3, fill="d")
    p.rect(84, 34, 94, 66, 3, fill="d")


def _tent(p: _Pen) -> None:
    p.poly([(6, 86), (50, 14), (94, 86)])
    p.poly([(50, 36), (34, 86), (66, 86)], fill="d")
    p.line([(50, 14), (50, 6)], width=4)


def _ball(p: _Pen) -> None:
    p.oval(12, 12, 88, 88)
    p.arc((-14, 24, 40, 76), 300, 60, width=5)
    p.arc((60, 24, 114, 76), 120, 240, width=5)
    p.line([(50, 12), (50, 88)], width=4)


def _goggles(p: _Pen) -> None:
    p.line([(4, 50), (96, 50)], width=6, fill="i")
    p.rect(12, 32, 46, 68, 14)
    p.rect(54, 32, 88, 68, 14)
    p.rect(18, 38, 40, 62, 10, fill="l")
    p.rect(60, 38, 82, 62, 10, fill="l")


def _bulb(p: _Pen) -> None:
    p.oval(22, 8, 78, 64)
    p.rect(36, 58, 64, 80, 2, fill="g")
    p.line([(36, 66), (64, 66)], width=3)
    p.line([(36, 73), (64, 73)], width=3)
    p.rect(42, 80, 58, 90, 4, fill="i")


def _blocks(p: _Pen) -> None:
    p.rect(10, 54, 46, 90, 3)
    p.rect(54, 54, 90, 90, 3, fill="d")
    p.rect(32, 14, 68, 50, 3, fill="l")
    p.oval(42, 24, 58, 40, fill="w")


def _teddy(p: _Pen) -> None:
    p.oval(14, 12, 34, 32)
    p.oval(66, 12, 86, 32)
    p.oval(26, 50, 74, 92)
    p.oval(22, 16, 78, 64)
    p.oval(38, 38, 62, 58, fill="l")
    p.dot(40, 34, 3)
    p.dot(60, 34, 3)
    p.dot(50, 44, 4)


def _dice(p: _Pen) -> None:
    p.rect(14, 14, 86, 86, 14)
    for x, y in ((32, 32), (68, 32), (50, 50), (32, 68), (68, 68)):
        p.dot(x, y, 6, "w")


def _kite(p: _Pen) -> None:
    p.poly([(50, 6), (80, 40), (50, 74), (20, 40)])
    p.line([(50, 6), (50, 74)], width=3)
    p.line([(20, 40), (80, 40)], width=3)
    p.line([(50, 74), (40, 84), (54, 88), (44, 96)], width=4)


PICTOGRAMS: dict[str, Callable[[_Pen], None]] = {
    "tag": _tag,
    "box": _box,
    "car": _car,
    "tire": _tire,
    "jug": _jug,
    "wrench": _wrench,
    "baby_bottle": _baby_bottle,
    "pump_bottle": _pump_bottle,
    "lipstick": _lipstick,
    "toothbrush": _toothbrush,
    "jar": _jar,
    "first_aid": _first_aid,
    "tshirt": _tshirt,
    "jacket": _jacket,
    "hat": _hat,
    "pants": _pants,
    "dress": _dress,
    "shoe": _shoe,
    "plug": _plug,
    "screen": _screen,
    "mouse": _mouse,
    "camera": _camera,
    "laptop": _laptop,
    "headphones": _headphones,
    "speaker": _speaker,
    "monitor": _monitor,
    "tv": _tv,
    "router": _router,
    "phone": _phone,
    "drive": _drive,
    "grocery_bag": _grocery_bag,
    "cup": _cup,
    "bowl": _bowl,
    "can": _can,
    "carton": _carton,
    "fish": _fish,
    "apple": _apple,
    "paper_roll": _paper_roll,
    "house": _house,
    "kettle": _kettle,
    "pan": _pan,
    "towel": _towel,
    "bed": _bed,
    "spray": _spray,
    "lamp": _lamp,
    "clock": _clock,
    "plate": _plate,
    "chair": _chair,
    "pencil": _pencil,
    "folder": _folder,
    "calculator": _calculator,
    "notebook": _notebook,
    "backpack": _backpack,
    "plant": _plant,
    "birdhouse": _birdhouse,
    "paw": _paw,
    "bone": _bone,
    "bicycle": _bicycle,
    "dumbbell": _dumbbell,
    "tent": _tent,
    "ball": _ball,
    "goggles": _goggles,
    "bulb": _bulb,
    "blocks": _blocks,
    "teddy": _teddy,
    "dice": _dice,
    "kite": _kite,
}


@lru_cache(maxsize=512)
def _pictogram_image(name: str, colour: RGB, px: int) -> Image.Image:
    # drawn at twice the size and each 2x2 block averaged (alpha-weighted): Pillow's shapes are not
    # anti-aliased, and this smooths their edges at a quarter of the cost of a Lanczos resize
    big = Image.new("RGBA", (px * 2, px * 2), (0, 0, 0, 0))
    PICTOGRAMS.get(name, _tag)(_Pen(ImageDraw.Draw(big), px * 2, colour))
    return big.reduce(2)


# --- text layout ------------------------------------------------------------------------------------------


def _fit(text: str, fnt: Any, width: int) -> str:
    """The longest prefix of a single word that fits with an ellipsis."""
    while text and fnt.getlength(text + ELLIPSIS) > width:
        text = text[:-1]
    return text + ELLIPSIS


def shorten(text: str, fnt: Any, width: int, max_lines: int) -> list[str]:
    """Wrap text into at most max_lines lines of width px; what does not fit ends in an ellipsis at a word."""
    words = text.split()
    lines: list[str] = []
    i = 0
    while i < len(words) and len(lines) < max_lines:
        line = words[i]
        if fnt.getlength(line) > width:
            line = _fit(line, fnt, width)
        i += 1
        while i < len(words) and fnt.getlength(f"{line} {words[i]}") <= width:
            line = f"{line} {words[i]}"
            i += 1
        lines.append(line)
    if i < len(words) and lines:
        last = lines[-1].split()
        while last:
            candidate = " ".join(last).rstrip(",;:-–(/&") + ELLIPSIS
            if fnt.getlength(candidate) <= width and (len(last) > 1 or len(lines[-1].split()) == 1):
                break
            last.pop()
        lines[-1] = candidate if last else _fit(lines[-1], fnt, width)
    return lines


def _fonts(size: int) -> dict[str, Any]:
    return {
        "category": font(size // 40),
        "name": font(size // 16),
        "brand": font(size // 29),
        "colour": font(size // 32),
        "note": font(size // 46),
    }


def _accent(category: str) -> RGB:
    """A category's label colour: its hue, dark enough for 7:1 on white."""
    hue = _category_hue(category)
    value = 0.5
    colour = _hsv(hue, 0.7, value)
    while contrast_ratio(colour, WHITE) < 7 and value > 0.05:
        value -= 0.04
        colour = _hsv(hue, 0.7, value)
    return colour


def _stamp(text: str, px: int) -> tuple[Image.Image, Box]:
    """The anti-aliased coverage of one line of text and its box relative to the left/ascender anchor."""
    fnt = font(px)
    x0, y0, x1, y1 = fnt.getbbox(text, anchor="la")
    mask = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)), 0)
    ImageDraw.Draw(mask).text((-x0, -y0), text, font=fnt, fill=255, anchor="la")
    return mask, (x0, y0, x1, y1)


_cached_stamp = lru_cache(maxsize=512)(_stamp)


@lru_cache(maxsize=8)
def _corner(radius: int) -> Image.Image:
    """A mask that is set outside a quarter circle: it rounds the panel's top-left corner in white."""
    mask = Image.new("L", (radius, radius), 255)
    ImageDraw.Draw(mask).pieslice((0, 0, 2 * radius, 2 * radius), 180, 270, fill=0)
    return mask


#: the smallest edge the card is drawn at (its text stays legible and AA from here up); smaller cards are
#: drawn at this edge and scaled down
MIN_DRAWN_PX = 640


def render_card(product: Mapping[str, Any], size: int = 1024) -> tuple[Image.Image, CardLayout]:
    """Draw the card and return it with its layout (text boxes and decoration boxes, in pixels)."""
    if size < MIN_DRAWN_PX:
        img, layout = _draw_card(product, MIN_DRAWN_PX)
        scale = size / MIN_DRAWN_PX

        def scaled(box: Box) -> Box:
            return (
                math.floor(box[0] * scale),
                math.floor(box[1] * scale),
                math.ceil(box[2] * scale),
                math.ceil(box[3] * scale),
            )

        text = tuple(replace(t, box=scaled(t.box)) for t in layout.text)
        small = img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
        return small, CardLayout(size, layout.pictogram, text, tuple(scaled(d) for d in layout.decoration))
    return _draw_card(product, size)


def _draw_card(product: Mapping[str, Any], size: int) -> tuple[Image.Image, CardLayout]:
    pid = str(product.get("id") or "")
    name = " ".join(str(product.get("name") or pid or "Product").split())
    brand = " ".join(str(product.get("brand") or "").split())[:60]
    category = " ".join(str(product.get("category") or "").split())
    subcategory = " ".join(str(product.get("subcategory") or "").split())
    colour_text = colour_label(product)
    pictogram = pictogram_for(product)
    hue = _category_hue(category)
    rng = random.Random(_seed(pid + "|" + name))

    img = Image.new("RGB", (size, size), WHITE)
    draw = ImageDraw.Draw(img)
    margin = round(size * 0.05)
    panel = (margin, margin, size - margin, round(size * 0.58))
    tint = _hsv(hue, 0.035, 0.97)
    # Soft discs placed by the product id give each card its own coarse structure, so a perceptual-hash
    # duplicate check tells two products of one category apart; they stay inside the panel.
    panel_img = Image.new("RGB", (panel[2] - panel[0], panel[3] - panel[1]), tint)
    pdraw = ImageDraw.Draw(panel_img)
    pw, ph = panel_img.size
    for _ in range(8):
        r = rng.randint(size // 10, size // 4)
        cx, cy = rng.randint(0, pw), rng.randint(0, ph)
        disc = _hsv(hue, 0.03 + rng.random() * 0.06, 0.82 + rng.random() * 0.15)
        pdraw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=disc)
    img.paste(panel_img, panel[:2])
    corner = _corner(size // 30)
    for i, (x, y) in enumerate(
        ((panel[0], panel[1]), (panel[2], panel[1]), (panel[2], panel[3]), (panel[0], panel[3]))
    ):
        piece = corner.rotate(-90 * i)
        img.paste(WHITE, (x - piece.width * (i in (1, 2)), y - piece.height * (i in (2, 3))), piece)

    main = named_colour(colour_text) or _hsv(hue, 0.45, 0.8)
    icon_px = round(size * 0.36)
    icon = _pictogram_image(pictogram, main, icon_px)
    ix = (panel[0] + panel[2] - icon_px) // 2
    iy = (panel[1] + panel[3] - icon_px) // 2
    img.paste(icon, (ix, iy), icon)
    decoration: list[Box] = [panel]

    fonts = _fonts(size)
    text: list[TextBox] = []
    left, width = round(size * 0.07), round(size * 0.86)
    pad = max(2, size // 256)

    def put(role: str, line: str, x: int, y: int, fill: RGB) -> None:
        # names are nearly all unique; labels, brands, colours and the note repeat across a catalog
        mask, (x0, y0, x1, y1) = (_stamp if role == "name" else _cached_stamp)(line, fonts[role].size)
        img.paste(fill, (x + x0, y + y0), mask)
        text.append(TextBox(role, line, (x + x0 - pad, y + y0 - pad, x + x1 + pad, y + y1 + pad), fill))

    y = panel[3] + round(size * 0.035)
    label = " \u00b7 ".join(x for x in (category, subcategory) if x).upper()
    if label:
        put("category", shorten(label, fonts["category"], width, 1)[0], left, y, _accent(category))
        y += round(size * 0.045)
    line_height = round(size * 0.072)
    for line in shorten(name, fonts["name"], width, 2):
        put("name", line, left, y, NAME_COLOUR)
        y += line_height
    y += round(size * 0.012)
    if brand:
        put("brand", shorten(brand, fonts["brand"], width, 1)[0], left, y, DETAIL_COLOUR)
        y += round(size * 0.05)
    if colour_text:
        r = round(size * 0.014)
        cy = y + round(size * 0.017)
        swatch = (left, cy - r, left + 2 * r, cy + r)
        draw.ellipse(swatch, fill=main, outline=INK, width=max(1, size // 512))
        decoration.append(swatch)
        gap = left + 2 * r + round(size * 0.015)
        put("colour", shorten(colour_text, fonts["colour"], width - gap + left, 1)[0], gap, y, DETAIL_COLOUR)
    note_y = size - margin - round(size * 0.022)
    put("note", PLACEHOLDER_NOTE, left, note_y, NOTE_COLOUR)
    return img, CardLayout(size, pictogram, tuple(text), tuple(decoration))


def render_product_card(product: Mapping[str, Any], size: int = 1024) -> Image.Image:
    """A clean, deterministic product card drawn from the product's own fields (no network)."""
    return render_card(product, size)[0]
