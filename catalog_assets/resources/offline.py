"""The embedded default image generator: the offline product-card renderer (no network, no cost).
It is also the fallback renderer for products the API refuses."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import Field

from catalog_assets.cards import OFFLINE_MODEL, render_product_card
from catalog_assets.resources.image_api import GeneratedImage, ImageGenerator, ImageGeneratorResource


class OfflineCardGenerator(ImageGenerator):
    paid = False
    images_per_minute = None

    def __init__(self, size: int = 1024, concurrency: int | None = None) -> None:
        self.model = OFFLINE_MODEL
        self.pixels = size
        self.size = f"{size}x{size}"
        self.quality = "standard"
        self.concurrency = concurrency or max(2, (os.cpu_count() or 2))

    def generate(
        self, *, product_id: str, prompt: str, attempt: int, product: Mapping | None = None
    ) -> GeneratedImage:
        card = render_product_card(product or {"id": product_id, "name": product_id}, self.pixels)
        return GeneratedImage(data=b"", model=self.model, image=card)


class OfflineImageGeneratorResource(ImageGeneratorResource):
    """Embedded default: draws a product card from the product's own fields with Pillow."""

    size: int = Field(default=1024, description="Edge length in pixels of the square card.")
    concurrency: int | None = Field(
        default=None, description="Products rendered at once (default: CPU count)."
    )

    def get_client(self) -> OfflineCardGenerator:
        return OfflineCardGenerator(self.size, self.concurrency)
