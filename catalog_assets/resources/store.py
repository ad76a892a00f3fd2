"""The object store interface and its embedded default, a local directory.

Keys are relative, slash-separated and built from validated product ids only; the local store checks once
more that every path it touches stays under its root. Writes are atomic and idempotent: an object whose
sha256 matches is never written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from dagster import ConfigurableResource
from pydantic import Field

from catalog_assets.errors import StoreError

JPEG = "image/jpeg"
JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"
MARKDOWN = "text/markdown; charset=utf-8"
PNG = "image/png"
# A week, not "immutable": an image key is rewritten when its product's prompt changes.
CACHE_CONTROL_IMAGES = "public, max-age=604800"

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*$")


def check_key(key: str) -> str:
    """Reject any key that could leave the store root or confuse a path: only plain relative segments."""
    if not _SAFE_KEY.fullmatch(key) or ".." in key.split("/") or len(key) > 512:
        raise StoreError(f"unsafe object key {key!r}: keys are relative paths of [A-Za-z0-9._-] segments")
    return key


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class StoredObject:
    """What the store knows of one object. `metadata` is the user metadata written with it."""

    key: str
    size: int
    sha256: str | None
    content_type: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class PutResult:
    object: StoredObject
    uploaded: bool  # False when an identical object (same sha256) was already there


class ImageStore(ABC):
    """Where images, thumbnails, manifests, the linked catalog and run state live."""

    #: human-readable location, e.g. "s3://bucket/prefix" or "/abs/path"
    location: str
    #: None for durable URLs; seconds until expiry when the store hands out presigned URLs
    url_expires_in_s: int | None = None

    def check(self) -> None:  # noqa: B027 - optional hook
        """Verify the store is reachable and writable at run start; raise StoreError naming the setting."""

    @abstractmethod
    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        create_only: bool = False,
    ) -> PutResult:
        """Write atomically. Skip (uploaded=False) when the object already has this sha256.

        With `create_only`, an object that appeared meanwhile with other bytes is kept, not overwritten,
        and returned with uploaded=False (another writer won the race; its object is complete).
        """

    @abstractmethod
    def head(self, key: str) -> StoredObject | None:
        """The object's size, sha256 and metadata, or None when it does not exist."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raises KeyError when absent."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Objects under a prefix, sorted by key. sha256 and metadata may be None/empty (a listing is cheap)."""

    @abstractmethod
    def url(self, key: str) -> str:
        """A durable URL for the object (never an expiring one unless the store is configured so)."""

    @abstractmethod
    def key_for_url(self, url: str) -> str | None:
        """The key of the object a URL from `url()` names (query string ignored), or None when the URL is
        not one of this store's."""

    def locate(self, key: str) -> str:
        """Where a person opens the object: its URL, or a file path when the store has no absolute URLs."""
        return self.url(key)

    def delete(self, key: str) -> None:  # pragma: no cover - optional for stores
        raise NotImplementedError

    def get_json(self, key: str, default=None):
        try:
            return json.loads(self.get(key))
        except KeyError:
            return default

    def put_json(self, key: str, value, **kwargs) -> PutResult:
        data = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str).encode()
        return self.put(key, data, content_type=JSON, **kwargs)


