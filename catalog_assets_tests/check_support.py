"""Helpers for the check and schedule tests: runs that include the asset checks, their results by name, and
faults planted in the store the way they happen (bytes changed, objects lost, a picture reused)."""

import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    ExecuteInProcessResult,
    instance_for_test,
)
from PIL import Image

from catalog_assets import imaging
from catalog_assets.resources.store import sha256_hex
from catalog_assets_tests.conftest import Pipeline, write_catalog

PUBLISH = ["image_manifest", "linked_catalog", "generation_report"]


@contextmanager
def persistent_pipeline(root: Path) -> Iterator[Pipeline]:
    """A Pipeline on a SQLite instance under `root`: schedule and sensor contexts need a persistent one (they
    reopen the instance from its reference, as the daemon does)."""
    home = root / "dagster_home"
    home.mkdir(exist_ok=True)
    with instance_for_test(temp_dir=str(home)) as instance:
        yield Pipeline(root, instance)


def run_with_checks(
    pipeline: Pipeline, selection: Sequence[str], partition: str | None = None, run_config: dict | None = None
) -> ExecuteInProcessResult:
    """The selected assets with their asset checks (the conftest pipeline runs the checks as the definitions
    do), keeping going after a failure so the test can read it."""
    return pipeline._run(list(selection), partition, run_config or {})


def publish(pipeline: Pipeline) -> ExecuteInProcessResult:
    return run_with_checks(pipeline, PUBLISH)


def catalog(pipeline: Pipeline, path: Path, batch_size: int = 100) -> ExecuteInProcessResult:
    config = {"ops": {"product_catalog": {"config": {"path": str(path), "batch_size": batch_size}}}}
    return run_with_checks(pipeline, ["product_catalog"], run_config=config)


def checks_by_name(result: ExecuteInProcessResult) -> dict[str, AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def generate_all(pipeline: Pipeline, products: list[dict], batch_size: int = 100) -> list[str]:
    """Catalog and every batch on the offline renderer; returns the batch partitions."""
    assert catalog(pipeline, write_catalog(pipeline.root / "catalog.json", products), batch_size).success
    partitions = pipeline.partitions()
    for partition in partitions:
        assert pipeline.images(partition).success
    return partitions


def assert_failed(
    evaluation: AssetCheckEvaluation, severity: AssetCheckSeverity, *metadata_keys: str
) -> None:
    assert not evaluation.passed, evaluation.description
    assert evaluation.severity == severity
    for key in ("explanation", *metadata_keys):
        assert key in evaluation.metadata, (key, sorted(evaluation.metadata))


def manifest_rows(pipeline: Pipeline) -> list[dict]:
    return json.loads(pipeline.store.get("manifests/latest.json"))["rows"]


def plant_image(pipeline: Pipeline, product_id: str, data: bytes) -> None:
    """Make `data` the product's stored image *with matching records*: the object, its sidecar and the batch's
    outcome record (sha256, bytes) all agree, so only what the picture itself is can give it away."""
    key = f"images/{product_id}.jpg"
    pipeline.store.put(key, data, content_type="image/jpeg")
    for obj in pipeline.store.list("state/outcomes/"):
        record = pipeline.store.get_json(obj.key)
        for row in record["results"]:
            if row["product_id"] == product_id:
                row.update(sha256=sha256_hex(data), bytes=len(data))
                pipeline.store.put_json(obj.key, record)
                return
    raise KeyError(product_id)


def rot_bytes(pipeline: Pipeline, key: str) -> None:
    """Change bytes in the middle of a stored object, keeping its length: bit rot, or a foreign writer."""
    path = pipeline.store_dir / key
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0x5A for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def flat_jpeg(size: tuple[int, int] = (1024, 1024), colour=(200, 200, 200)) -> bytes:
    return imaging.encode_jpeg(Image.new("RGB", size, colour))


def reencoded(data: bytes, quality: int = 70) -> bytes:
    """The same picture as other bytes: what a generator stuck on one image returns."""
    return imaging.encode_jpeg(Image.open(io.BytesIO(data)), quality)
