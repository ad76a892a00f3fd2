"""The stand-in's Files API store: uploads parsed from multipart straight onto disk, output files written
line by line, `FileObject` shapes, and contents read back in chunks (batch outputs can be hundreds of MB).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from catalog_assets.standin.protocol import APIError, invalid

CHUNK = 1024 * 1024
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
BATCH_FILE_TTL_S = 30 * 24 * 3600  # batch files expire after 30 days unless told otherwise


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class BodyReader:
    """A request body as a stream: by Content-Length, or `Transfer-Encoding: chunked`."""

    def __init__(self, rfile: Readable, headers: Any) -> None:
        self.rfile = rfile
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        self.remaining = 0 if self.chunked else int(headers.get("Content-Length") or 0)
        self.done = False

    def read(self, n: int = CHUNK) -> bytes:
        if self.done:
            return b""
        if self.chunked and self.remaining == 0:
            size_line = self.rfile.readline(1024)  # type: ignore[attr-defined]
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # type: ignore[attr-defined]
                    pass  # trailers
                self.done = True
                return b""
            self.remaining = size
        data = self.rfile.read(min(n, self.remaining)) if self.remaining else b""
        self.remaining -= len(data)
        if self.chunked and self.remaining == 0 and data:
            self.rfile.readline(16)  # type: ignore[attr-defined]  # the CRLF after a chunk
        if not data and not self.chunked:
            self.done = True
        return data

    def read_all(self, limit: int) -> bytes:
        parts, total = [], 0
        while chunk := self.read():
            total += len(chunk)
            if total > limit:
                raise invalid("", f"The request body is larger than {limit} bytes.", "request_too_large")
            parts.append(chunk)
        return b"".join(parts)


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    path: Path
    expires_at: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": self.expires_at,
        }


def not_found(file_id: str) -> APIError:
    return APIError(404, f"No such File object: {file_id}", "invalid_request_error", None, param="id")


class FileStore:
    """Files on disk under `root` (a temporary directory unless given); thread-safe."""

    def __init__(self, root: str | None = None) -> None:
        self._own = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="standin-files-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.files: dict[str, StoredFile] = {}

    def new_path(self) -> tuple[str, Path]:
        file_id = f"file-{secrets.token_urlsafe(16).replace('-', 'a').replace('_', 'b')}"
        self.root.mkdir(parents=True, exist_ok=True)  # again after a stop and restart
        return file_id, self.root / file_id

    def register(self, file_id: str, path: Path, filename: str, purpose: str) -> StoredFile:
        now = int(time.time())
        stored = StoredFile(
            id=file_id,
            filename=filename,
            purpose=purpose,
            bytes=path.stat().st_size,
            created_at=now,
            path=path,
            expires_at=now + BATCH_FILE_TTL_S if purpose.startswith("batch") else None,
        )
        with self.lock:
            self.files[file_id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile:
        with self.lock:
            found = self.files.get(file_id)
        if found is None:
            raise not_found(file_id)
        return found

    def delete(self, file_id: str) -> dict[str, Any]:
        with self.lock:
            found = self.files.pop(file_id, None)
        if found is None:
            raise not_found(file_id)
        found.path.unlink(missing_ok=True)
        return {"id": file_id, "object": "file", "deleted": True}

    def listing(self, purpose: str | None, limit: int, after: str | None, order: str) -> dict[str, Any]:
        with self.lock:
            items = [f for f in self.files.values() if purpose in (None, f.purpose)]
        items.sort(key=lambda f: (f.created_at, f.id), reverse=order != "asc")
        return cursor_page([f.as_dict() for f in items], limit, after)

    def chunks(self, stored: StoredFile) -> Iterator[bytes]:
        with open(stored.path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def lines(self, stored: StoredFile) -> Iterator[bytes]:
        """The file line by line, each with its newline (a last line without one as it is)."""
        with open(stored.path, "rb") as handle:
            yield from handle

    def upload(self, headers: Any, body: BodyReader, max_bytes: int) -> StoredFile:
        """`POST /v1/files`: the multipart form's `file` goes to disk as it arrives; `purpose` is required."""
        content_type = headers.get("Content-Type") or ""
        message = Message()
        message["content-type"] = content_type
        boundary = message.get_param("boundary")
        if message.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
            raise invalid(
                "file", "Expected a multipart/form-data body with a 'file' part.", "invalid_request"
            )
        declared = int(headers.get("Content-Length") or 0)
        if declared > max_bytes + 64 * 1024:
            raise _too_large(max_bytes)
        file_id, path = self.new_path()
        try:
            fields, filename, size = parse_multipart(body, boundary.encode(), path, max_bytes)
            purpose = fields.get("purpose")
            if filename is None:
                raise invalid("file", "Missing required parameter: 'file'.", "missing_required_parameter")
            if purpose not in FILE_PURPOSES:
                raise invalid(
                    "purpose",
                    f"Invalid 'purpose': {purpose!r}. Expected one of {', '.join(FILE_PURPOSES)}.",
                    "invalid_value" if purpose else "missing_required_parameter",
                )
            if purpose == "batch" and not filename.endswith(".jsonl"):
                raise invalid(
                    "file", "Invalid file format for Batch API. Must be .jsonl", "invalid_file_format"
                )
            if purpose == "batch" and size == 0:
                raise invalid("file", "The file is empty.", "empty_file")
            return self.register(file_id, path, filename, purpose)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def close(self) -> None:
        if self._own:
            shutil.rmtree(self.root, ignore_errors=True)


