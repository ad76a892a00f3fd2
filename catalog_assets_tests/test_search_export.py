"""The search demo's forms of the linked catalog: s3_url_mapping.json, the Elasticsearch mapping, the bulk
NDJSON, and the validator that refuses an NDJSON the mapping would not take."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from catalog_assets.catalog import load_catalog
from catalog_assets.embeddings import as_json_floats, embedding_text, hashing_embeddings
from catalog_assets.review import offline_description
from catalog_assets.search_export import (
    BULK_FILE,
    INDEX_MAPPING_FILE,
    INDEX_NAME,
    BulkFormatError,
    bulk_lines,
    curl_commands,
    index_mapping,
    s3_url_mapping,
    validate_bulk_lines,
    validate_bulk_ndjson,
    write_bulk_ndjson,
    write_index_mapping,
    write_s3_url_mapping,
)

BASE = "https://catalog-images.example.com/images"


@pytest.fixture(scope="module")
def linked() -> list[dict]:
    """Bundled catalog rows as the linked catalog holds them: image URL, offline alt text and vector."""
    rows = load_catalog("data/catalog.json").products[:40]
    texts = []
    for row in rows:
        alt, caption = offline_description(row, "card")
        row["image"] = {**row["image"], "url": f"{BASE}/{row['id']}.jpg", "alt_text": alt,
                        "thumbnail_url": f"{BASE}/{row['id']}-thumb.jpg"}  # fmt: skip
        texts.append(embedding_text(caption=caption, alt_text=alt, name=row["name"]))
    for row, vector in zip(rows, hashing_embeddings(texts), strict=True):
        row["image"]["vector_embedding"] = as_json_floats(vector)
    rows[0]["supplier"] = {"code": "S-1", "since": 2019}  # an extra column: kept as is
    return rows


def test_mapping_types_the_demo_fields() -> None:
    properties = index_mapping()["mappings"]["properties"]
    image = properties["image"]["properties"]
    assert image["url"] == {"type": "keyword"} and image["alt_text"] == {"type": "text"}
    assert image["vector_embedding"] == {
        "type": "dense_vector",
        "dims": 512,
        "similarity": "cosine",
        "index": True,
    }
    assert {k: v["type"] for k, v in properties.items() if k != "image"} == {
        "id": "keyword", "name": "text", "description": "text", "category": "keyword", "subcategory": "keyword",
        "price": "float", "brand": "keyword", "rating": "float", "review_count": "integer",
        "stock_status": "keyword", "attributes": "flattened", "created_at": "date", "updated_at": "date",
    }  # fmt: skip


def test_s3_url_mapping_is_in_the_demos_format(linked, tmp_path: Path) -> None:
    rows = [*linked[:3], {"id": "PROD-999999", "image": {"url": ""}}]  # no image yet: left out
    path = tmp_path / "s3_url_mapping.json"
    assert write_s3_url_mapping(rows, path) == 3
    written = json.loads(path.read_text())
    assert written == s3_url_mapping(rows)
    assert written == {"product_to_s3_url": {r["id"]: f"{BASE}/{r['id']}.jpg" for r in linked[:3]}}


def test_bulk_ndjson_alternates_and_validates_against_the_mapping(linked, tmp_path: Path) -> None:
    path = tmp_path / BULK_FILE
    assert write_bulk_ndjson(linked, path) == len(linked)
    raw = path.read_text()
    assert raw.endswith("\n") and not raw.endswith("\n\n")
    lines = raw.splitlines()
    assert len(lines) == 2 * len(linked)
    for action_line, doc_line, row in zip(lines[::2], lines[1::2], linked, strict=True):
        action, doc = json.loads(action_line), json.loads(doc_line)
        assert action == {"index": {"_index": INDEX_NAME, "_id": row["id"]}}
        assert doc == row  # every field of the input row kept, image filled
        assert len(doc["image"]["vector_embedding"]) == 512
    assert json.loads(lines[1])["supplier"] == {"code": "S-1", "since": 2019}
    result = validate_bulk_ndjson(path, index_mapping())
    assert result.ok and result.documents == len(linked), result.problems
    result.raise_for_problems()


def test_the_mapping_file_is_what_the_curl_command_sends(tmp_path: Path) -> None:
    path = tmp_path / INDEX_MAPPING_FILE
    write_index_mapping(path)
    assert json.loads(path.read_text()) == index_mapping()
    create, bulk = curl_commands().splitlines()
    assert (
        create.startswith('curl -sS -X PUT "$ES_URL/products"')
        and f"--data-binary @{INDEX_MAPPING_FILE}" in create
    )
    assert '"$ES_URL/_bulk' in bulk and "Content-Type: application/x-ndjson" in bulk
    assert f"--data-binary @{BULK_FILE}" in bulk  # --data-binary: -d would strip the newlines


def _broken(rows: list[dict], change) -> list[str]:
    rows = copy.deepcopy(rows[:3])
    change(rows)
    return list(bulk_lines(rows))


def _set(path: str, value):
    def change(rows):
        target = rows[1]
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [(_set("image.vector_embedding", [0.1] * 511), "image.vector_embedding: 511 values, expected 512"),
     (_set("image.vector_embedding", [0.5] + [0.0] * 511), "norm 0.500000, expected a unit vector"),
     (_set("image.vector_embedding", None), "image.vector_embedding: null"),
     (_set("image.vector_embedding", ["0.1"] * 512), "not a finite number"),
     (_set("price", "12.99"), "price: '12.99', expected a finite number"),
     (_set("review_count", 4.5), "review_count: 4.5, expected an integer"),
     (_set("created_at", "yesterday"), "created_at: 'yesterday', expected an ISO-8601 date"),
     (_set("brand", 42), "brand: int, expected a string"),
     (_set("image.url", ["a", "b"]), "image.url: list, expected a string"),
     (_set("attributes", "red"), "attributes: expected an object of plain values"),
     (_set("image", "https://x/1.jpg"), "image: str, expected an object")],
)  # fmt: skip
def test_a_broken_document_is_refused(linked, change, message: str) -> None:
    result = validate_bulk_lines(_broken(linked, change), index_mapping())
    assert not result.ok and any(message in p for p in result.problems), result.problems
    assert all(p.startswith("line 4") for p in result.problems)  # the second document, and only it
    with pytest.raises(BulkFormatError, match="1 problems"):
        result.raise_for_problems()


@pytest.mark.parametrize(
    ("edit", "message"),
    [(lambda lines: lines[:-1], "an action without its document"),
     (lambda lines: [lines[1], *lines], "expected an index action"),
     (lambda lines: [lines[0], "{not json", *lines[2:]], "not JSON"),
     (lambda lines: [lines[0], "", *lines[1:]], "empty line"),
     (lambda lines: [lines[0].replace(INDEX_NAME, "catalog"), *lines[1:]], "_index 'catalog'"),
     (lambda lines: [*lines[:2], lines[2].replace("PROD-000002", "PROD-XXXXXX"), *lines[3:]],
      "document id 'PROD-000002' differs from _id 'PROD-XXXXXX'"),
     (lambda lines: [], "the bulk file is empty")],
)  # fmt: skip
def test_a_broken_file_structure_is_refused(linked, edit, message: str) -> None:
    result = validate_bulk_lines(edit(list(bulk_lines(linked[:3]))), index_mapping())
    assert any(message in p for p in result.problems), result.problems


def test_a_file_without_a_final_newline_is_refused(linked, tmp_path: Path) -> None:
    path = tmp_path / "bulk.ndjson"
    path.write_text("\n".join(bulk_lines(linked[:2])))
    result = validate_bulk_ndjson(path, index_mapping())
    assert result.problems == ["the file does not end with a newline (_bulk needs one)"]


def test_validation_reports_a_bounded_list_and_counts_the_rest(linked) -> None:
    rows = copy.deepcopy(linked)
    for row in rows:
        row["price"] = "free"
    result = validate_bulk_lines(bulk_lines(rows), index_mapping())
    assert result.problem_count == len(rows) and len(result.problems) == 20
    with pytest.raises(BulkFormatError, match=f"{len(rows)} problems .* \\(and {len(rows) - 20} more\\)"):
        result.raise_for_problems()
