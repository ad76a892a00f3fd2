"""Catalog loading, row validation and stable batch assignment (pure logic, no Dagster).

Rows that cannot be used are quarantined with a reason, never dropped silently. A product id ends up in
file and object names, so only ids matching `SAFE_ID` pass.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog_assets.errors import CatalogError

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 300
MAX_TEXT_FIELD = 2_000_000  # a 1 MB description is odd but usable; the prompt keeps only its start
BATCH_SIZE = 100
FORMATS = ("json", "jsonl", "csv", "parquet")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_FIELDS = ("description", "category", "subcategory", "brand", "stock_status")


@dataclass(frozen=True)
class QuarantinedRow:
    row: int  # 1-based position in the file
    product_id: str  # printable, truncated rendering of whatever the id was
    reason: str


@dataclass
class CatalogLoad:
    products: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    rows_read: int = 0


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise CatalogError(f"{path}: unknown catalog format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    return {"ndjson": "jsonl", "jsonlines": "jsonl", "pq": "parquet"}.get(
        suffix, suffix if suffix in FORMATS else "json"
    )


def _iter_json_array(path: Path, chunk_size: int = 1 << 20) -> Iterator[Any]:
    """Stream the elements of a top-level JSON array without holding the whole text or list in memory."""
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8") as f:
        buf, pos, eof = "", 0, False

        def fill() -> None:
            nonlocal buf, pos, eof
            more = f.read(chunk_size)
            eof = not more
            buf, pos = buf[pos:] + more, 0

        def skip_ws() -> None:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n\ufeff":
                    pos += 1
                if pos < len(buf) or eof:
                    return
                fill()

        skip_ws()
        if pos >= len(buf):
            raise CatalogError(f"{path}: the file is empty")
        if buf[pos] != "[":
            raise CatalogError(
                f"{path}: expected a JSON array of product objects, found {buf[pos]!r} at the start"
            )
        pos += 1
        first = True
        while True:
            skip_ws()
            if pos >= len(buf):
                raise CatalogError(f"{path}: not parseable: the JSON array is not closed")
            if buf[pos] == "]":
                pos += 1
                skip_ws()
                if pos < len(buf):
                    raise CatalogError(f"{path}: not parseable: unexpected data after the closing ']'")
                return
            if not first:
                if buf[pos] != ",":
                    raise CatalogError(f"{path}: not parseable: expected ',' between array elements")
                pos += 1
                skip_ws()
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    if eof:
                        raise CatalogError(f"{path}: not parseable JSON: {exc.msg}") from None
                    fill()
                    continue
                if (
                    len(buf) - end < 64 and not eof
                ):  # a number near the buffer's end may go on in the next chunk
                    fill()
                    continue
                break
            yield value
            pos, first = end, False


def _iter_jsonl(path: Path) -> Iterator[Any]:
    with path.open("r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                yield _Unparseable(f"line {lineno} is not valid JSON: {exc.msg}")


class _Unparseable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _nested(value: Any) -> Any:
    """CSV and Parquet carry attributes/image as JSON text; give them back their structure."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _iter_csv(path: Path) -> Iterator[Any]:
    with path.open("r", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return
        for row in reader:
            yield {k: _nested(v) if v != "" else None for k, v in row.items() if k is not None}


def _iter_parquet(path: Path) -> Iterator[Any]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise CatalogError(f"{path}: not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    for batch in pf.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            yield {k: _nested(v) for k, v in row.items()}


def iter_rows(path: str | Path, fmt: str | None = None) -> Iterator[Any]:
    """Raw rows of a catalog file, streamed. Raises CatalogError for a missing, empty or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: catalog file not found")
    if path.stat().st_size == 0:
        raise CatalogError(f"{path}: the file is empty")
    fmt = detect_format(path, fmt)
    readers = {"json": _iter_json_array, "jsonl": _iter_jsonl, "csv": _iter_csv, "parquet": _iter_parquet}
    try:
        yield from readers[fmt](path)
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not valid UTF-8 (byte {exc.start}); save the catalog as UTF-8") from None
    except csv.Error as exc:
        raise CatalogError(f"{path}: not parseable CSV: {exc}") from None


def printable_id(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + f"…(+{len(text) - limit} chars)"


def id_problem(value: Any) -> str | None:
    """Why a value cannot be a product id, or None when it can."""
    if value is None or value == "":
        return "missing id"
    if not isinstance(value, str):
        return f"id must be a string, got {type(value).__name__}"
    if len(value) > MAX_ID_LENGTH:
        return f"id is {len(value)} characters long (at most {MAX_ID_LENGTH})"
    if _CONTROL.search(value):
        return "id contains control characters"
    if "/" in value or "\\" in value or ".." in value:
        return "id contains a path separator or '..'"
    if not value.isascii():
        return "id contains non-ASCII characters (look-alikes are not allowed)"
    if not SAFE_ID.fullmatch(value):
        return "id must be letters, digits, '-' or '_' and start with a letter or digit"
    return None


def _number(value: Any) -> float | None:
    """A finite float from a number or numeric string; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().lstrip("$"))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _formula(value: str) -> bool:
    # "=" and "@" start spreadsheet formulas and never a real product name; CSV output also neutralises +/-
    return value.lstrip()[:1] in ("=", "@")


def validate_row(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Return (product, None) for a usable row, or (None, reason)."""
    if isinstance(raw, _Unparseable):
        return None, raw.reason
    if not isinstance(raw, Mapping):
        return None, f"row is not an object (got {type(raw).__name__})"
    problem = id_problem(raw.get("id"))
    if problem:
        return None, problem
    name = raw.get("name")
    if name is None or (isinstance(name, str) and not name.strip()):
        return None, "missing name"
    if not isinstance(name, str):
        return None, f"name must be a string, got {type(name).__name__}"
    if len(name) > MAX_NAME_LENGTH:
        return None, f"name is {len(name)} characters long (at most {MAX_NAME_LENGTH})"
    if _CONTROL.search(name):
        return None, "name contains control characters"
    if _formula(name):
        return None, "name starts with a spreadsheet formula character (= or @)"
    product = dict(raw)
    product["name"] = unicodedata.normalize("NFC", name.strip())
    for key in _TEXT_FIELDS:
        value = raw.get(key)
        if value is None:
            product[key] = ""
        elif not isinstance(value, str):
            return None, f"{key} must be text, got {type(value).__name__}"
        elif len(value) > MAX_TEXT_FIELD:
            return None, f"{key} is {len(value)} characters long (at most {MAX_TEXT_FIELD})"
    price = raw.get("price")
    if price is not None:
        number = _number(price)
        if number is None:
            return None, f"non-numeric price {printable_id(price, 40)}"
        if number < 0:
            return None, f"negative price {number}"
        product["price"] = round(number, 2)
    for key in ("rating", "review_count"):
        value = raw.get(key)
        if value is not None and _number(value) is None:
            return None, f"non-numeric {key} {printable_id(value, 40)}"
    attributes = raw.get("attributes")
    if attributes is None:
        product["attributes"] = {}
    elif not isinstance(attributes, Mapping):
        return None, f"attributes must be an object, got {type(attributes).__name__}"
    image = raw.get("image")
    if image is not None and not isinstance(image, Mapping):
        return None, f"image must be an object, got {type(image).__name__}"
    return product, None


def load_catalog(path: str | Path, fmt: str | None = None) -> CatalogLoad:
    """Read and validate a catalog. Raises CatalogError when the file as a whole is unusable."""
    result = CatalogLoad()
    first_row: dict[str, int] = {}
    for index, raw in enumerate(iter_rows(path, fmt), 1):
        result.rows_read = index
        product, reason = validate_row(raw)
        if product is None:
            raw_id = raw.get("id") if isinstance(raw, Mapping) else None
            result.quarantined.append(QuarantinedRow(index, printable_id(raw_id), reason or "invalid row"))
            continue
        pid = product["id"]
        if pid in first_row:
            result.quarantined.append(
                QuarantinedRow(index, printable_id(pid), f"duplicate id (first seen at row {first_row[pid]})")
            )
            continue
        first_row[pid] = index
        result.products.append(product)
    if result.rows_read == 0:
        raise CatalogError(f"{path}: the catalog has no rows")
    if not result.products:
        reasons = sorted({q.reason for q in result.quarantined})[:3]
        raise CatalogError(
            f"{path}: none of its {result.rows_read} rows is valid (e.g. {'; '.join(reasons)})"
        )
    return result


def partition_key(batch: int) -> str:
    return f"batch-{batch:04d}"


def batch_number(key: str) -> int:
    match = re.fullmatch(r"batch-(\d{4,})", key)
    if not match:
        raise ValueError(f"not a batch partition key: {key!r} (expected batch-NNNN)")
    return int(match.group(1))


def assign_batches(
    product_ids: Iterable[str], previous: Mapping[str, int] | None = None, batch_size: int = BATCH_SIZE
) -> dict[str, int]:
    """Stable product → batch assignment.

    A product keeps the batch it had; products never seen before fill new batches after the highest one in
    use, in catalog order. Removed products keep their slot (so they return to it), which also means no
    batch ever exceeds `batch_size` and no product moves when others come or go.
    """
    assignment = dict(previous or {})
    next_batch = max(assignment.values(), default=-1) + 1
    new = [pid for pid in dict.fromkeys(product_ids) if pid not in assignment]
    for i, pid in enumerate(new):
        assignment[pid] = next_batch + i // batch_size
    return assignment


def products_by_batch(
    products: Iterable[Mapping[str, Any]], assignment: Mapping[str, int]
) -> dict[int, list]:
    batches: dict[int, list] = {}
    for product in products:
        batches.setdefault(assignment[product["id"]], []).append(product)
    return dict(sorted(batches.items()))


def to_csv_text(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> str:
    """CSV with formula-looking cells neutralised (a leading quote), so spreadsheets never evaluate them."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        cells = []
        for col in columns:
            value = row.get(col)
            text = (
                json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value or "")
            )
            cells.append("'" + text if text[:1] in ("=", "+", "-", "@") else text)
        writer.writerow(cells)
    return out.getvalue()