def _too_large(max_bytes: int) -> APIError:
    return invalid(
        "file", f"File is too large: the limit is {max_bytes} bytes for purpose 'batch'.", "file_too_large"
    )


def cursor_page(items: list[dict[str, Any]], limit: int, after: str | None) -> dict[str, Any]:
    """A cursor page as the list endpoints answer: items after the one with id `after`."""
    start = 0
    if after:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    page = items[start : start + limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": start + limit < len(items),
    }


def parse_multipart(
    body: BodyReader, boundary: bytes, file_path: Path, max_bytes: int
) -> tuple[dict[str, str], str | None, int]:
    """Parse a multipart/form-data stream: (text fields, the file part's filename or None, its size).
    The file part is written to `file_path` as it arrives; at most one delimiter's worth stays buffered."""
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter
    buf = b""
    fields: dict[str, str] = {}
    filename: str | None = None
    size = 0

    def fill() -> None:
        nonlocal buf
        chunk = body.read(CHUNK)
        if not chunk:
            raise invalid("file", "The multipart body ended early.", "invalid_request")
        buf += chunk

    while (start := buf.find(delimiter)) < 0:
        fill()
    buf = buf[start + len(delimiter) :]
    while True:
        while len(buf) < 2:
            fill()
        if buf.startswith(b"--"):
            break
        if not buf.startswith(b"\r\n"):
            raise invalid("file", "Malformed multipart body.", "invalid_request")
        buf = buf[2:]
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > 16384:
                raise invalid("file", "Malformed multipart headers.", "invalid_request")
            fill()
        part = Message()
        for line in buf[:end].decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            part[name.strip()] = value.strip()
        buf = buf[end + 4 :]
        name = part.get_param("name", header="content-disposition")
        part_filename = part.get_param("filename", header="content-disposition")
        sink: BinaryIO | None = None
        text = bytearray()
        if part_filename is not None:
            filename = str(part_filename)
            sink = open(file_path, "wb")  # noqa: SIM115 - closed below, after the part
        try:
            while True:
                found = buf.find(separator)
                piece = buf[:found] if found >= 0 else buf[: max(0, len(buf) - len(separator) + 1)]
                if sink is not None:
                    size += len(piece)
                    if size > max_bytes:
                        raise _too_large(max_bytes)
                    sink.write(piece)
                else:
                    text += piece
                    if len(text) > 65536:
                        raise invalid(str(name), "A form field is too long.", "invalid_request")
                buf = buf[len(piece) :]
                if found >= 0:
                    buf = buf[len(separator) :]
                    break
                fill()
        finally:
            if sink is not None:
                sink.close()
        if sink is None and name is not None:
            fields[str(name)] = text.decode("utf-8", "replace")
    return fields, filename, size
