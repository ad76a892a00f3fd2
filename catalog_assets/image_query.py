"""Search the catalog's image vectors with a photo or a text: read and check the query file, describe the
photo (a vision model, or offline: OCR text via tesseract plus dominant colours), embed the description the
way product images are embedded, and rank the catalog by cosine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from catalog_assets.embeddings import VectorIndex
from catalog_assets.imaging import InvalidImage, decode_image
from catalog_assets.review import ImageReview
from catalog_assets.util import human_bytes

if TYPE_CHECKING:
    from catalog_assets.resources.embedder import TextEmbedder
    from catalog_assets.resources.image_reviewer import ImageReviewer

MAX_QUERY_IMAGE_BYTES = 20_000_000  # a phone photo is a few MB; anything larger is refused unread
MAX_QUERY_TEXT = 1_000
OCR_MAX_EDGE = 1024  # tesseract reads catalog-sized lettering at this size; larger only costs time
# Sparse text: labels scattered over a picture, in no reading order. On 100 bundled cards it finds the
# product first 8 times more often than the default page layout.
OCR_CONFIG = "--psm 11"


class QueryInputError(ValueError):
    """A search query that cannot be used (missing, empty, too large, not an image): one line for the user.
    The CLI exits with status 2."""


class OCRUnavailable(RuntimeError):
    """tesseract is not installed (or not on PATH): offline image queries need it."""


@dataclass(frozen=True)
class SearchHit:
    """One ranked product."""

    id: str
    name: str
    score: float  # cosine similarity, -1..1
    image_url: str


def read_query_image(path: str | os.PathLike[str], max_bytes: int = MAX_QUERY_IMAGE_BYTES) -> Image.Image:
    """The decoded query image; `QueryInputError` for a missing path, a directory, a 0-byte file, a file
    over `max_bytes` (checked before reading it) or bytes that are not an image."""
    where = Path(path)
    try:
        info = where.stat()
    except FileNotFoundError:
        raise QueryInputError(f"{where}: no such file") from None
    except OSError as exc:
        raise QueryInputError(f"{where}: cannot read ({exc.strerror or exc})") from None
    if where.is_dir():
        raise QueryInputError(f"{where}: is a directory, expected an image file")
    if info.st_size == 0:
        raise QueryInputError(f"{where}: the file is empty (0 bytes)")
    if info.st_size > max_bytes:
        raise QueryInputError(
            f"{where}: the file is {human_bytes(info.st_size)}, larger than the {human_bytes(max_bytes)} limit"
        )
    try:
        with where.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise QueryInputError(f"{where}: cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:  # grew after stat
        raise QueryInputError(f"{where}: the file is larger than the {human_bytes(max_bytes)} limit")
    try:
        return decode_image(data)
    except InvalidImage as exc:
        raise QueryInputError(f"{where}: not an image Pillow can read ({exc})") from None


def check_query_text(text: str) -> str:
    """The query text, whitespace collapsed; `QueryInputError` when it is empty or over-long."""
    cleaned = " ".join(str(text).split())
    if not cleaned:
        raise QueryInputError("the search text is empty")
    if len(cleaned) > MAX_QUERY_TEXT:
        raise QueryInputError(f"the search text is {len(cleaned)} characters, at most {MAX_QUERY_TEXT}")
    return cleaned


def ocr_text(image: Image.Image) -> str:
    """Text tesseract reads in `image` (grey, at most `OCR_MAX_EDGE` px), whitespace collapsed."""
    import pytesseract  # deferred: only offline image queries need it

    grey = image.convert("L")
    if max(grey.size) > OCR_MAX_EDGE:
        grey.thumbnail((OCR_MAX_EDGE, OCR_MAX_EDGE), Image.Resampling.LANCZOS)
    try:
        text = pytesseract.image_to_string(grey, config=OCR_CONFIG)
    except pytesseract.TesseractNotFoundError:
        raise OCRUnavailable(
            "tesseract is not installed: `apt-get install tesseract-ocr` (offline image search reads the "
            "image's text with it), or configure a vision-model reviewer"
        ) from None
    # OCR noise: lines of punctuation drawn from shapes, not letters.
    words = [w for w in text.split() if any(c.isalnum() for c in w)]
    return " ".join(words)


def query_embedding_text(description: ImageReview) -> str:
    """The text embedded for a described query photo. A vision model's caption and alt text are embedded
    as product images are; offline, the image's own text and its colour names are all there is."""
    if description.offline:
        parts = [description.visible_text, " ".join(description.dominant_colours)]
    else:
        parts = [description.caption, description.alt_text, description.visible_text]
    return "\n".join(p for p in parts if p.strip())


def hits(index: VectorIndex, ranked: Sequence[tuple[str, float]]) -> list[SearchHit]:
    position = {pid: i for i, pid in enumerate(index.ids)}
    return [
        SearchHit(pid, index.names[position[pid]], score, index.urls[position[pid]]) for pid, score in ranked
    ]


def search_text(query: str, index: VectorIndex, embedder: TextEmbedder, top: int = 5) -> list[SearchHit]:
    """The `top` products whose image vectors are nearest to the embedded `query` text."""
    text = check_query_text(query)
    vector = embedder.embed([text]).vectors[0]
    return hits(index, index.search(vector, top))


def describe_image(image: Image.Image, reviewer: ImageReviewer) -> ImageReview:
    """The reviewer's description of a query photo (no product named)."""
    return reviewer.describe(image)


def search_image(
    path: str | os.PathLike[str],
    index: VectorIndex,
    embedder: TextEmbedder,
    reviewer: ImageReviewer,
    top: int = 5,
) -> tuple[ImageReview, list[SearchHit]]:
    """Describe the photo at `path`, embed the description, rank the catalog: (description, hits)."""
    image = read_query_image(path)
    description = describe_image(image, reviewer)
    text = query_embedding_text(description)
    if not text:
        raise QueryInputError(f"{path}: no text or colour could be read from the image to search with")
    vector = embedder.embed([text]).vectors[0]
    return description, hits(index, index.search(vector, top))


def format_hits(found: Sequence[SearchHit]) -> str:
    """The CLI's output: one line per hit, `rank  id  score  name  url`."""
    if not found:
        return "no products with image vectors to search"
    lines = []
    for rank, hit in enumerate(found, 1):
        lines.append(f"{rank:>2}  {hit.id}  {hit.score:.3f}  {hit.name}  {hit.image_url or '-'}")
    return "\n".join(lines)
