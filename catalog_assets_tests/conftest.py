"""Shared fixtures: a small catalog, an isolated store and Dagster instance, and a way to materialize."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize
from pydantic import Field

from catalog_assets.definitions import ALL_ASSETS
from catalog_assets.errors import ErrorClass, ImageAPIError
from catalog_assets.resources.image_api import GeneratedImage, ImageGeneratorResource
from catalog_assets.resources.local_coordination import LocalCoordinationResource
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.store import LocalImageStore, LocalImageStoreResource

pytest_plugins = ["catalog_assets_tests.s3_fixtures"]

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"
SAMPLE_CATALOG = SHARED_DATA / "seed_catalog_sample.json"

# Renders per product id, across every generator built in this process (tests run materialize in-process).
RENDERS: Counter[str] = Counter()


class CountingGenerator(OfflineCardGenerator):
    """The offline renderer, counting calls and failing on purpose for chosen products."""

    def __init__(self, fail_ids: set[str], fail_class: ErrorClass) -> None:
        super().__init__()
        self.fail_ids, self.fail_class = fail_ids, fail_class

    def generate(
        self, *, product_id: str, prompt: str, attempt: int, product: Mapping | None = None
    ) -> GeneratedImage:
        RENDERS[product_id] += 1
        if product_id in self.fail_ids:
            raise ImageAPIError(self.fail_class, f"injected failure for {product_id}")
        return super().generate(product_id=product_id, prompt=prompt, attempt=attempt, product=product)


class CountingGeneratorResource(ImageGeneratorResource):
    fail_ids: list[str] = Field(default_factory=list)
    fail_class: str = "bad_request"

    def get_client(self) -> CountingGenerator:
        return CountingGenerator(set(self.fail_ids), ErrorClass(self.fail_class))


@pytest.fixture
def sample_products() -> list[dict]:
    return json.loads(SAMPLE_CATALOG.read_text())


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An isolated working directory with its own store, lock dir and DAGSTER_HOME."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CATALOG_S3_BUCKET", "REDIS_URL", "CATALOG_STORE_DIR"):
        monkeypatch.delenv(var, raising=False)
    RENDERS.clear()
    return tmp_path


class Pipeline:
    """Materializes the real assets in-process against an isolated instance and local store."""

    def __init__(self, root: Path, instance: DagsterInstance) -> None:
        self.root = root
        self.instance = instance
        self.store_dir = root / "store"
        self.store = LocalImageStore(self.store_dir)
        self.generator: ImageGeneratorResource = CountingGeneratorResource()

    def resources(self) -> dict:
        return {
            "image_generator": self.generator,
            "store": LocalImageStoreResource(root=str(self.store_dir)),
            "coordination": LocalCoordinationResource(lock_dir=str(self.root / "locks")),
        }

    def catalog(self, path: Path, batch_size: int = 100):
        config = {"ops": {"product_catalog": {"config": {"path": str(path), "batch_size": batch_size}}}}
        return self._run(["product_catalog"], None, config)

    def images(self, partition: str, config: dict | None = None):
        run_config = {"ops": {"product_images": {"config": config}}} if config else {}
        return self._run(["product_images"], partition, run_config)

    def publish(self):
        return self._run(["image_manifest", "linked_catalog", "generation_report"], None, {})

    def partitions(self) -> list[str]:
        return sorted(self.instance.get_dynamic_partitions("product_batches"))

    def _run(self, selection, partition, run_config):
        return materialize(
            ALL_ASSETS,
            selection=selection,
            partition_key=partition,
            instance=self.instance,
            resources=self.resources(),
            run_config=run_config,
            raise_on_error=False,
        )


@pytest.fixture
def pipeline(workdir) -> Pipeline:
    with DagsterInstance.ephemeral() as instance:
        yield Pipeline(workdir, instance)


def write_catalog(path: Path, products: list[dict]) -> Path:
    path.write_text(json.dumps(products))
    return path


def env_without_secrets() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REDIS_URL", "CATALOG_S3_BUCKET")
    }
