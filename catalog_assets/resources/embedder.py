"""The text-embedder interface and its two implementations: the deterministic hashing embedding (embedded
default, no network) and the OpenAI Embeddings API through the `openai` SDK (one attempt per call, errors
classified by `catalog_assets.errors.classify_openai_error`, unit vectors checked and normalised; once given
the coordinator, each request waits for the shared limiter and breaker of its own bucket, see `call_guard`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from catalog_assets.call_guard import GuardedClient
from catalog_assets.call_ledger import EMBEDDINGS, CallRecorder
from catalog_assets.embeddings import (
    EMBEDDING_DIMENSIONS,
    HASHING_MODEL,
    OPENAI_EMBEDDING_MODEL,
    EmbeddingError,
    hashing_embeddings,
    normalise,
)
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped, classify_openai_error
from catalog_assets.resources.coordination import Coordinator
from catalog_assets.resources.openai_client import (
    OpenAIAccountResource,
    Secret,
    SharedSDKClient,
    response_headers,
)
from catalog_assets.resources.openai_images import client_request_id

if TYPE_CHECKING:
    import openai

MAX_BATCH = 2048  # inputs per embeddings request the API accepts
#: embeddings requests a minute by default: a first-tier account's request limit
DEFAULT_EMBEDDINGS_PER_MINUTE = 3000


@dataclass(frozen=True)
class Embeddings:
    """Unit vectors, one row per input text in input order, and the model that made them."""

    vectors: np.ndarray  # (n, dimensions) float32
    model: str
    usage: Mapping[str, int] = field(default_factory=dict)
    requests: int = 0  # API calls made (0 offline)


class TextEmbedder(ABC):
    """Embeds texts as unit vectors. Raises `ImageAPIError` (classified) when a service fails."""

    model: str
    dimensions: int = EMBEDDING_DIMENSIONS
    #: True when a call costs money
    paid: bool = False
    #: requests per minute the shared limiter paces requests at (None: no pacing)
    requests_per_minute: float | None = None

    @abstractmethod
    def embed(self, texts: Sequence[str], *, attempt: int = 1) -> Embeddings:
        """One vector per text; an empty text is an `EmbeddingError` before any call."""

    def check_config(self) -> None:  # noqa: B027 - optional hook
        """Raise `RunStopped` before any call when the configuration cannot work."""

    def share_limits(  # noqa: B027 - optional hook
        self,
        coordinator: Coordinator,
        *,
        breaker_wait_s: float = 120.0,
        recorder: CallRecorder | None = None,
    ) -> None:
        """Send every later request through `coordinator`'s rate limiter and breaker, waiting up to
        `breaker_wait_s` while the breaker is open, each request written to `recorder`'s call record (a free
        embedder makes no calls)."""


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise EmbeddingError("embed() takes a list of texts, not one string")
    cleaned = [" ".join(str(t).split()) for t in texts]
    empty = [i for i, t in enumerate(cleaned) if not t]
    if empty:
        raise EmbeddingError(f"text {empty[0]} is empty: every image needs a description to embed")
    return cleaned


class HashingTextEmbedder(TextEmbedder):
    """The embedded default: `catalog_assets.embeddings.hashing_embedding`, labelled `hashing-512-v1`."""

    paid = False

    def __init__(self, dimensions: int = EMBEDDING_DIMENSIONS) -> None:
        self.dimensions = dimensions
        self.model = HASHING_MODEL if dimensions == EMBEDDING_DIMENSIONS else f"hashing-{dimensions}-v1"

    def __repr__(self) -> str:
        return f"HashingTextEmbedder(model={self.model!r})"

    def embed(self, texts: Sequence[str], *, attempt: int = 1) -> Embeddings:
        return Embeddings(hashing_embeddings(_check_texts(texts), self.dimensions), self.model)


class OpenAITextEmbedder(SharedSDKClient, GuardedClient, TextEmbedder):
    """`embeddings.create(model, input=[...], dimensions)` in batches of `batch_size`, `max_retries=0`."""

    paid = True
    call_kind = EMBEDDINGS

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = OPENAI_EMBEDDING_MODEL,
        dimensions: int = EMBEDDING_DIMENSIONS,
        batch_size: int = 256,
        timeout_s: float = 60.0,
        requests_per_minute: float | None = DEFAULT_EMBEDDINGS_PER_MINUTE,
    ) -> None:
        self._key = Secret((api_key or "").strip())
        self.base_url = base_url or None
        self.model, self.dimensions = model, dimensions
        self.batch_size, self.timeout_s = batch_size, timeout_s
        self.requests_per_minute = requests_per_minute or None
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAITextEmbedder(model={self.model!r}, dimensions={self.dimensions})"

    __str__ = __repr__

    def check_config(self) -> None:
        problems = []
        if not self._key.reveal():
            problems.append("OPENAI_API_KEY is not set (or empty): set it, or use the hashing embedder")
        if not 1 <= self.batch_size <= MAX_BATCH:
            problems.append(f"batch_size must be within 1..{MAX_BATCH}")
        if self.timeout_s <= 0:
            problems.append("timeout_s must be positive")
        if self.requests_per_minute is not None and self.requests_per_minute < 0:
            problems.append("requests_per_minute must not be negative (0: no pacing)")
        if problems:
            raise RunStopped(ErrorClass.CONFIGURATION, "text embedder settings: " + "; ".join(problems))

    def rate_limit_bucket(self) -> str:
        """The shared bucket of this key's embeddings: the Embeddings endpoint and model, apart from the rest."""
        return self.account_bucket("embeddings", self.model)

    def embed(self, texts: Sequence[str], *, attempt: int = 1) -> Embeddings:
        cleaned = _check_texts(texts)
        if not self._key.reveal():
            raise ImageAPIError(ErrorClass.CONFIGURATION, "OPENAI_API_KEY is not set")
        rows: list[np.ndarray] = []
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        requests = 0
        for start in range(0, len(cleaned), self.batch_size):
            batch = cleaned[start : start + self.batch_size]
            vectors, used = self._embed_batch(batch, attempt, start)
            rows.append(vectors)
            requests += 1
            for key in usage:
                usage[key] += used.get(key, 0)
        matrix = np.vstack(rows) if rows else np.zeros((0, self.dimensions), dtype=np.float32)
        return Embeddings(matrix, self.model, usage, requests)

    def _embed_batch(self, batch: list[str], attempt: int, start: int) -> tuple[np.ndarray, dict[str, int]]:
        subject = f"embeddings-{start}"
        headers = {"X-Client-Request-Id": client_request_id(subject, attempt)}
        response = self.guarded(lambda: self._create(batch, headers), subject=subject, attempt=attempt)
        return self._vectors(response, len(batch))

    def _create(self, batch: list[str], headers: dict[str, str]) -> tuple[Any, dict[str, str]]:
        """One `embeddings.create` call: the response and its headers (the limiter reads the announced limit)."""
        # The classified error is raised outside `except`, so no traceback chains the SDK's exception.
        try:
            raw = self.client().embeddings.with_raw_response.create(
                model=self.model, input=batch, dimensions=self.dimensions, extra_headers=headers
            )
            response = raw.parse()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a classified ImageAPIError
            error = _for_setting(classify_openai_error(exc, secrets=(self._key.reveal(),)), "text embedder")
        else:
            return response, response_headers(raw.headers)
        raise error

    def _vectors(self, response: Any, expected: int) -> tuple[np.ndarray, dict[str, int]]:
        items = sorted(response.data or [], key=lambda item: item.index)
        if len(items) != expected or [item.index for item in items] != list(range(expected)):
            raise ImageAPIError(
                ErrorClass.INVALID_IMAGE,
                f"the embeddings answer holds {len(items)} vectors for {expected} inputs",
            )
        try:
            vectors = normalise([item.embedding for item in items], self.dimensions)
        except (EmbeddingError, ValueError, TypeError) as exc:
            raise ImageAPIError(
                ErrorClass.INVALID_IMAGE, f"the embeddings answer is unusable: {exc}"
            ) from None
        usage = getattr(response, "usage", None)
        used = {
            "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
            "total_tokens": int(getattr(usage, "total_tokens", 0) or 0),
        }
        return vectors, used


