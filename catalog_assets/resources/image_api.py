"""The image-generator interface: what `product_images` asks of any image source.

Implementations: the offline product-card renderer (embedded default and fallback) in `offline.py`, and
the OpenAI Images API in `openai_images.py`. A generator makes exactly one attempt per call; retries,
refinement, rate limiting, the breaker and the first-call gate live in `catalog_assets.call_policy`, so every
attempt is counted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import ConfigurableResource


@dataclass(frozen=True)
class GeneratedImage:
    """Raw bytes as the source returned them (any format Pillow reads), plus what the source said."""

    data: bytes
    model: str
    revised_prompt: str | None = None
    usage: Mapping[str, int] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # response headers (rate-limit learning)
    #: an already decoded PIL image, when the source drew one (spares a decode); `data` may then be empty
    image: Any = None


class ImageGenerator(ABC):
    """One attempt per call. Raises `catalog_assets.errors.ImageAPIError` (classified) on failure."""

    model: str
    size: str
    quality: str
    #: True when a call costs money (the budget guard and cost report apply)
    paid: bool = False
    #: requests per minute the caller may send, when the source has a limit (None: unlimited)
    images_per_minute: float | None = None
    #: products of a batch generated at once
    concurrency: int = 4

    @abstractmethod
    def generate(
        self, *, product_id: str, prompt: str, attempt: int, product: Mapping | None = None
    ) -> GeneratedImage:
        """Generate one image for `prompt`. `attempt` (1-based) is part of the request id for attribution."""

    def check_config(self) -> None:  # noqa: B027 - optional hook
        """Raise `RunStopped` before any call when the configuration cannot work (e.g. a retired model)."""

    def rate_limit_bucket(self) -> str:
        """Name of the shared rate-limit bucket: one per account key and model, never the key itself."""
        return f"{type(self).__name__}:{self.model}"


class ImageGeneratorResource(ConfigurableResource):
    """Base of the generator resources: assets depend on this and call `get_client()`."""

    def get_client(self) -> ImageGenerator:
        raise NotImplementedError
