"""Catalog loading, row validation and stable batch assignment (pure logic, no Dagster).

Rows that cannot be used are quarantined with a reason, never dropped silently. A product id ends up in
file and object names, so only ids matching `SAFE_ID` pass.
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from catalog_assets.errors import CatalogError

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 300
MAX_TEXT_FIELD = 2_000_000  # a 1 MB description is odd but usable; the prompt keeps only its start
MAX_DEPTH = 16  # nesting of attributes and extra fields; deeper is a JSON bomb, not a product
BATCH_SIZE = 100
FORMATS = ("json", "jsonl", "csv", "parquet")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Names reach UIs, reports and the image card: besides C0/C1 controls, line separators and the bidi
# overrides and isolates (which reorder what a reader sees, "Trojan Source" style) are refused too.
_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Device names Windows refuses as file names whatever the extension, so `images/CON.jpg` never happens.
_RESERVED_ID = re.compile(r"(?:CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])", re.IGNORECASE)
# Plain ASCII decimals only: float() alone would also take "1_000", "١٢" or fullwidth digits.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FORMULA_START = ("=", "@", "\uff1d", "\uff20")  # fullwidth = and @ too: some spreadsheets read them
_TEXT_FIELDS = ("description", "category", "subcategory", "brand", "stock_status")
_NESTED_FIELDS = ("attributes", "image")  # JSON text in CSV and Parquet
# Fields validate_row checks one by one; every other field is kept as it is, after a depth/NaN check.
_KNOWN_FIELDS = frozenset(("id", "name", "price", "rating", "review_count", *_TEXT_FIELDS))
_CSV_FIELD_LIMIT = 16 * MAX_TEXT_FIELD  # over-long cells are quarantined per row, not a CSV parse error
_SHARED_FIELDS = ("category", "subcategory", "brand", "stock_status")  # few distinct values, every row
_SHARED_MAX = 64  # longer strings are rarely repeated
_SNIFF_BYTES = 1 << 16


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
    with path.open("r", encoding="utf-8-sig") as f:
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
        first, element = True, 1
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
                    # An element cut by the chunk's end fails at (or, for a string, from) the end of the
                    # buffer: read on. Any other error is in the file, and reading the rest would not help.
                    if eof or not (exc.msg.startswith("Unterminated string") or exc.pos >= len(buf) - 16):
                        raise CatalogError(
                            f"{path}: not parseable JSON in element {element}: {exc.msg}"
                        ) from None
                    fill()
                    continue
                except RecursionError:
                    raise CatalogError(
                        f"{path}: not parseable: element {element} is nested too deeply"
                    ) from None
                if (
                    len(buf) - end < 64 and not eof
                ):  # a number near the buffer's end may go on in the next chunk
                    fill()
                    continue
                break
            yield value
            pos, first, element = end, False, element + 1


def _iter_jsonl(path: Path) -> Iterator[Any]:
    with path.open("r", encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                # without its line end, a line cut short reads "unterminated string", not "control character"
                value = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                value = _Unparseable(f"line {lineno} is not valid JSON: {exc.msg}")
            except RecursionError:
                value = _Unparseable(f"line {lineno} is nested too deeply to parse")
            yield value


class _Unparseable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _nested(key: str, value: Any) -> Any:
    """CSV and Parquet carry attributes/image as JSON text; give them back their structure. Only those two:
    a name or description that happens to look like JSON stays the text it is."""
    if key in _NESTED_FIELDS and isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value


def _require_id_column(path: Path, kind: str, columns: Iterable[str]) -> None:
    columns = list(columns)
    if "id" not in columns:
        shown = ", ".join(printable_id(c, 30) for c in columns[:8]) + (" …" if len(columns) > 8 else "")
        raise CatalogError(f"{path}: the {kind} has no 'id' column (columns: {shown or 'none'})")


def _iter_csv(path: Path) -> Iterator[Any]:
    # The module-wide limit (128 KiB) would turn one long description into a parse error for the whole file.
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return
        _require_id_column(path, "CSV header", reader.fieldnames)
        for row in reader:
            yield {k: _nested(k, v) if v != "" else None for k, v in row.items() if k is not None}


def _iter_parquet(path: Path) -> Iterator[Any]:
    import pyarrow.parquet as pq

    def unreadable(exc: Exception) -> CatalogError:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return CatalogError(f"{path}: not a readable Parquet file: {first}")

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise unreadable(exc) from None
    _require_id_column(path, "Parquet schema", pf.schema_arrow.names)
    batches = pf.iter_batches(batch_size=10_000)
    while True:
        try:  # a damaged row group only shows when it is read
            batch = next(batches, None)
        except Exception as exc:
            raise unreadable(exc) from None
        if batch is None:
            return
        for row in batch.to_pylist():
            yield {k: _nested(k, v) for k, v in row.items()}


def _utf8_error_at(path: Path) -> tuple[int, int] | None:
    """(byte offset, line) of the first invalid UTF-8 sequence. The text reader's own error counts from the
    start of its current chunk, which means nothing to someone opening the file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with path.open("rb") as f:
        while True:
            chunk = f.read(1 << 20)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                at = offset - pending + exc.start
                return at, line + (chunk[: max(exc.start - pending, 0)].count(b"\n"))
            if not chunk:
                return None
            offset += len(chunk)
            line += chunk.count(b"\n")


