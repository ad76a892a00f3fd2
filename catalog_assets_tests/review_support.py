"""Helpers of the review tests: stored images to review without a pipeline, and a batch of images made
through the stand-in's Images API with the stand-in's vision model as the pipeline's reviewer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from catalog_assets import imaging
from catalog_assets.outcomes import image_key
from catalog_assets.resources.image_reviewer import OpenAIImageReviewerResource
from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets.resources.store import LocalImageStore
from catalog_assets_tests.conftest import write_catalog


def stored_images(root: Path, products: list[dict]) -> tuple[LocalImageStore, dict[str, dict]]:
    """A store at `root` holding one generated-looking image per product, and the outcomes naming them."""
    store = LocalImageStore(root)
    outcomes = {}
    for i, product in enumerate(products):
        data = imaging.encode_jpeg(Image.new("RGB", (64, 64), (20 * i % 255, 90, 200)))
        put = store.put(image_key(product["id"]), data, content_type="image/jpeg")
        outcomes[product["id"]] = {"key": put.object.key, "sha256": put.object.sha256, "model": "gpt-image-2"}
    return store, outcomes


def images_through_the_api(
    pipeline: Any, monkeypatch: Any, standin: Any, workdir: Path, products: list[dict], api_key: str
) -> str:
    """One batch of `products` generated through the stand-in, its reviewer the stand-in's vision model;
    no review made yet. Returns the batch's partition."""
    monkeypatch.setenv("OPENAI_BASE_URL", standin.base_url)
    pipeline.generator = OpenAIImageGeneratorResource(
        api_key=api_key, size="256x256", images_per_minute=None, timeout_s=10.0
    )
    base = pipeline.resources
    pipeline.resources = lambda: {
        **base(),
        "image_reviewer": OpenAIImageReviewerResource(api_key=api_key, timeout_s=10.0),
    }
    assert pipeline.catalog(write_catalog(workdir / "c.json", products), batch_size=len(products)).success
    (partition,) = pipeline.partitions()
    assert pipeline.images(partition).success
    return partition
