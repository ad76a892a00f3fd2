"""The bundled catalog, data/catalog.json: reproducible from its generator script, in the real catalog's schema."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from catalog_assets_tests.conftest import PROJECT, SAMPLE_CATALOG
from catalog_assets_tests.support import CATALOG_SCRIPT, catalog_generator

CATALOG = PROJECT / "data" / "catalog.json"

STOCK_STATUS = re.compile(r"In Stock|Out of Stock|Back Order|Low Stock \(Only \d+ left\)")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}")


@pytest.fixture(scope="module")
def catalog() -> list[dict[str, Any]]:
    return json.loads(CATALOG.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    """The test fixture in the real catalog's schema (its key order, types and image object)."""
    return json.loads(SAMPLE_CATALOG.read_text(encoding="utf-8"))


def run_script(*args: str) -> None:
    subprocess.run([sys.executable, str(CATALOG_SCRIPT), *args], cwd=PROJECT, check=True, timeout=120)


def test_bundled_catalog_is_exactly_what_the_script_generates(tmp_path: Path) -> None:
    regenerated = tmp_path / "catalog.json"
    run_script("--out", str(regenerated))
    assert regenerated.read_bytes() == CATALOG.read_bytes(), (
        "data/catalog.json differs from `python scripts/generate_catalog.py`: rerun it and commit the result"
    )


def test_ids_are_5000_unique_and_in_sequence(catalog: list[dict[str, Any]]) -> None:
    assert [product["id"] for product in catalog] == [f"PROD-{n:06d}" for n in range(1, 5001)]


def test_every_record_has_the_sample_keys_and_types(
    catalog: list[dict[str, Any]], sample: list[dict[str, Any]]
) -> None:
    keys = list(sample[0])
    assert all(list(product) == keys for product in sample), "the sample itself has one key order"
    types = {key: {type(product[key]) for product in sample} for key in keys}
    image_keys = set(sample[0]["image"])
    for product in catalog:
        assert list(product) == keys, product["id"]
        for key, value in product.items():
            assert type(value) in types[key], (product["id"], key, value)
        assert all(type(k) is str and type(v) is str and v for k, v in product["attributes"].items()), (
            product["id"]
        )
        assert set(product["image"]) == image_keys, product["id"]


def test_field_values_look_like_the_sample(catalog: list[dict[str, Any]]) -> None:
    for product in catalog:
        pid = product["id"]
        assert product["name"].strip() and product["description"].strip() and product["brand"], pid
        assert 1 <= product["description"].count(". ") + 1 <= 3, (pid, product["description"])
        assert product["price"] > 0 and round(product["price"], 2) == product["price"], pid
        assert 1.0 <= product["rating"] <= 5.0 and round(product["rating"], 1) == product["rating"], pid
        assert product["review_count"] >= 0, pid
        assert STOCK_STATUS.fullmatch(product["stock_status"]), (pid, product["stock_status"])
        assert product["image"] == {"url": "", "alt_text": f"Image of {product['name']}"}, pid
        assert TIMESTAMP.fullmatch(product["created_at"]) and TIMESTAMP.fullmatch(product["updated_at"]), pid
        assert datetime.fromisoformat(product["updated_at"]) > datetime.fromisoformat(
            product["created_at"]
        ), pid


def test_names_are_distinct_and_most_products_have_a_plain_colour(catalog: list[dict[str, Any]]) -> None:
    assert len({product["name"] for product in catalog}) == len(catalog)
    colours = [product["attributes"].get("color", "") for product in catalog]
    assert sum(bool(colour) for colour in colours) >= 0.9 * len(catalog)
    assert all(re.fullmatch(r"[A-Z][a-z]+( [A-Z][a-z]+)?", colour) for colour in colours if colour)


def test_catalog_spans_many_categories(catalog: list[dict[str, Any]]) -> None:
    categories = Counter(product["category"] for product in catalog)
    assert len(categories) >= 10, categories
    assert min(categories.values()) >= 25, categories
    assert len({(product["category"], product["subcategory"]) for product in catalog}) >= 40


@pytest.mark.parametrize(
    ("kind", "matches"),
    [
        ("laundry detergent", lambda p: "laundry detergent" in p["name"].lower()),
        ("hand soap", lambda p: "hand soap" in p["name"].lower()),
        ("kids' school supplies", lambda p: p["subcategory"] == "School Supplies"),
        ("computer monitors", lambda p: p["subcategory"] == "Monitors" and "monitor" in p["name"].lower()),
        (
            "anti-glare screen protectors",
            lambda p: (
                "anti-glare" in p["name"].lower() and p["attributes"].get("compatible_with") == "Monitors"
            ),
        ),
    ],
)
def test_demo_kinds_are_plentiful(catalog: list[dict[str, Any]], kind: str, matches: Any) -> None:
    found = [product for product in catalog if matches(product)]
    assert len(found) >= 100, f"only {len(found)} products of the demo kind {kind!r}"
    assert len({product["brand"] for product in found}) >= 5, kind


def test_a_smaller_catalog_is_a_prefix_and_the_seed_matters(catalog: list[dict[str, Any]]) -> None:
    gen = catalog_generator()
    assert list(gen.generate_products(100)) == catalog[:100]
    assert list(gen.generate_products(20, seed=1)) != list(gen.generate_products(20, seed=2))


@pytest.mark.parametrize("count", [0, 1, 250])
def test_json_writer_matches_json_dumps(tmp_path: Path, count: int) -> None:
    gen = catalog_generator()
    out = tmp_path / "catalog.json"
    gen.write_catalog(out, count=count, seed=7, fmt="json")
    expected = json.dumps(list(gen.generate_products(count, seed=7)), indent=2, ensure_ascii=False) + "\n"
    assert out.read_text(encoding="utf-8") == expected


def test_fast_dump_falls_back_to_json_dumps_for_other_shapes() -> None:
    odd = {
        "id": "x",
        "flag": True,
        "none": None,
        "list": [1, "a"],
        "nested": {"a": {"b": 1}},
        "empty": {},
        "é": "ü",
    }
    assert catalog_generator().dumps_indented(odd) == json.dumps(odd, indent=2, ensure_ascii=False)


def _read(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt == "csv":
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            row["price"], row["rating"], row["review_count"] = (
                float(row["price"]),
                float(row["rating"]),
                int(row["review_count"]),
            )
    else:
        rows = pd.read_parquet(path).to_dict(orient="records")
    for row in rows:
        row["attributes"], row["image"] = json.loads(row["attributes"]), json.loads(row["image"])
    return rows


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_other_formats_round_trip_the_same_rows(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"catalog.{fmt}"
    run_script("--count", "300", "--seed", "11", "--out", str(out))  # the format comes from the suffix
    assert _read(out, fmt) == list(catalog_generator().generate_products(300, seed=11))
