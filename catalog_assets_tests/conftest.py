"""Shared fixtures: the sample catalog, an isolated store and Dagster instance, a way to materialize, and the
Redis server on loopback."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
import redis
from dagster import DagsterInstance, materialize
from pydantic import Field

from catalog_assets.checks import ALL_CHECKS
from catalog_assets.definitions import ALL_ASSETS, search_resources_for_environment
from catalog_assets.errors import ErrorClass, ImageAPIError
from catalog_assets.resources.image_api import GeneratedImage, ImageGeneratorResource
from catalog_assets.resources.local_coordination import LocalCoordinationResource
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.store import LocalImageStore, LocalImageStoreResource

pytest_plugins = ["catalog_assets_tests.s3_fixtures", "catalog_assets_tests.pg_support"]

PROJECT = Path(__file__).resolve().parents[1]
#: 72 products in the real catalog's schema and with its quirks: names cut short ("School Supplie", "Women'"),
#: inch marks in attribute values, brands that do not fit the category, timestamps with microseconds.
SAMPLE_CATALOG = Path(__file__).resolve().parent / "fixtures" / "sample_catalog.json"
REDIS_URL = "redis://127.0.0.1:6379/0"

#: The test files that take longest, longest first (`make test` prints the slowest tests; re-rank when these
#: change). Run first, on two workers, they overlap the many short files instead of one of them ending the
#: run alone on one worker while the other idles. Every other file keeps its collection order.
LONGEST_FIRST = (
    "test_resilience_crash.py",
    "test_cli_commands.py",
    "test_runner_stop.py",
    "test_topology.py",
    "test_web_ui.py",
    "test_resilience_faults.py",
    "test_image_query.py",
    "test_batch_runner.py",
    "test_first_call_gate.py",
    "test_redis_pipeline.py",
    "test_review_loop.py",
    "test_checks.py",
    "test_pool_claims.py",
    "test_s3_store.py",
    "test_resilience_limits.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: in-file order is kept


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
    return json.loads(SAMPLE_CATALOG.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def shared_redis() -> redis.Redis:
    """The Redis server on loopback; tests key it under their own prefix (see `support.delete_prefix`)."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        raise RuntimeError(f"these tests need Redis on {REDIS_URL} (.ci/run starts one): {exc}") from exc
    return client


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
            **search_resources_for_environment({}),
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
        # with the checks, as the definitions run them: linked_catalog publishes only after they passed
        return materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=selection,
            partition_key=partition,
            instance=self.instance,
            # the embedded reviewer and embedder unless a test's resources name others
            resources={**search_resources_for_environment({}), **self.resources()},
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
