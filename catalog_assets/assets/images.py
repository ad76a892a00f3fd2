"""`product_images`: one image (and thumbnail) per product of a batch, in the store, with its outcome."""

import base64
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from dagster import (
    AssetExecutionContext,
    AssetObservation,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from catalog_assets import call_ledger, state, variants
from catalog_assets.assets.catalog import product_catalog
from catalog_assets.costs import price_per_image
from catalog_assets.errors import RunStopped, StoreError
from catalog_assets.generation import BatchProcessor, GenerationSettings
from catalog_assets.outcomes import ProductResult, summarize
from catalog_assets.partitions import product_batches
from catalog_assets.resources.coordination import (
    CoordinationResource,
    CoordinationUnavailable,
    Coordinator,
    LockTimeout,
)
from catalog_assets.resources.image_api import ImageGenerator, ImageGeneratorResource
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.store import DEFAULT_IMPORT_DIR, ImageStore, ImageStoreResource, seed_store
from catalog_assets.retakes import RetakeOrder, retake_orders
from catalog_assets.util import human_bytes, md_table

IMAGE_API_POOL = "image_api"


class ProductImagesConfig(Config):
    max_images: int | None = Field(
        default=None, ge=0, description="Stop before more than this many paid images in one run."
    )
    max_cost_usd: float | None = Field(
        default=None, ge=0, description="Stop before the run's estimated cost exceeds this."
    )
    max_calls_per_product: int = Field(
        default=4, ge=1, le=10, description="API calls per product per run, refinement included."
    )
    fallback_after_failed_runs: int = Field(
        default=3,
        ge=1,
        description="Render the offline card for a product that failed in this many consecutive runs.",
    )
    backoff_base_s: float = Field(
        default=1.0, ge=0, description="First backoff after a transient error (doubles, jittered)."
    )
    import_from_dir: str | None = Field(
        default=DEFAULT_IMPORT_DIR,
        description="A local store whose images (same prompt fingerprint) are copied instead of generated, when "
        "the store is elsewhere (moving from the embedded default to S3). None: never.",
    )
    concurrency: int | None = Field(
        default=None, ge=1, le=256, description="Products generated at once (default: the generator's)."
    )
    variant_formats: list[variants.VariantFormat] = Field(
        default_factory=lambda: list(variants.DEFAULT_FORMATS),
        description="Delivery formats stored besides the JPEG under variants/: 'webp', 'avif' (empty: none).",
    )
    max_retakes: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Retakes per product of an image rejected in review (by the reviewer or `catalog-images "
        "reject`), each with a prompt addressing the issue found; then `after_retakes` applies.",
    )
    after_retakes: Literal["fallback", "keep"] = Field(
        default="fallback",
        description="A product still rejected after max_retakes: 'fallback' stores the offline card, 'keep' "
        "keeps the image, flagged as rejected in the manifest, report and gallery.",
    )
    variant_widths: list[int] = Field(
        default_factory=lambda: list(variants.DEFAULT_WIDTHS),
        description="Widths in px of the delivery variants (none wider than the main image), e.g. [320, 640].",
    )


class _Progress:
    """Logs a batch's progress every few products, with counts and an ETA."""

    def __init__(self, context: AssetExecutionContext, total: int, every: int = 20) -> None:
        self.context, self.total, self.every = context, total, every
        self.done = 0
        self.counts: dict[str, int] = {}
        self.start = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, result: ProductResult) -> None:
        with self._lock:
            self.done += 1
            self.counts[result.outcome] = self.counts.get(result.outcome, 0) + 1
            if self.done % self.every and self.done != self.total:
                return
            elapsed = time.monotonic() - self.start
            eta = elapsed / self.done * (self.total - self.done)
            counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            self.context.log.info(
                f"{self.context.partition_key}: {self.done}/{self.total} products ({counts}); "
                f"{elapsed:.1f}s elapsed, ETA {eta:.0f}s"
            )


