"""The prompt (and so the fingerprint) never depends on the order of a product's keys."""

from __future__ import annotations

import itertools
import json

import pytest

from catalog_assets.prompts import build_prompt, fingerprint

ATTRIBUTES = {
    "wattage": "40 W",
    "color": "Brass",
    "bulb": "E27",
    "dimensions": {"width": '27"', "height": "40 cm"},
    "arm": "adjustable",
}


def product(attributes: dict) -> dict:
    return {"id": "PROD-000001", "name": "Desk Lamp", "category": "Home", "attributes": attributes}


@pytest.mark.parametrize("order", list(itertools.permutations(ATTRIBUTES))[::7])
def test_any_attribute_order_builds_the_prompt_of_the_key_sorted_copy(order: tuple[str, ...]) -> None:
    reordered = {k: ATTRIBUTES[k] for k in order}
    reordered["dimensions"] = dict(reversed(list(ATTRIBUTES["dimensions"].items())))
    # what a run reads: the batch file, written with sorted keys
    stored = json.loads(json.dumps(product(reordered), sort_keys=True))
    assert build_prompt(product(reordered)) == build_prompt(stored)
    fp = fingerprint(build_prompt(product(reordered)), "gpt-image-2", "1024x1024", "medium")
    assert fp == fingerprint(build_prompt(stored), "gpt-image-2", "1024x1024", "medium")


def test_key_sorted_attributes_keep_the_prompt_existing_stores_were_made_from() -> None:
    """Runs always read key-sorted products: their prompts, and so the stored fingerprints, stay the same."""
    stored = json.loads(json.dumps(product(ATTRIBUTES), sort_keys=True))
    assert (
        "Details: color: Brass; arm: adjustable; bulb: E27; dimensions: {'height': '40 cm', 'width': '27'"
        in (build_prompt(stored))
    )
