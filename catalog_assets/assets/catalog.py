"""`product_catalog`: the validated catalog, its quarantined rows, and the stable product → batch map."""

from collections import Counter
from dataclasses import dataclass

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from catalog_assets import state
from catalog_assets.catalog import (
    BATCH_SIZE,
    CatalogLoad,
    assign_batches,
    load_catalog,
    partition_key,
    products_by_batch,
)
from catalog_assets.errors import CatalogError, StoreError
from catalog_assets.partitions import BATCH_PARTITIONS_NAME
from catalog_assets.resources.coordination import (
    CoordinationResource,
    CoordinationUnavailable,
    Coordinator,
    LockTimeout,
)
from catalog_assets.resources.store import DEFAULT_IMPORT_DIR, ImageStore, ImageStoreResource
from catalog_assets.util import md_table


class CatalogConfig(Config):
    path: str = Field(
        default="data/catalog.json", description="Catalog file: JSON array, JSON Lines, CSV or Parquet."
    )
    format: str | None = Field(
        default=None, description="json | jsonl | csv | parquet (default: from the file suffix)."
    )
    import_from_dir: str | None = Field(
        default=DEFAULT_IMPORT_DIR,
        description="The local store a store of another kind (S3) is moving from: while the new store has no "
        "batch assignment, it takes this one's over, so products keep their batches. A local store never "
        "takes over another's numbering. None: never.",
    )
    batch_size: int = Field(
        default=BATCH_SIZE, ge=1, le=1000, description="Products per batch partition (new batches only)."
    )


@dataclass(frozen=True)
class CatalogState:
    """What product_catalog wrote to the store: the batches and where their numbering came from."""

    partitions: list[str]
    numbering: str  # "this store" or "taken over from <local store>"


@asset(group_name="catalog", kinds={"json"})
def product_catalog(
    context: AssetExecutionContext,
    config: CatalogConfig,
    store: ImageStoreResource,
    coordination: CoordinationResource,
) -> MaterializeResult:
    """Every catalog row validated: usable products assigned to batches of at most `batch_size`, the rest
    quarantined with a reason. The assignment is stable across runs and kept in the store."""
    loaded, client, coordinator = _preflight(config, store, coordination)
    written = _write_catalog_state(context, config, loaded, client, coordinator)
    new_keys = _register_partitions(context, written.partitions)
    context.log.info(
        f"{len(loaded.products)} products in {len(written.partitions)} batches ({len(new_keys)} new, numbering "
        f"of {written.numbering}); {len(loaded.quarantined)} of {loaded.rows_read} rows quarantined"
    )
    return MaterializeResult(metadata=_metadata(config, loaded, written, new_keys))


def _preflight(
    config: CatalogConfig, store: ImageStoreResource, coordination: CoordinationResource
) -> tuple[CatalogLoad, ImageStore, Coordinator]:
    """The catalog read and validated, the store and coordinator reachable; else one clear failure."""
    try:
        loaded = load_catalog(config.path, config.format)
    except CatalogError as exc:
        raise Failure(description=str(exc)) from None
    client = store.get_client()
    coordinator = coordination.get_client()
    try:
        client.check()
        coordinator.check()
    except (StoreError, CoordinationUnavailable) as exc:
        raise Failure(description=str(exc)) from None
    return loaded, client, coordinator


def _write_catalog_state(
    context: AssetExecutionContext,
    config: CatalogConfig,
    loaded: CatalogLoad,
    client: ImageStore,
    coordinator: Coordinator,
) -> CatalogState:
    """Assign batches and write each batch's products, the assignment and the catalog index, under the
    catalog lock so two catalog runs never interleave their writes."""
    try:
        with coordinator.partition_lock("catalog", context.run.run_id):
            previous, numbering = state.assignment_to_continue(
                client, config.import_from_dir, [p["id"] for p in loaded.products]
            )
            assignment = assign_batches((p["id"] for p in loaded.products), previous, config.batch_size)
            batches = products_by_batch(loaded.products, assignment)
            for number, products in batches.items():
                client.put_json(state.batch_products_key(partition_key(number)), products)
            client.put_json(state.ASSIGNMENT_KEY, {"batch_size": config.batch_size, "assignment": assignment})
            keys = [partition_key(n) for n in batches]
            client.put_json(
                state.INDEX_KEY,
                {
                    "source": str(config.path),
                    "rows_read": loaded.rows_read,
                    "product_count": len(loaded.products),
                    "partitions": keys,
                    "quarantined": [q.__dict__ for q in loaded.quarantined],
                },
            )
    except LockTimeout as exc:
        raise Failure(description=f"catalog state is being written by another run: {exc}") from None
    return CatalogState(partitions=keys, numbering=numbering)


def _register_partitions(context: AssetExecutionContext, keys: list[str]) -> list[str]:
    """Add the batches the instance does not know yet as dynamic partitions; returns those keys."""
    existing = set(context.instance.get_dynamic_partitions(BATCH_PARTITIONS_NAME))
    new_keys = [k for k in keys if k not in existing]
    if new_keys:
        context.instance.add_dynamic_partitions(BATCH_PARTITIONS_NAME, new_keys)
    return new_keys


def _metadata(config: CatalogConfig, loaded: CatalogLoad, written: CatalogState, new_keys: list[str]) -> dict:
    reasons = Counter(q.reason.split(" (")[0] for q in loaded.quarantined)
    sample = [[q.row, q.product_id, q.reason] for q in loaded.quarantined[:50]]
    return {
        "rows_read": loaded.rows_read,
        "products": len(loaded.products),
        "quarantined": len(loaded.quarantined),
        "quarantine_rate": round(len(loaded.quarantined) / loaded.rows_read, 4),
        "batches": len(written.partitions),
        "new_batches": MetadataValue.text(
            ", ".join(new_keys[:20]) + (" …" if len(new_keys) > 20 else "") or "none"
        ),
        "batch_numbering": MetadataValue.text(written.numbering),
        "quarantine_reasons": MetadataValue.md(
            md_table(["reason", "rows"], reasons.most_common()) if reasons else "none"
        ),
        "quarantined_rows": MetadataValue.md(md_table(["row", "id", "reason"], sample) if sample else "none"),
        "source": MetadataValue.path(str(config.path)),
    }
