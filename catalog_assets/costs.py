"""Estimated price per image by model, quality and size, from the data file `image_prices.json`."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from catalog_assets.imaging import OFFLINE_MODEL

PRICES_FILE = "image_prices.json"
FREE_MODELS = frozenset({OFFLINE_MODEL})
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_SIZE = re.compile(r"(\d+)x(\d+)")


@lru_cache(maxsize=1)
def load_prices() -> dict[str, Any]:
    """The whole price table (`_note`, `_updated`, `models`), read once from the package data."""
    return json.loads(resources.files("catalog_assets").joinpath(PRICES_FILE).read_text(encoding="utf-8"))


def price_per_image(model: str, quality: str, size: str) -> float | None:
    """Estimated USD for one image; 0.0 for the offline renderer; None when the table has no estimate.

    `auto` quality or size is priced at the most expensive listed value (a budget guard must not
    under-count); a custom WIDTHxHEIGHT scales the 1024x1024 price by its pixel count, never below it."""
    if model in FREE_MODELS:
        return 0.0
    table = load_prices()["models"].get(model) or load_prices()["models"].get(_SNAPSHOT.sub("", model))
    if not table:
        return None
    qualities = list(table) if quality == "auto" else [quality]
    prices = [p for q in qualities if q in table and (p := _size_price(table[q], size)) is not None]
    return max(prices) if prices else None


def _size_price(sizes: dict[str, float], size: str) -> float | None:
    if size in sizes:
        return float(sizes[size])
    if size == "auto":
        return float(max(sizes.values()))
    match = _SIZE.fullmatch(size)
    if match and "1024x1024" in sizes:
        scale = max(1.0, int(match[1]) * int(match[2]) / 1024**2)
        return round(sizes["1024x1024"] * scale, 4)
    return None