def _preview(store, results: list[ProductResult], n: int = 3) -> str:
    """A few thumbnails inline (as data URIs) so the UI shows what the batch looks like."""
    shown = []
    for r in results:
        if r.thumbnail_key and len(shown) < n:
            try:
                data = base64.b64encode(store.get(r.thumbnail_key)).decode()
            except KeyError:
                continue
            shown.append(f"![{r.product_id}](data:image/jpeg;base64,{data})")
    return " ".join(shown) or "no images"


@dataclass(frozen=True)
class _Batch:
    """What a partition's run works on, checked before any call: clients, products, prior outcomes, settings."""

    partition: str
    generator: ImageGenerator
    store: ImageStore
    coordinator: Coordinator
    products: list[dict[str, Any]]
    prior: dict[str, dict[str, Any]]
    settings: GenerationSettings
    #: rejected stored images this run replaces (catalog_assets.retakes), by product id
    retakes: dict[str, RetakeOrder]


@asset(
    group_name="images",
    partitions_def=product_batches,
    deps=[product_catalog],
    pool=IMAGE_API_POOL,
    kinds={"python", "s3"},
    output_required=False,  # batch mode: a run that submits (or finds its batch in flight) ends unmaterialized
)
def product_images(
    context: AssetExecutionContext,
    config: ProductImagesConfig,
    image_generator: ImageGeneratorResource,
    store: ImageStoreResource,
    coordination: CoordinationResource,
) -> Iterator[MaterializeResult]:
    """One JPEG image and a 300 px thumbnail per product of the batch, written to the store as soon as each
    is made. Products already stored with the same prompt fingerprint are skipped, so reruns only do what
    is missing. The partition fails when any product ends `failed`; its successes stay stored. In batch mode
    it is materialized by the run that stores the Batch API's images; earlier runs record an observation."""
    started, run_started_at = time.monotonic(), time.time()
    batch = _preflight(context, config, image_generator, store, coordination)
    mode = getattr(batch.generator, "generation_mode", "sync")
    processor, results, step = _process(context, config, batch, mode=mode)
    if step is not None and step.action != "complete":
        context.log_event(
            AssetObservation(asset_key=context.asset_key, partition=batch.partition, metadata=step.metadata())
        )
        context.log.info(step.message)
        return
    metadata = _metadata(batch, processor, results, time.monotonic() - started, run_started_at)
    metadata["generation_mode"] = mode
    _fail_if_incomplete(batch, processor, results, metadata)
    context.log.info(_summary_line(batch, results, time.monotonic() - started))
    yield MaterializeResult(metadata=metadata)


def _preflight(
    context: AssetExecutionContext,
    config: ProductImagesConfig,
    image_generator: ImageGeneratorResource,
    store: ImageStoreResource,
    coordination: CoordinationResource,
) -> _Batch:
    """Everything that can refuse the run before a single call: settings, store, coordination, the batch."""
    partition = context.partition_key
    generator = image_generator.get_client()
    if config.concurrency:
        generator.concurrency = config.concurrency
    client = store.get_client()
    coordinator = coordination.get_client()
    try:
        generator.check_config()
        client.check()
        coordinator.check()
    except (RunStopped, StoreError, CoordinationUnavailable) as exc:
        raise Failure(description=str(getattr(exc, "message", exc))) from None
    products = state.read_batch_products(client, partition)
    if products is None:
        raise Failure(
            description=f"{partition} is unknown to the store {client.location}: materialize product_catalog first"
        )
    mode = getattr(generator, "generation_mode", "sync")
    price = price_per_image(generator.model, generator.quality, generator.size, mode=mode)
    if price is None and generator.paid and config.max_cost_usd is not None:
        raise Failure(
            description=f"no price estimate for {generator.model} / {generator.quality} / {generator.size} in "
            "catalog_assets/image_prices.json, so max_cost_usd cannot be enforced: add the price or drop the limit"
        )
    settings = GenerationSettings(
        max_calls_per_product=config.max_calls_per_product,
        fallback_after_failed_runs=config.fallback_after_failed_runs,
        backoff_base_s=config.backoff_base_s,
        max_images=config.max_images,
        max_cost_usd=config.max_cost_usd,
        price_per_image_usd=price or 0.0,
        variants=_variant_spec(config),
    )
    prior = state.read_outcomes(client, partition)
    orders = retake_orders(
        prior,
        state.read_reviews(client, partition),
        state.read_rejections(client),
        max_retakes=config.max_retakes,
        after_retakes=config.after_retakes,
    )
    return _Batch(partition, generator, client, coordinator, products, prior, settings, orders)


