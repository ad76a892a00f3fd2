"""The linked catalog in the search demo's own forms: `s3_url_mapping.json`, the Elasticsearch index
mapping, the bulk NDJSON (streamed), a validator of that NDJSON against the mapping, and the `curl`
commands that load both into an Elasticsearch 8/9 cluster. Pure: files in, files out, no network.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog_assets.embeddings import EMBEDDING_DIMENSIONS, UNIT_NORM_TOLERANCE

INDEX_NAME = "products"
S3_URL_MAPPING_FILE = "s3_url_mapping.json"
INDEX_MAPPING_FILE = "es_mapping.json"
BULK_FILE = "products_bulk.ndjson"
MAX_PROBLEMS = 20  # a validation report lists this many problems, then counts the rest


def index_mapping(dimensions: int = EMBEDDING_DIMENSIONS) -> dict[str, Any]:
    """The create-index body (`PUT /<index>`): the demo's catalog fields typed, `image.vector_embedding` a
    cosine `dense_vector`. Fields not listed (extra catalog columns) are mapped dynamically."""
    keyword = {"type": "keyword"}
    return {
        "mappings": {
            "dynamic": True,
            "properties": {
                "id": keyword,
                "name": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                "description": {"type": "text"},
                "category": keyword,
                "subcategory": keyword,
                "price": {"type": "float"},
                "brand": keyword,
                "rating": {"type": "float"},
                "review_count": {"type": "integer"},
                "stock_status": keyword,
                # Attribute keys differ per product: one field for all of them, never a mapping explosion.
                "attributes": {"type": "flattened"},
                "image": {
                    "type": "object",
                    "properties": {
                        "url": keyword,
                        "alt_text": {"type": "text"},
                        "thumbnail_url": keyword,
                        "vector_embedding": {
                            "type": "dense_vector",
                            "dims": dimensions,
                            "similarity": "cosine",
                            "index": True,
                        },
                    },
                },
                "created_at": {"type": "date"},
                "updated_at": {"type": "date"},
            },
        }
    }


# -- writing ---------------------------------------------------------------------------------------------


def _atomic_write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write `lines` to `path` through a temporary file and a rename: a reader sees the old or the new
    file, never half of one. Returns the number of lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    count = 0
    with partial.open("w", encoding="utf-8", newline="\n") as out:
        for line in lines:
            out.write(line)
            out.write("\n")
            count += 1
    os.replace(partial, path)
    return count


def s3_url_mapping(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """`{"product_to_s3_url": {id: image.url}}`, the demo's `data/s3_url_mapping.json`; rows without an
    image URL are left out."""
    urls: dict[str, str] = {}
    for row in rows:
        image = row.get("image")
        url = image.get("url") if isinstance(image, Mapping) else None
        if isinstance(url, str) and url:
            urls[str(row["id"])] = url
    return {"product_to_s3_url": urls}


def write_s3_url_mapping(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write `s3_url_mapping.json`; returns the number of products in it."""
    mapping = s3_url_mapping(rows)
    text = json.dumps(mapping, indent=2, ensure_ascii=False)
    _atomic_write_lines(Path(path), [text])
    return len(mapping["product_to_s3_url"])


def write_index_mapping(path: str | os.PathLike[str], dimensions: int = EMBEDDING_DIMENSIONS) -> None:
    """Write the create-index body the README's first `curl` sends."""
    _atomic_write_lines(Path(path), [json.dumps(index_mapping(dimensions), indent=2)])


def bulk_lines(rows: Iterable[Mapping[str, Any]], index: str = INDEX_NAME) -> Iterator[str]:
    """The bulk NDJSON as lines, streamed: an `index` action (`_id` = product id), then the row itself,
    every field kept."""
    for row in rows:
        action = {"index": {"_index": index, "_id": str(row["id"])}}
        yield json.dumps(action, ensure_ascii=False, separators=(",", ":"))
        yield json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def write_bulk_ndjson(
    rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], index: str = INDEX_NAME
) -> int:
    """Write the bulk NDJSON (ends with a newline, as `_bulk` requires); returns the number of documents."""
    return _atomic_write_lines(Path(path), bulk_lines(rows, index)) // 2


def curl_commands(
    index: str = INDEX_NAME, mapping_file: str = INDEX_MAPPING_FILE, bulk_file: str = BULK_FILE
) -> str:
    """The two commands that load the export into Elasticsearch 8/9 (`ES_URL`, e.g. http://localhost:9200;
    a secured cluster also needs `-u elastic:$ELASTIC_PASSWORD --cacert http_ca.crt`). `_bulk` takes at
    most 100 MB per request by default: split larger files on an even line count."""
    return (
        f'curl -sS -X PUT "$ES_URL/{index}" -H "Content-Type: application/json" '
        f"--data-binary @{mapping_file}\n"
        f'curl -sS -X POST "$ES_URL/_bulk?refresh=wait_for" -H "Content-Type: application/x-ndjson" '
        f"--data-binary @{bulk_file}\n"
    )


# -- validating ------------------------------------------------------------------------------------------


class BulkFormatError(ValueError):
    """The bulk NDJSON does not match the index mapping."""


