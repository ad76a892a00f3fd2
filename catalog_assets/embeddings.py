"""Image vectors as the search demo wants them: the text that describes an image, a deterministic offline
hashing embedding of it, checks of a vector (512 floats, unit norm), and cosine ranking in-process.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

EMBEDDING_DIMENSIONS = 512  # the demo's `image.vector_embedding` dense_vector dims
HASHING_MODEL = "hashing-512-v1"
OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
UNIT_NORM_TOLERANCE = 1e-3

_WORD = re.compile(r"[0-9a-z]+")
# Words every description shares; they only add noise to a hashed vector.
_STOP_WORDS = frozenset(
    ("a", "an", "and", "the", "of", "in", "on", "for", "with", "by", "to", "is", "as", "at", "or")
)
# Feature weights: whole words carry the meaning, word pairs the phrase, character trigrams survive
# OCR misreads and plural/singular forms.
_WORD_WEIGHT, _PAIR_WEIGHT, _TRIGRAM_WEIGHT = 1.0, 0.6, 0.5
_HASH_KEY = HASHING_MODEL.encode()


class EmbeddingError(ValueError):
    """A vector or an embedding input that cannot be used (wrong length, not finite, zero, empty text)."""


def embedding_text(*, caption: str, alt_text: str, name: str) -> str:
    """What is embedded for a product's image: the review's caption, its alt text and the product name
    (the demo's own approach: describe the image, embed the description)."""
    parts = [" ".join(str(p or "").split()) for p in (caption, alt_text, name)]
    return "\n".join(p for p in parts if p)


def _features(text: str) -> list[tuple[str, float]]:
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS]
    features = [(f"w:{w}", _WORD_WEIGHT) for w in words]
    features += [(f"b:{a} {b}", _PAIR_WEIGHT) for a, b in zip(words, words[1:], strict=False)]
    for word in words:
        padded = f"#{word}#"
        grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
        weight = _TRIGRAM_WEIGHT / math.sqrt(len(grams))
        features += [(f"c:{g}", weight) for g in grams]
    return features


@lru_cache(maxsize=1 << 18)
def _slot(feature: str, dimensions: int) -> tuple[int, bool]:
    """(slot, positive) of a feature: a keyed hash, so the vectors are this model's own."""
    digest = hashlib.blake2b(feature.encode(), digest_size=8, key=_HASH_KEY).digest()
    return int.from_bytes(digest[:7], "big") % dimensions, bool(digest[7] & 1)


def hashing_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> np.ndarray:
    """A unit float32 vector for `text`: every feature (word, word pair, character trigram) adds its
    weight, with a hashed sign, to one hashed slot. Same text, same vector, on any machine."""
    features = _features(text)
    if not features:
        raise EmbeddingError(f"nothing to embed in {text[:60]!r}: no letters or digits")
    slots, weights = [], []
    for feature, weight in features:
        slot, positive = _slot(feature, dimensions)
        slots.append(slot)
        weights.append(weight if positive else -weight)
    vector = np.bincount(slots, weights=weights, minlength=dimensions)
    norm = float(np.linalg.norm(vector))
    if norm < 1e-12:  # every feature cancelled out: one slot of the text's own hash
        vector = np.zeros(dimensions)
        vector[_slot(f"raw:{text}", dimensions)[0]] = 1.0
        norm = 1.0
    return (vector / norm).astype(np.float32)


def hashing_embeddings(texts: Iterable[str], dimensions: int = EMBEDDING_DIMENSIONS) -> np.ndarray:
    """`hashing_embedding` of each text, as one (n, dimensions) float32 matrix."""
    rows = [hashing_embedding(text, dimensions) for text in texts]
    return np.vstack(rows) if rows else np.zeros((0, dimensions), dtype=np.float32)