def _for_setting(error: ImageAPIError, setting: str) -> ImageAPIError:
    """The classified error, its "check the setting" advice naming `setting` rather than the generator."""
    message = error.message.replace("image generator's", f"{setting}'s")
    if message == error.message:
        return error
    return ImageAPIError(
        error.error_class,
        message,
        status_code=error.status_code,
        code=error.code,
        retry_after_s=error.retry_after_s,
        headers=error.headers,
    )


class TextEmbedderResource(ConfigurableResource):
    """Base of the embedder resources: assets depend on this and call `get_client()`."""

    def get_client(self) -> TextEmbedder:
        raise NotImplementedError


class HashingTextEmbedderResource(TextEmbedderResource):
    """Embedded default: a deterministic 512-dim hashing embedding (no network, no cost)."""

    def get_client(self) -> HashingTextEmbedder:
        return HashingTextEmbedder()


class OpenAITextEmbedderResource(OpenAIAccountResource, TextEmbedderResource):
    """OpenAI Embeddings API (`openai` SDK). Wire the key as `EnvVar("OPENAI_API_KEY")`; never a literal."""

    model: str = Field(
        default=OPENAI_EMBEDDING_MODEL,
        description="Embedding model; it is recorded per product, and changing it re-embeds on purpose.",
    )
    dimensions: int = Field(
        default=EMBEDDING_DIMENSIONS, description="Vector length asked of the API (the demo's mapping: 512)."
    )
    batch_size: int = Field(default=256, description=f"Texts per embeddings request (1..{MAX_BATCH}).")
    timeout_s: float = Field(default=60.0, description="Seconds per request before it is abandoned.")
    # An int: Dagster's config has no float EnvVar.
    requests_per_minute: int | None = Field(
        default=DEFAULT_EMBEDDINGS_PER_MINUTE,
        description="Embeddings requests per minute every process sharing the coordinator may send with this "
        "key; the limiter paces by the lower of this and the limit the API announces. 0 or None: no pacing.",
    )

    def make_client(self) -> OpenAITextEmbedder:
        return OpenAITextEmbedder(
            api_key=self.api_key,
            base_url=self.base_url,
            model=self.model,
            dimensions=self.dimensions,
            batch_size=self.batch_size,
            timeout_s=self.timeout_s,
            requests_per_minute=self.requests_per_minute,
        )

    def get_client(self) -> OpenAITextEmbedder:
        return super().get_client()