class LocalImageStore(ImageStore):
    """A directory. Each object is a file plus a `.meta/<key>.json` sidecar with its sha256 and metadata.

    URLs: with `public_base_url` (the URL a web server serves the directory under), that base plus the key;
    without it, the key itself, a URL relative to the store root, so a page at the store root (or one whose
    `<base href>` is the store's URL) loads it over http, and moving the folder breaks nothing. Files get
    the mode the process's umask gives (0644 under umask 022), so a web server running as another user can
    read them.
    """

    def __init__(self, root: str | os.PathLike, public_base_url: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.location = str(self.root)

    def _path(self, key: str, meta: bool = False) -> Path:
        check_key(key)
        path = (self.root / ".meta" / f"{key}.json") if meta else (self.root / key)
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise StoreError(f"object key {key!r} resolves outside the store root {self.root}")
        return resolved

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open with 0o666 lets the umask decide the mode, as for any file a program writes (mkstemp would
        # make it 0600, unreadable to a web server running as another user); O_EXCL keeps the name ours.
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}{path.suffix}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put(self, key, data, *, content_type, metadata=None, create_only=False) -> PutResult:
        digest = sha256_hex(data)
        current = self.head(key)
        if current is not None and (current.sha256 == digest or create_only):
            return PutResult(current, uploaded=False)
        meta = {
            "sha256": digest,
            "content_type": content_type,
            "size": len(data),
            "metadata": dict(metadata or {}),
        }
        # The sidecar names the sha256 of the bytes it describes; head() trusts it only when they match, so a
        # crash between the two renames leaves an object that reads as absent, never as a wrong one.
        self._atomic_write(self._path(key), data)
        self._atomic_write(self._path(key, meta=True), json.dumps(meta, sort_keys=True).encode())
        return PutResult(self._object(key, len(data), digest, content_type, meta["metadata"]), uploaded=True)

    def _object(self, key, size, digest, content_type, metadata) -> StoredObject:
        return StoredObject(key, size, digest, content_type, metadata, etag=digest[:32], url=self.url(key))

    def head(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
            meta = json.loads(self._path(key, meta=True).read_bytes())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None
        digest = sha256_hex(data)
        if meta.get("sha256") != digest:
            return None
        return self._object(key, len(data), digest, meta.get("content_type", ""), meta.get("metadata", {}))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(key) from None

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        start = base if base.is_dir() else base.parent
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if d != ".meta")
            for name in sorted(filenames):
                if name.startswith(".tmp-"):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield StoredObject(key, path.stat().st_size, None, "", {}, url=self.url(key))

    def url(self, key: str) -> str:
        check_key(key)
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(key)}"
        return quote(key)

    def key_for_url(self, url: str) -> str | None:
        """Both forms map back: the relative one (`images/P-1.jpg`, relative to the store root) and, with a
        public base URL, the base URL one."""
        bare = without_query(url)
        if self.public_base_url and bare.startswith(self.public_base_url + "/"):
            return _valid_key(unquote(bare[len(self.public_base_url) + 1 :]))
        parts = urlsplit(bare)
        if parts.scheme or parts.netloc or parts.path.startswith("/"):
            return None
        return _valid_key(unquote(parts.path.removeprefix("./")))

    def locate(self, key: str) -> str:
        check_key(key)
        return self.url(key) if self.public_base_url else str(self.root / key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        self._path(key, meta=True).unlink(missing_ok=True)


def without_query(url: str) -> str:
    """The URL without its query string and fragment (a presigned or cache-busting URL names the same object)."""
    return url.split("#", 1)[0].split("?", 1)[0]


def _valid_key(key: str) -> str | None:
    try:
        return check_key(key)
    except StoreError:
        return None


DEFAULT_IMPORT_DIR = "data/store"


def seed_store(directory: str | None, target: ImageStore) -> ImageStore | None:
    """The local store to import from when the target store is another one (None when there is none)."""
    if not directory:
        return None
    root = Path(directory).resolve()
    if not root.is_dir() or (isinstance(target, LocalImageStore) and target.root == root):
        return None
    return LocalImageStore(root)


class ImageStoreResource(ConfigurableResource):
    """Base of the store resources: assets depend on this and call `get_client()`."""

    def get_client(self) -> ImageStore:
        raise NotImplementedError


class LocalImageStoreResource(ImageStoreResource):
    """Embedded default: a local directory (git-ignored), no set-up."""

    root: str = Field(
        default="data/store", description="Directory holding images, thumbnails, manifests and run state."
    )
    public_base_url: str | None = Field(
        default=None,
        description="Base URL the directory is served under, e.g. http://localhost:8000/ in front of "
        "`python -m http.server -d data/store` (CATALOG_PUBLIC_BASE_URL). Unset: URLs relative to the store "
        "root (images/PROD-000001.jpg).",
    )

    def get_client(self) -> ImageStore:
        return LocalImageStore(self.root, self.public_base_url or None)