def normalise(vectors: Any, dimensions: int = EMBEDDING_DIMENSIONS) -> np.ndarray:
    """Rows of `vectors` as unit float32 vectors; `EmbeddingError` for a wrong length, NaN/inf or zero row."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[np.newaxis, :]
    if matrix.ndim != 2 or matrix.shape[1] != dimensions:
        raise EmbeddingError(f"vectors have shape {matrix.shape}, expected (n, {dimensions})")
    if not np.isfinite(matrix).all():
        raise EmbeddingError("a vector holds NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1)
    if (norms == 0).any():
        raise EmbeddingError(f"vector {int(np.argmin(norms))} is all zeros")
    return (matrix / norms[:, np.newaxis]).astype(np.float32)


def vector_problem(vector: Any, dimensions: int = EMBEDDING_DIMENSIONS) -> str | None:
    """Why `vector` is not a usable stored image vector (length, numbers, finite, unit norm), else None."""
    if not isinstance(vector, Sequence) or isinstance(vector, str | bytes):
        return f"vector is {type(vector).__name__}, expected a list of {dimensions} floats"
    if len(vector) != dimensions:
        return f"vector has {len(vector)} values, expected {dimensions}"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vector):
        return "vector holds a value that is not a number"
    if not all(math.isfinite(v) for v in vector):
        return "vector holds NaN or infinite values"
    norm = math.sqrt(math.fsum(v * v for v in vector))
    if norm == 0.0:
        return "vector is all zeros"
    if abs(norm - 1.0) > UNIT_NORM_TOLERANCE:
        return f"vector norm is {norm:.6f}, expected 1 (L2-normalised)"
    return None


def as_json_floats(vector: np.ndarray) -> list[float]:
    """A vector as plain floats for JSON (float32 precision, rounded so files stay small)."""
    return [round(float(v), 7) for v in vector]


def text_fingerprint(text: str, model: str, dimensions: int = EMBEDDING_DIMENSIONS) -> str:
    """Identity of one embedding: the text, the model label and the size (a model change re-embeds)."""
    return hashlib.sha256(f"{model}\x00{dimensions}\x00{text}".encode()).hexdigest()[:32]


# -- ranking ---------------------------------------------------------------------------------------------


def rank(query: np.ndarray, matrix: np.ndarray, top: int = 5) -> list[tuple[int, float]]:
    """(row index, cosine) of the `top` rows of `matrix` nearest to `query`, best first; ties keep row
    order. Rows and query are unit vectors, so the cosine is their dot product."""
    if top <= 0 or matrix.shape[0] == 0:
        return []
    scores = matrix @ np.asarray(query, dtype=np.float32).reshape(-1)
    count = min(top, scores.shape[0])
    # argpartition picks the candidates in O(n); a stable sort orders them (equal scores by row).
    candidates = np.argpartition(-scores, count - 1)[:count] if count < scores.shape[0] else np.arange(count)
    ordered = sorted(candidates.tolist(), key=lambda i: (-float(scores[i]), i))
    return [(i, float(scores[i])) for i in ordered]


@dataclass(frozen=True)
class VectorIndex:
    """The catalog's image vectors in one matrix, for in-process cosine search."""

    ids: tuple[str, ...]
    names: tuple[str, ...]
    urls: tuple[str, ...]
    matrix: np.ndarray  # (n, dimensions) float32, unit rows
    model: str

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], model: str = "") -> VectorIndex:
        """From linked-catalog rows (`image.vector_embedding`); rows without a vector are left out, a
        malformed vector is an `EmbeddingError` naming the product."""
        ids, names, urls, vectors = [], [], [], []
        for row in rows:
            image = row.get("image") if isinstance(row.get("image"), Mapping) else {}
            vector = image.get("vector_embedding")
            if vector is None:
                continue
            problem = vector_problem(vector)
            if problem:
                raise EmbeddingError(f"{row.get('id')}: {problem}")
            ids.append(str(row.get("id")))
            names.append(str(row.get("name") or ""))
            urls.append(str(image.get("url") or ""))
            vectors.append(vector)
        matrix = normalise(vectors) if vectors else np.zeros((0, EMBEDDING_DIMENSIONS), dtype=np.float32)
        return cls(tuple(ids), tuple(names), tuple(urls), matrix, model)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: np.ndarray, top: int = 5) -> list[tuple[str, float]]:
        """(product id, cosine) of the `top` nearest products, best first."""
        return [(self.ids[i], score) for i, score in rank(query, self.matrix, top)]


def recall_at_k(index: VectorIndex, queries: np.ndarray, k: int = 5) -> float:
    """Share of the index's products found among the `k` nearest to their own query (`queries[i]` is the
    query of `index.ids[i]`, e.g. its embedded name): the retrieval self-test figure."""
    if not len(index):
        return 0.0
    scores = normalise(queries) @ index.matrix.T
    k = min(k, len(index))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    found = (top == np.arange(len(index))[:, None]).any(axis=1)
    return float(found.mean())
