"""Which batches a `catalog-images run` need not launch: every product of the batch is stored with its
current prompt fingerprint, its thumbnail and delivery variants, and the partition is materialized.

Read from the store in a few requests, whatever the catalog's size: the batches' products and last outcomes
(one object each), one listing of images, thumbnails and variants, and one status query to the instance.
A batch that is not up to date is launched as before, and its run skips what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetKey, DagsterInstance

from catalog_assets import state, variants
from catalog_assets.outcomes import image_key, thumbnail_key
from catalog_assets.prompts import build_prompt, fingerprint
from catalog_assets.resources.image_api import ImageGenerator
from catalog_assets.resources.store import ImageStore

#: outcomes that leave the product's image in the store
STORED = frozenset({"generated", "refined", "fallback", "skipped"})


def batch_is_current(
    products: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, Mapping[str, Any]],
    generator: ImageGenerator,
    spec: variants.VariantSpec,
    listed: set[str],
) -> bool:
    """True when a run of the batch would skip every product and write nothing: each has a stored outcome
    with the fingerprint its prompt has now, its image and thumbnail are listed, and so is every variant
    `spec` asks for."""
    for product in products:
        pid = product["id"]
        row = outcomes.get(pid)
        if row is None or row.get("outcome") not in STORED:
            return False
        fp = fingerprint(build_prompt(product), generator.model, generator.size, generator.quality)
        if row.get("prompt_fingerprint") != fp:
            return False
        if image_key(pid) not in listed or thumbnail_key(pid) not in listed:
            return False
        wanted = {key for key, _, _ in spec.planned(pid, row.get("width"))}
        have = {v.get("key") for v in row.get("variants") or []}
        if not wanted <= have or not wanted <= listed:
            return False
    return True


def up_to_date(
    instance: DagsterInstance,
    store: ImageStore,
    generator: ImageGenerator,
    partitions: Sequence[str],
    spec: variants.VariantSpec,
) -> list[str]:
    """The partitions among `partitions` that need no run (see the module docstring)."""
    from catalog_assets.partitions import product_batches

    if not partitions:
        return []
    status = (
        instance.get_status_by_partition(AssetKey("product_images"), list(partitions), product_batches) or {}
    )  # None: the asset was never materialized in this instance
    materialized = [p for p in partitions if getattr(status.get(p), "value", None) == "MATERIALIZED"]
    if not materialized:
        return []
    listed = {o.key for prefix in ("images/", "thumbnails/") for o in store.list(prefix)}
    if spec.formats and spec.widths:
        listed |= {o.key for o in store.list(variants.PREFIX)}
    current = []
    for partition in materialized:
        products = state.read_batch_products(store, partition)
        if products and batch_is_current(
            products, state.read_outcomes(store, partition), generator, spec, listed
        ):
            current.append(partition)
    return current


def current_batches(partitions: Sequence[str], images_config: Mapping[str, Any] | None) -> list[str]:
    """`up_to_date` with the resources the environment selects for a run and the run's images config."""
    from catalog_assets.assets.images import ProductImagesConfig
    from catalog_assets.definitions import resources_for_environment

    config = ProductImagesConfig(**dict(images_config or {}))
    spec = variants.VariantSpec.of(config.variant_formats, config.variant_widths)
    resources = resources_for_environment()
    with (
        resources["image_generator"].process_config_and_initialize_cm() as generator_resource,
        resources["store"].process_config_and_initialize_cm() as store_resource,
        DagsterInstance.get() as instance,
    ):
        return up_to_date(
            instance, store_resource.get_client(), generator_resource.get_client(), partitions, spec
        )


# -- publishing again only when something changed ---------------------------------------------------------

#: what the last publish by `catalog-images run` was made from (a digest), and its run
PUBLISHED_KEY = "state/last_publish.json"
#: settings that change what the publish writes without any batch changing (values are hashed, the key's
#: only whether it is set: it chooses the reviewer and the embedder)
_PUBLISH_SETTINGS = (
    "CATALOG_PUBLIC_BASE_URL",
    "CATALOG_S3_BUCKET",
    "CATALOG_S3_PREFIX",
    "CATALOG_STORE_DIR",
    "AWS_ENDPOINT_URL",
    "OPENAI_BASE_URL",
    "CATALOG_IMAGE_MODEL",
    "CATALOG_IMAGES_PER_MINUTE",
    "CATALOG_EMBEDDING_MODEL",
    "CATALOG_REVIEW_MODEL",
    "REDIS_URL",
)


def publish_inputs(store: ImageStore, env: Mapping[str, str]) -> str:
    """A digest of everything the publish reads that a rerun could change: the catalog index, every batch's
    products and outcomes, the settings above and this package's code."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    def stored(key: str) -> bytes:
        try:
            return store.get(key)
        except KeyError:
            return b"-"

    index = stored(state.INDEX_KEY)
    add(state.INDEX_KEY, index)
    for partition in state.read_index(store).get("partitions", []):
        for key in (state.batch_products_key(partition), state.outcomes_key(partition)):
            add(key, stored(key))
    for name in _PUBLISH_SETTINGS:
        add(name, (env.get(name) or "").encode())
    add("OPENAI_API_KEY set", b"1" if env.get("OPENAI_API_KEY") else b"0")
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".json", ".lua") and "__pycache__" not in path.parts:
            add(path.relative_to(package).as_posix(), path.read_bytes())
    return digest.hexdigest()


def unchanged_publish(
    instance: DagsterInstance, store: ImageStore, digest: str, publish_job: str, live_call_records: bool
) -> Mapping[str, Any] | None:
    """The last publish's record when publishing again would write the same: it was made from `digest`, it
    is the instance's latest publish run and succeeded, and no dead run's calls wait to be counted."""
    from dagster import DagsterRunStatus, RunsFilter

    if live_call_records:
        return None
    last = store.get_json(PUBLISHED_KEY, default=None) or {}
    if last.get("inputs") != digest:
        return None
    runs = instance.get_runs(RunsFilter(job_name=publish_job), limit=1)
    if not runs or runs[0].run_id != last.get("run_id") or runs[0].status != DagsterRunStatus.SUCCESS:
        return None
    return last


def record_publish(store: ImageStore, digest: str, run_id: str, report: str | None) -> None:
    store.put_json(PUBLISHED_KEY, {"inputs": digest, "run_id": run_id, "report": report})


class PublishPlan:
    """For the runner: whether the publish run can be left out, and the record to keep after one."""

    def __init__(self, publish_job: str) -> None:
        import os

        from catalog_assets.definitions import resources_for_environment

        self.publish_job = publish_job
        self.env = dict(os.environ)
        self.resources = resources_for_environment()
        self.digest: str | None = None

    def _store(self):
        return self.resources["store"].process_config_and_initialize_cm()

    def unchanged(self) -> Mapping[str, Any] | None:
        """The last publish's record if nothing changed since (see `unchanged_publish`), else None."""
        with (
            self._store() as store_resource,
            self.resources["coordination"].process_config_and_initialize_cm() as coordination,
            DagsterInstance.get() as instance,
        ):
            store = store_resource.get_client()
            self.digest = publish_inputs(store, self.env)
            call_log = coordination.get_client().call_log()
            live = bool(call_log.runs()) if call_log is not None else False
            return unchanged_publish(instance, store, self.digest, self.publish_job, live)

    def published(self, run_id: str, report: str | None) -> None:
        if self.digest is None:
            return
        with self._store() as store_resource:
            record_publish(store_resource.get_client(), self.digest, run_id, report)
