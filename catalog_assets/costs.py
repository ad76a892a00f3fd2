"""Estimated price per image by model, quality and size, from the data file `image_prices.json`."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from catalog_assets.cards import OFFLINE_MODEL

PRICES_FILE = "image_prices.json"
#: every version of the offline card renderer draws for free, not only the current one
FREE_MODEL_PREFIX = OFFLINE_MODEL.rsplit("-", 1)[0] + "-"
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_SIZE = re.compile(r"(\d+)x(\d+)")


@lru_cache(maxsize=1)
def load_prices() -> dict[str, Any]:
    """The whole price table (`_note`, `_updated`, `models`), read once from the package data."""
    return json.loads(resources.files("catalog_assets").joinpath(PRICES_FILE).read_text(encoding="utf-8"))


GenerationMode = Literal["sync", "batch"]


def batch_discount() -> float:
    """The factor the Batch API applies to the synchronous price (`_batch_discount` in the table)."""
    return float(load_prices().get("_batch_discount", 1.0))


def price_per_image(model: str, quality: str, size: str, mode: GenerationMode = "sync") -> float | None:
    """Estimated USD for one image; 0.0 for the offline renderer; None when the table has no estimate.
    `mode="batch"` is the Batch API's price: the synchronous one times `_batch_discount`.

    `auto` quality or size is priced at the most expensive listed value (a budget guard must not
    under-count); a custom WIDTHxHEIGHT scales the 1024x1024 price by its pixel count, never below it."""
    if model.startswith(FREE_MODEL_PREFIX):
        return 0.0
    table = load_prices()["models"].get(model) or load_prices()["models"].get(_SNAPSHOT.sub("", model))
    if not table:
        return None
    qualities = list(table) if quality == "auto" else [quality]
    prices = [p for q in qualities if q in table and (p := _size_price(table[q], size)) is not None]
    if not prices:
        return None
    return round(max(prices) * batch_discount(), 6) if mode == "batch" else max(prices)


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


def _token_row(table: str, model: str) -> dict[str, float] | None:
    rows = load_prices().get(table) or {}
    return rows.get(model) or rows.get(_SNAPSHOT.sub("", model))


def review_cost_usd(model: str, usage: dict[str, int] | None) -> float | None:
    """Estimated USD of one review from its token usage (`review_models`); 0.0 for an offline review (no
    usage), None when the table has no row for a paid model."""
    if not usage or not any(usage.values()):
        return 0.0
    row = _token_row("review_models", model)
    if row is None:
        return None
    cost = usage.get("input_tokens", 0) * row["input_per_1m"] + usage.get("output_tokens", 0) * row.get(
        "output_per_1m", 0.0
    )
    return round(cost / 1_000_000, 8)


def embedding_price_per_1m(model: str) -> float | None:
    """USD per 1M input tokens of an embedding model (`embedding_models`), None when not listed."""
    row = _token_row("embedding_models", model)
    return None if row is None else float(row["input_per_1m"])
