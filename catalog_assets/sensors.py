"""`catalog_batches_sensor`: when the catalog file changes, rematerialize `product_catalog` so the new
products get batches and the new `batch-NNNN` partitions are registered.

The sensor computes no batch keys itself: `product_catalog` alone extends the stable product → batch
assignment kept in the store (under a lock, with the batch size the assignment was made with), and
registers exactly the keys it assigned. A second writer could only disagree with it.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from catalog_assets.assets.catalog import CatalogConfig

CATALOG_SENSOR_NAME = "catalog_batches_sensor"
CATALOG_JOB_NAME = "catalog_job"  # defined in definitions.py; named here to avoid an import cycle
PRODUCT_CATALOG = AssetKey("product_catalog")
CATALOG_SHA_TAG = "catalog-images/catalog-sha256"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def last_catalog_config(instance: DagsterInstance) -> tuple[dict[str, Any], float] | None:
    """The `product_catalog` config of its last materialization and when that was, or None if never."""
    event = instance.get_latest_materialization_event(PRODUCT_CATALOG)
    if event is None:
        return None
    run = instance.get_run_by_id(event.run_id)
    ops = (run.run_config.get("ops") or {}) if run else {}
    config = dict((ops.get("product_catalog") or {}).get("config") or {})
    return config, event.timestamp


@sensor(
    name=CATALOG_SENSOR_NAME,
    job_name=CATALOG_JOB_NAME,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Rematerializes product_catalog, with the config of its last materialization, when that "
    "catalog file's content changes; product_catalog then registers the new batch partitions. Waits for a "
    "first materialization of product_catalog, which chooses the file.",
)
def catalog_batches_sensor(context: SensorEvaluationContext):
    last = last_catalog_config(context.instance)
    if last is None:
        return SkipReason(
            "product_catalog was never materialized: materialize it once to choose the catalog file"
        )
    config, materialized_at = last
    path = Path(config.get("path") or CatalogConfig.model_fields["path"].default)
    try:
        stat = path.stat()
        sha = _file_sha256(path)
    except OSError as exc:
        return SkipReason(f"catalog file {path} cannot be read: {exc.strerror or exc}")
    seen = json.loads(context.cursor) if context.cursor else {}
    cursor = json.dumps({"path": str(path), "sha256": sha})
    if seen.get("path") == str(path):
        if seen.get("sha256") == sha:
            return SkipReason(f"{path} unchanged")
    elif stat.st_mtime <= materialized_at:
        # A file not seen before (first tick, or another path chosen): the last materialization read it if
        # it has not been written since.
        return SensorResult(
            skip_reason=f"{path} unchanged since product_catalog was materialized", cursor=cursor
        )
    context.log.info(f"{path} changed (sha256 {sha[:12]}…): requesting product_catalog")
    return SensorResult(
        run_requests=[
            RunRequest(
                # content and time: a file changed back to earlier content is reloaded too
                run_key=f"{sha[:16]}:{stat.st_mtime_ns}",
                run_config={"ops": {"product_catalog": {"config": config}}},
                tags={CATALOG_SHA_TAG: sha, "catalog-images/launched-by": CATALOG_SENSOR_NAME},
            )
        ],
        cursor=cursor,
    )
