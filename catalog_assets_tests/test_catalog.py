"""Catalog parsing in all four formats, quarantine reasons, and stable batch assignment."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog_assets.catalog import (
    assign_batches,
    batch_number,
    id_problem,
    load_catalog,
    partition_key,
    products_by_batch,
    to_csv_text,
)
from catalog_assets.errors import CatalogError
from catalog_assets_tests.conftest import SAMPLE_CATALOG


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return json.loads(SAMPLE_CATALOG.read_text(encoding="utf-8"))


def test_the_sample_carries_the_real_catalogs_quirks(sample):
    """What the loader must survive, as the real catalog has it: the tests below load this file."""
    names = [p["name"] for p in sample]
    assert {"School Supplie", "Women'", "Men'", "Exercise & Fitnes"} <= set(names)  # a trailing "s" cut off
    assert "Men'" in {p["subcategory"] for p in sample}
    assert sum('"' in value for p in sample for value in p["attributes"].values()) >= 10  # 27" and 22" x 18"
    brands = {p["category"]: set() for p in sample}
    for p in sample:
        brands[p["category"]].add(p["brand"])
    assert "Kellogg's" in brands["Automotive"] and "Purina" in brands["Sports & Outdoors"]
    assert all(
        p["image"] == {"url": f"data/images/product_{p['id'][5:]}.jpg", "alt_text": f"Image of {p['name']}"}
        for p in sample
    )
    assert all(len(p["created_at"]) == len(p["updated_at"]) == 26 for p in sample)  # ISO with microseconds
    assert [p["id"] for p in sample] == [f"PROD-{n:06d}" for n in range(1, len(sample) + 1)]


def _write(path: Path, rows: list, fmt: str) -> Path:
    if fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        flat = [
            {**r, "attributes": json.dumps(r.get("attributes")), "image": json.dumps(r.get("image"))}
            for r in rows
        ]
        frame = pd.DataFrame(flat)
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "parquet"])
def test_every_format_loads_the_sample(tmp_path, sample, fmt):
    path = _write(tmp_path / f"catalog.{fmt}", sample, fmt)
    loaded = load_catalog(path)
    assert loaded.rows_read == len(sample) == 72
    assert loaded.quarantined == []
    assert [p["id"] for p in loaded.products] == [p["id"] for p in sample]
    first = loaded.products[0]
    assert first["name"] == "Ultra Stain Remover Laundry Pods"
    assert first["price"] == 17.49
    assert first["attributes"]["scent"] == "Spring Meadow"
    # inch marks and odd names of the real catalog survive every format
    assert {p["name"] for p in loaded.products} == {p["name"] for p in sample}
    by_id = {p["id"]: p for p in loaded.products}
    assert by_id["PROD-000004"]["attributes"]["screen_size"] == '27"'
    assert by_id["PROD-000007"]["attributes"]["dimensions"] == '22" x 18" x 24"'
    assert by_id["PROD-000005"]["name"] == "Women'" and by_id["PROD-000005"]["subcategory"] == "Women's"


def _good(pid: str, **over) -> dict:
    return {"id": pid, "name": f"Product {pid}", "price": 9.99, "attributes": {"color": "Red"}, **over}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"name": "No id"}, "missing id"),
        ({"id": "", "name": "Empty id"}, "missing id"),
        ({"id": None, "name": "Null id"}, "missing id"),
        ({"id": 17, "name": "Numeric id"}, "id must be a string"),
        ({"id": "../x", "name": "Traversal"}, "path separator"),
        ({"id": "a/b", "name": "Slash"}, "path separator"),
        ({"id": "a\\b", "name": "Backslash"}, "path separator"),
        ({"id": "PROD\x00-1", "name": "NUL"}, "control characters"),
        ({"id": "PROD-1\n", "name": "Newline"}, "control characters"),
        ({"id": "PR0D-\u0399", "name": "Look-alike"}, "non-ASCII"),
        ({"id": "P" * 10_000, "name": "Long"}, "characters long"),
        ({"id": ".hidden", "name": "Dot"}, "must be letters"),
        ({"id": "PROD-2"}, "missing name"),
        ({"id": "PROD-3", "name": "   "}, "missing name"),
        ({"id": "PROD-4", "name": ["list"]}, "name must be a string"),
        ({"id": "PROD-5", "name": '=HYPERLINK("http://x")'}, "formula"),
        ({"id": "PROD-6", "name": "Bad price", "price": "cheap"}, "non-numeric price"),
        ({"id": "PROD-7", "name": "NaN price", "price": float("nan")}, "non-numeric price"),
        ({"id": "PROD-8", "name": "Negative", "price": -1}, "negative price"),
        ({"id": "PROD-9", "name": "Attrs", "attributes": "red"}, "attributes must be an object"),
        ({"id": "PROD-10", "name": "Rating", "rating": "great"}, "non-numeric rating"),
        ({"id": "PROD-11", "name": "Brand", "brand": 42}, "brand must be text"),
        (42, "row is not an object"),
        ("PROD-12", "row is not an object"),
    ],
)
def test_bad_rows_are_quarantined_with_a_reason(tmp_path, row, reason):
    path = tmp_path / "c.json"
    path.write_text(json.dumps([_good("PROD-OK"), row]))
    loaded = load_catalog(path)
    assert [p["id"] for p in loaded.products] == ["PROD-OK"]
    assert len(loaded.quarantined) == 1
    assert reason in loaded.quarantined[0].reason
    assert loaded.quarantined[0].row == 2


def test_duplicate_ids_keep_the_first(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [_good("A"), _good("B"), _good("A", name="Second A")]))
    loaded = load_catalog(path)
    assert [p["name"] for p in loaded.products] == ["Product A", "Product B"]
    assert loaded.quarantined[0].reason == "duplicate id (first seen at row 1)"


def test_numeric_strings_and_defaults(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"id": "A", "name": "x", "price": "$12.50"}]))
    product = load_catalog(path).products[0]
    assert product["price"] == 12.5
    assert product["attributes"] == {} and product["description"] == ""


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (b'{"id": 1}', "expected a JSON array"),
        (b'[{"id": "A", "name": "x"}', "not parseable"),
        (b"[1, 2, 3]", "none of its 3 rows is valid"),
        (b"[]", "has no rows"),
        (b'["\xff\xfe"]', "not valid UTF-8"),
    ],
)
def test_unusable_files_fail_with_one_clear_error(tmp_path, content, problem):
    path = tmp_path / "catalog.json"
    path.write_bytes(content)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert problem in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(CatalogError, match="catalog file not found"):
        load_catalog(tmp_path / "nope.json")


def test_json_array_streams_across_chunk_boundaries(tmp_path, sample):
    from catalog_assets.catalog import _iter_json_array

    path = _write(tmp_path / "c.json", sample, "json")
    assert [r["id"] for r in _iter_json_array(path, chunk_size=7)] == [p["id"] for p in sample]
    path.write_text("[1.5, 22, 333 , 4e3]")
    assert list(_iter_json_array(path, chunk_size=2)) == [1.5, 22, 333, 4000.0]


@pytest.mark.parametrize("value", ["PROD-000001", "abc_DEF-9", "X"])
def test_safe_ids(value):
    assert id_problem(value) is None


def test_partition_keys():
    assert partition_key(7) == "batch-0007"
    assert batch_number("batch-0007") == 7
    with pytest.raises(ValueError):
        batch_number("batch-7,batch-8")


def test_csv_output_neutralises_formulas():
    text = to_csv_text([{"name": "=1+1", "note": "@SUM(A1)", "ok": "plain"}], ["name", "note", "ok"])
    assert "'=1+1" in text and "'@SUM(A1)" in text and ",plain" in text


# -- batch assignment --------------------------------------------------------------------------------


def test_assignment_fills_batches_of_at_most_the_size():
    ids = [f"P{i}" for i in range(250)]
    a = assign_batches(ids, batch_size=100)
    sizes = {b: list(a.values()).count(b) for b in set(a.values())}
    assert sizes == {0: 100, 1: 100, 2: 50}


def test_added_products_go_to_new_batches_and_nothing_moves():
    first = assign_batches([f"P{i}" for i in range(150)], batch_size=100)
    second = assign_batches([f"P{i}" for i in range(150)] + ["N1", "N2"], first, batch_size=100)
    assert {k: second[k] for k in first} == first
    assert second["N1"] == second["N2"] == 2  # a new batch, never a hole in batch 1


ids_strategy = st.lists(st.from_regex(r"P[0-9]{1,4}", fullmatch=True), unique=True, max_size=300)


@settings(max_examples=60, deadline=None)
@given(ids_strategy, ids_strategy, st.randoms(use_true_random=False), st.integers(1, 120))
def test_assignment_is_stable_under_add_remove_reorder(before, added, rnd, size):
    first = assign_batches(before, batch_size=size)
    kept = [i for i in before if rnd.random() < 0.7]  # remove some
    after_ids = kept + [i for i in added if i not in first]
    rnd.shuffle(after_ids)  # reorder
    second = assign_batches(after_ids, first, batch_size=size)
    for pid in kept:
        assert second[pid] == first[pid]
    counts: dict[int, int] = {}
    for b in second.values():
        counts[b] = counts.get(b, 0) + 1
    assert max(counts.values(), default=0) <= size
    new = [pid for pid in after_ids if pid not in first]
    assert all(second[pid] > max(first.values(), default=-1) for pid in new)
    # and a product that comes back returns to its old batch
    third = assign_batches(before, second, batch_size=size)
    assert all(third[pid] == first[pid] for pid in before)


def test_products_by_batch_groups_in_catalog_order():
    products = [{"id": "A"}, {"id": "B"}, {"id": "C"}]
    grouped = products_by_batch(products, {"A": 1, "B": 0, "C": 1})
    assert list(grouped) == [0, 1]
    assert [p["id"] for p in grouped[1]] == ["A", "C"]