def _blank(path: Path) -> bool:
    """Whitespace only (a byte-order mark included)."""
    if path.stat().st_size > _SNIFF_BYTES:
        return False
    return not path.read_bytes().replace(codecs.BOM_UTF8, b"").strip()


def iter_rows(path: str | Path, fmt: str | None = None) -> Iterator[Any]:
    """Raw rows of a catalog file, streamed. Raises CatalogError for a missing, empty or unreadable file."""
    path = Path(path)
    if path.is_dir():
        raise CatalogError(f"{path}: is a directory, not a catalog file")
    if not path.exists():
        raise CatalogError(f"{path}: catalog file not found")
    if not path.is_file():  # a FIFO or device would block or never end
        raise CatalogError(f"{path}: not a regular file")
    fmt = detect_format(path, fmt)
    readers = {"json": _iter_json_array, "jsonl": _iter_jsonl, "csv": _iter_csv, "parquet": _iter_parquet}
    try:
        if path.stat().st_size == 0:
            raise CatalogError(f"{path}: the file is empty")
        if fmt != "parquet" and _blank(path):
            raise CatalogError(f"{path}: the file is empty (only whitespace)")
        yield from readers[fmt](path)
    except UnicodeDecodeError:
        where = _utf8_error_at(path)
        at = f" at byte {where[0]:,} (line {where[1]:,})" if where else ""
        raise CatalogError(f"{path}: not valid UTF-8{at}; save the catalog as UTF-8") from None
    except csv.Error as exc:
        raise CatalogError(f"{path}: not parseable CSV: {exc}") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def printable_id(value: Any, limit: int = 80) -> str:
    """One short printable line showing what a value was: escapes make controls and look-alikes visible."""
    text = value if isinstance(value, str) else repr(value)
    length = len(text)
    # Escaping grows a character to at most 10 (\U0001f600): cut first so a 2 MB value costs nothing.
    text = text[: limit + 1].encode("unicode_escape").decode("ascii")
    if len(text) <= limit and length <= limit:
        return text
    return text[:limit] + f"…({length:,} chars)"


def _kind(value: Any) -> str:
    """The JSON name of a value's type: catalogs are written by people who think in JSON, not Python."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def id_problem(value: Any) -> str | None:
    """Why a value cannot be a product id, or None when it can."""
    if value is None or value == "":
        return "missing id"
    if not isinstance(value, str):
        return f"id must be a string, got {_kind(value)}"
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
    if _RESERVED_ID.fullmatch(value):
        return f"id {value!r} is a reserved device name on Windows"
    return None


def _number(value: Any) -> float | None:
    """A finite float from a number or a plain decimal string ("12.50", "$12.50"); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):  # Parquet may carry a decimal price
        try:
            number = float(value)
        except (OverflowError, ValueError):  # an int beyond float range, Decimal("sNaN")
            return None
    elif isinstance(value, str):
        text = value.strip()
        text = text[1:].lstrip() if text.startswith("$") else text
        if not _DECIMAL.fullmatch(text):  # "12,50" is ambiguous (decimal comma or thousands): refuse it
            return None
        number = float(text)
    else:
        return None
    return number if math.isfinite(number) else None


def _formula(value: str) -> bool:
    # "=" and "@" start spreadsheet formulas and never a real product name; CSV output also neutralises +/-
    return value.lstrip()[:1] in _FORMULA_START


def _visible(text: str) -> bool:
    """Has at least one character a reader can see (not only spaces, zero-width or format characters)."""
    return any(ch.isprintable() and not ch.isspace() for ch in text)


def _deep_problem(value: Any, depth: int = 1) -> str | None:
    """Why a kept value would break JSON or Parquet output: NaN/Infinity (not JSON) or absurd nesting."""
    if isinstance(value, float):
        return None if math.isfinite(value) else "contains NaN or Infinity (not valid JSON)"
    if isinstance(value, Mapping):
        items: Iterable[Any] = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return None
    if depth > MAX_DEPTH:
        return f"is nested more than {MAX_DEPTH} levels deep"
    for item in items:
        if type(item) is not str:  # the common case, skipped cheaply
            problem = _deep_problem(item, depth + 1)
            if problem:
                return problem
    return None