def _process(
    context: AssetExecutionContext, config: ProductImagesConfig, batch: _Batch, mode: str = "sync"
) -> tuple[BatchProcessor, list[ProductResult], Any]:
    """Every product of the batch under the partition lock, then its outcomes recorded for the next run;
    in batch mode, the partition's next Batch API step (`batch_mode.Step`) instead of the calls."""
    run_id = context.run.run_id
    try:
        with (
            _forward_logs(context),
            call_ledger.recording(
                batch.coordinator.call_log(), batch.store, run_id, batch.partition
            ) as recorder,
            batch.coordinator.partition_lock(f"partition:{batch.partition}", run_id) as lock,
        ):
            processor = BatchProcessor(
                generator=batch.generator,
                fallback=OfflineCardGenerator(),
                store=batch.store,
                coordinator=batch.coordinator,
                run_id=run_id,
                settings=batch.settings,
                lock=lock,
                seed_store=seed_store(config.import_from_dir, batch.store),
                on_result=_Progress(context, len(batch.products)),
                recorder=recorder,
            )
            step = _batch_step(config, batch, processor) if mode == "batch" else None
            if step is not None and step.action != "complete":
                return processor, [], step
            results = (
                step.results
                if step is not None
                else processor.process(batch.products, batch.prior, batch.retakes)
            )
            rows = [r.row(batch.prior.get(r.product_id)) for r in results]
            state.write_outcomes(
                batch.store, batch.partition, run_id, rows, model=batch.generator.model, generation_mode=mode
            )
    except LockTimeout as exc:
        raise Failure(description=f"{batch.partition} is being processed by another run: {exc}") from None
    return processor, results, step


def _batch_step(config: ProductImagesConfig, batch: _Batch, processor: BatchProcessor) -> Any:
    from catalog_assets.batch_mode import batch_step

    try:
        return batch_step(
            partition=batch.partition,
            generator=batch.generator,  # type: ignore[arg-type]  # only the OpenAI generator has a batch mode
            processor=processor,
            store=batch.store,
            products=batch.products,
            max_rounds=config.max_calls_per_product,
            max_images=config.max_images,
            max_cost_usd=config.max_cost_usd,
            price_per_image_usd=batch.settings.price_per_image_usd,
            retakes=batch.retakes,
        )
    except RunStopped as exc:
        raise Failure(description=exc.message) from None


def _made(results: list[ProductResult]) -> list[ProductResult]:
    return [r for r in results if r.outcome in ("generated", "refined", "fallback")]