@dataclass
class BulkValidation:
    """What `validate_bulk_ndjson` found: documents read and the first problems (line number first)."""

    documents: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def raise_for_problems(self) -> None:
        if not self.ok:
            more = (
                f" (and {self.problem_count - len(self.problems)} more)"
                if self.problem_count > MAX_PROBLEMS
                else ""
            )
            raise BulkFormatError(
                f"{self.problem_count} problems in the bulk NDJSON: {self.problems[0]}{more}"
            )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _date(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True  # epoch_millis
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _scalar_leaves(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _scalar_leaves(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_scalar_leaves(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def field_problem(
    spec: Mapping[str, Any], value: Any, path: str, *, require_vector: bool = True
) -> list[str]:
    """Why `value` does not fit the mapping `spec` of field `path` (empty: it fits). Nulls are allowed
    (Elasticsearch indexes them as missing), except a required vector."""
    kind = spec.get("type", "object" if "properties" in spec else None)
    if value is None:
        return (
            [f"{path}: null, expected a {spec.get('dims')}-dim vector"]
            if kind == "dense_vector" and require_vector
            else []
        )
    if kind in ("keyword", "text"):
        return [] if isinstance(value, str) else [f"{path}: {type(value).__name__}, expected a string"]
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31
        return [] if ok else [f"{path}: {value!r:.40}, expected an integer"]
    if kind in ("float", "double", "half_float", "scaled_float"):
        return [] if _number(value) else [f"{path}: {value!r:.40}, expected a finite number"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: {value!r:.40}, expected true or false"]
    if kind == "date":
        return [] if _date(value) else [f"{path}: {value!r:.40}, expected an ISO-8601 date"]
    if kind == "flattened":
        ok = isinstance(value, Mapping) and _scalar_leaves(value)
        return [] if ok else [f"{path}: expected an object of plain values"]
    if kind == "dense_vector":
        return _vector_problems(spec, value, path)
    if kind == "object":
        if not isinstance(value, Mapping):
            return [f"{path}: {type(value).__name__}, expected an object"]
        found = []
        for key, sub in (spec.get("properties") or {}).items():
            if key in value:
                found += field_problem(sub, value[key], f"{path}.{key}", require_vector=require_vector)
            elif sub.get("type") == "dense_vector" and require_vector:
                found.append(f"{path}.{key}: missing")
        return found
    return []


def _vector_problems(spec: Mapping[str, Any], value: Any, path: str) -> list[str]:
    dims = spec.get("dims")
    if not isinstance(value, list):
        return [f"{path}: {type(value).__name__}, expected a list of {dims} floats"]
    if len(value) != dims:
        return [f"{path}: {len(value)} values, expected {dims}"]
    if not all(_number(v) for v in value):
        return [f"{path}: holds a value that is not a finite number"]
    norm = math.sqrt(math.fsum(v * v for v in value))
    if spec.get("similarity") == "cosine" and abs(norm - 1.0) > UNIT_NORM_TOLERANCE:
        return [f"{path}: norm {norm:.6f}, expected a unit vector"]
    return []


def validate_bulk_lines(
    lines: Iterable[str],
    mapping: Mapping[str, Any],
    *,
    index: str | None = INDEX_NAME,
    require_vector: bool = True,
) -> BulkValidation:
    """Check bulk NDJSON lines against `mapping` (the create-index body): every line parses, lines
    alternate `index` action / document, `_id` equals the document's `id`, every mapped field has its type
    (keyword/text strings, numbers numeric, dates ISO, vectors of `dims` unit floats)."""
    properties = (mapping.get("mappings") or mapping).get("properties") or {}
    result = BulkValidation()
    pending: tuple[int, str] | None = None  # (line number, _id) of the action awaiting its document
    number = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            result.add(f"line {number}: empty line")
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            result.add(f"line {number}: not JSON ({exc})")
            pending = None if pending else (number, "")  # keep the alternation in step
            continue
        if pending is None:
            action = item.get("index") if isinstance(item, dict) and len(item) == 1 else None
            if not isinstance(action, dict):
                result.add(f"line {number}: expected an index action, got {line[:60]!r}")
                pending = (number, "")
                continue
            if index is not None and action.get("_index") != index:
                result.add(f"line {number}: _index {action.get('_index')!r}, expected {index!r}")
            if not isinstance(action.get("_id"), str) or not action["_id"]:
                result.add(f"line {number}: the action has no _id")
            pending = (number, str(action.get("_id") or ""))
            continue
        action_line, doc_id = pending
        pending = None
        result.documents += 1
        if not isinstance(item, dict):
            result.add(f"line {number}: the document is a JSON {type(item).__name__}, expected an object")
            continue
        if doc_id and item.get("id") != doc_id:
            result.add(
                f"line {number}: document id {item.get('id')!r} differs from _id {doc_id!r} (line {action_line})"
            )
        where = f"line {number} ({item.get('id')})"
        for key, spec in properties.items():
            if key in item:
                for problem in field_problem(spec, item[key], key, require_vector=require_vector):
                    result.add(f"{where}: {problem}")
            elif key == "image" and require_vector:
                result.add(f"{where}: image: missing")
    if pending is not None:
        result.add(f"line {pending[0]}: an action without its document at the end of the file")
    if number == 0:
        result.add("the bulk file is empty")
    return result


def validate_bulk_ndjson(
    path: str | os.PathLike[str],
    mapping: Mapping[str, Any],
    *,
    index: str | None = INDEX_NAME,
    require_vector: bool = True,
) -> BulkValidation:
    """`validate_bulk_lines` over a file, read line by line; a missing final newline is a problem too
    (`_bulk` refuses it)."""
    where = Path(path)
    with where.open("r", encoding="utf-8", newline="") as handle:
        lines = (line.rstrip("\n") for line in handle)
        result = validate_bulk_lines(lines, mapping, index=index, require_vector=require_vector)
    with where.open("rb") as raw:
        raw.seek(0, os.SEEK_END)
        if raw.tell():
            raw.seek(-1, os.SEEK_END)
            if raw.read(1) != b"\n":
                result.add("the file does not end with a newline (_bulk needs one)")
    return result