def validate_row(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Return (product, None) for a usable row, or (None, reason)."""
    if isinstance(raw, _Unparseable):
        return None, raw.reason
    if not isinstance(raw, Mapping):
        return None, f"row is not an object (got {_kind(raw)})"
    problem = id_problem(raw.get("id"))
    if problem:
        return None, problem
    name = raw.get("name")
    if name is None:
        return None, "missing name"
    if not isinstance(name, str):
        return None, f"name must be a string, got {_kind(name)}"
    if not _visible(name):
        return None, "missing name"
    if len(name) > MAX_NAME_LENGTH:
        return None, f"name is {len(name)} characters long (at most {MAX_NAME_LENGTH})"
    if _NAME_CONTROL.search(name):
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
            return None, f"{key} must be text, got {_kind(value)}"
        elif len(value) > MAX_TEXT_FIELD:
            return None, f"{key} is {len(value):,} characters long (at most {MAX_TEXT_FIELD:,})"
    price = raw.get("price")
    if price is not None:
        number = _number(price)
        if number is None:
            return None, f"non-numeric price {printable_id(price, 40)}"
        if number < 0:
            return None, f"negative price {number}"
        product["price"] = round(number, 2)
    # Stored as numbers, so every row has one type per column (Parquet output refuses a mix).
    rating = raw.get("rating")
    if rating is not None:
        number = _number(rating)
        if number is None:
            return None, f"non-numeric rating {printable_id(rating, 40)}"
        product["rating"] = number
    count = raw.get("review_count")
    if count is not None:
        number = _number(count)
        if number is None:
            return None, f"non-numeric review_count {printable_id(count, 40)}"
        if number < 0 or not number.is_integer():
            return None, f"review_count must be a whole number, got {printable_id(count, 40)}"
        product["review_count"] = int(number)
    attributes = raw.get("attributes")
    if attributes is None:
        product["attributes"] = {}
    elif not isinstance(attributes, Mapping):
        return None, f"attributes must be an object, got {_kind(attributes)}"
    image = raw.get("image")
    if image is not None and not isinstance(image, Mapping):
        return None, f"image must be an object, got {_kind(image)}"
    for key, value in raw.items():
        if key not in _KNOWN_FIELDS and type(value) is not str:
            problem = _deep_problem(value)
            if problem:
                return None, f"{printable_id(key, 40)} {problem}"
    return product, None


def _compact(product: dict[str, Any], shared: dict[str, str]) -> dict[str, Any]:
    """The product with one string object per distinct short key or value (field names, categories, brands,
    attribute names and values). A decoder makes fresh strings for every row, and a large catalog is held
    whole: this takes about a third off a 200,000-product load (benchmarks/bench_catalog_memory.py)."""

    def one(value: Any) -> Any:
        if type(value) is str and len(value) <= _SHARED_MAX:
            return shared.setdefault(value, value)
        return value

    compact = {one(k): v for k, v in product.items()}
    for key in _SHARED_FIELDS:
        if key in compact:
            compact[key] = one(compact[key])
    for key in _NESTED_FIELDS:
        value = compact.get(key)
        if type(value) is dict:
            compact[key] = {one(k): one(v) for k, v in value.items()}
    return compact


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """A load builds hundreds of thousands of dicts and no reference cycles; the cyclic collector's full
    passes over all of them would make the load time grow faster than the catalog (10 s instead of 4.5 s
    for 200,000 products)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_catalog(path: str | Path, fmt: str | None = None) -> CatalogLoad:
    """Read and validate a catalog. Raises CatalogError when the file as a whole is unusable."""
    with _without_cyclic_gc():
        return _load_catalog(path, fmt)


def _load_catalog(path: str | Path, fmt: str | None) -> CatalogLoad:
    result = CatalogLoad()
    shared: dict[str, str] = {}
    # Keyed by the lower-cased id: "prod-1" and "PROD-1" would be one file on a case-insensitive disk.
    first_row: dict[str, tuple[int, str]] = {}
    for index, raw in enumerate(iter_rows(path, fmt), 1):
        result.rows_read = index
        product, reason = validate_row(raw)
        if product is None:
            raw_id = raw.get("id") if isinstance(raw, Mapping) else None
            result.quarantined.append(QuarantinedRow(index, printable_id(raw_id), reason or "invalid row"))
            continue
        pid = product["id"]
        seen = first_row.get(pid.lower())
        if seen is not None:
            row, first_id = seen
            reason = (
                f"duplicate id (first seen at row {row})"
                if first_id == pid
                else f"duplicate id (differs only in letter case from {first_id!r} at row {row})"
            )
            result.quarantined.append(QuarantinedRow(index, printable_id(pid), reason))
            continue
        first_row[pid.lower()] = (index, pid)
        result.products.append(_compact(product, shared))
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


# OWASP's list for CSV injection: formula starters, and tab / carriage return which some spreadsheets skip
# before reading a formula; the fullwidth forms because some spreadsheets normalise them.
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # a number is never a formula; -3 stays a number
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    return "'" + text if text.startswith(_CSV_FORMULA_START) else text


def to_csv_text(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> str:
    """CSV with formula-looking cells neutralised (a leading quote), so spreadsheets never evaluate them."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(col)) for col in columns])
    return out.getvalue()