def _metadata(
    batch: _Batch,
    processor: BatchProcessor,
    results: list[ProductResult],
    duration: float,
    run_started_at: float,
) -> dict[str, Any]:
    """The partition's materialization metadata: counts, calls, bytes, speed, cost, failures, a preview."""
    summary = summarize(results)
    made = _made(results)
    stored = [r for r in results if r.key]
    total_bytes = sum(r.bytes for r in made)
    failed = [r for r in results if r.outcome == "failed"]
    metadata: dict[str, Any] = {
        **{f"count_{k}": v for k, v in summary["counts"].items()},
        "products": len(results),
        "api_calls": sum(r.attempts for r in results) if batch.generator.paid else 0,
        "errors_by_class": MetadataValue.json(summary["errors"]),
        "bytes_written": total_bytes,
        "mean_image_bytes": round(total_bytes / len(made)) if made else 0,
        "mean_image_size": human_bytes(total_bytes / len(made)) if made else "n/a",
        "duration_s": round(duration, 2),
        "images_per_min": round(len(made) / duration * 60, 1) if duration > 0 else 0.0,
        "estimated_cost_usd": round(sum(r.cost_usd for r in made), 4),
        "generator": batch.generator.model,
        "store": batch.store.location,
        "failures": MetadataValue.md(
            md_table(
                ["product", "class", "reason", "calls"],
                [[r.product_id, r.error_class, r.message, r.attempts] for r in failed],
            )
            if failed
            else "none"
        ),
        "preview": MetadataValue.md(_preview(batch.store, made or stored)),
        "retakes_ordered": sum(o.action == "retake" for o in batch.retakes.values()),
        "fallbacks_after_retakes": sum(o.action == "fallback" for o in batch.retakes.values()),
    }
    if batch.retakes:
        metadata["retakes"] = MetadataValue.md(
            md_table(
                ["product", "action", "number", "by", "issues"],
                [
                    [o.product_id, o.action, o.number, o.by, ", ".join(o.issues)]
                    for o in batch.retakes.values()
                ],
            )
        )
    events = batch.coordinator.breaker_events(processor.calls.bucket, since=run_started_at)
    if events:
        metadata["breaker_events"] = MetadataValue.json([e.as_dict() for e in events][-20:])
    rate_changes = batch.coordinator.rate_events(processor.calls.bucket, since=run_started_at)
    if rate_changes:
        metadata["rate_events"] = MetadataValue.json([e.as_dict() for e in rate_changes][-20:])
    return metadata


def _fail_if_incomplete(
    batch: _Batch, processor: BatchProcessor, results: list[ProductResult], metadata: dict[str, Any]
) -> None:
    """The partition fails, with its metadata, when the run stopped or any product ended `failed`."""
    if processor.stopped is not None:
        raise Failure(description=f"{batch.partition}: {processor.stopped.message}", metadata=metadata)
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        classes = ", ".join(sorted({r.error_class or "unknown" for r in failed}))
        raise Failure(
            description=f"{batch.partition}: {len(failed)} of {len(results)} products failed ({classes}); "
            "the others are stored, a rerun of this partition redoes only the failed ones",
            metadata=metadata,
        )


def _summary_line(batch: _Batch, results: list[ProductResult], duration: float) -> str:
    """One log line of what the batch did; the offline renderer makes no API call, so it says what it drew."""
    made = len(_made(results))
    skipped = sum(r.outcome == "skipped" for r in results)
    if batch.generator.paid:
        calls = sum(r.attempts for r in results)
        did = f"{made} made, {skipped} already stored, {calls} API calls"
    else:
        did = f"{made} product cards drawn offline (no API calls), {skipped} already stored"
    return f"{batch.partition}: {did}, {duration:.1f}s"


def _variant_spec(config: ProductImagesConfig) -> variants.VariantSpec:
    try:
        return variants.VariantSpec.of(config.variant_formats, config.variant_widths)
    except ValueError as exc:
        raise Failure(description=f"product_images config: {exc}") from None


@contextmanager
def _forward_logs(context: AssetExecutionContext) -> Iterator[None]:
    """Waits for locks, limiter pauses and breaker changes show in the run's log (they log at INFO)."""
    handler = _DagsterLogHandler(context)
    loggers = [
        logging.getLogger("catalog_assets.generation"),
        logging.getLogger("catalog_assets.coordination"),
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


class _DagsterLogHandler(logging.Handler):
    """Forwards the generation and coordination loggers (breaker changes, stops) into the run's log."""

    def __init__(self, context: AssetExecutionContext) -> None:
        super().__init__(logging.INFO)
        self.context = context

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if record.levelno >= logging.ERROR:
            self.context.log.error(message)
        elif record.levelno >= logging.WARNING:
            self.context.log.warning(message)
        else:
            self.context.log.info(message)
