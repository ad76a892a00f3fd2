"""`product_images`: one image (and thumbnail) per product of a batch, in the store, with its outcome."""

import base64
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from catalog_assets import state
from catalog_assets.assets.catalog import product_catalog
from catalog_assets.costs import price_per_image
from catalog_assets.errors import RunStopped, StoreError
from catalog_assets.generation import BatchProcessor, GenerationSettings, ProductResult, summarize
from catalog_assets.partitions import product_batches
from catalog_assets.resources.coordination import CoordinationResource, CoordinationUnavailable, LockTimeout
from catalog_assets.resources.image_api import ImageGeneratorResource
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.store import DEFAULT_IMPORT_DIR, ImageStoreResource, seed_store
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


@asset(
    group_name="images",
    partitions_def=product_batches,
    deps=[product_catalog],
    pool=IMAGE_API_POOL,
    kinds={"python", "s3"},
)
def product_images(
    context: AssetExecutionContext,
    config: ProductImagesConfig,
    image_generator: ImageGeneratorResource,
    store: ImageStoreResource,
    coordination: CoordinationResource,
) -> MaterializeResult:
    """One JPEG image and a 300 px thumbnail per product of the batch, written to the store as soon as each
    is made. Products already stored with the same prompt fingerprint are skipped, so reruns only do what
    is missing. The partition fails when any product ends `failed`; its successes stay stored."""
    partition = context.partition_key
    started, run_started_at = time.monotonic(), time.time()
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
    prior = state.read_outcomes(client, partition)
    price = price_per_image(generator.model, generator.quality, generator.size)
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
    )
    progress = _Progress(context, len(products))
    try:
        with (
            _forward_logs(context),
            coordinator.partition_lock(f"partition:{partition}", context.run.run_id) as lock,
        ):
            processor = BatchProcessor(
                generator=generator,
                fallback=OfflineCardGenerator(),
                store=client,
                coordinator=coordinator,
                run_id=context.run.run_id,
                settings=settings,
                lock=lock,
                seed_store=seed_store(config.import_from_dir, client),
                on_result=progress,
            )
            results = processor.process(products, prior)
            state.write_outcomes(
                client,
                partition,
                context.run.run_id,
                [r.row(prior.get(r.product_id)) for r in results],
                model=generator.model,
            )
    except LockTimeout as exc:
        raise Failure(description=f"{partition} is being processed by another run: {exc}") from None

    duration = time.monotonic() - started
    summary = summarize(results)
    counts = summary["counts"]
    made = [r for r in results if r.outcome in ("generated", "refined", "fallback")]
    stored = [r for r in results if r.key]
    total_bytes = sum(r.bytes for r in made)
    calls = sum(r.attempts for r in results)
    failed = [r for r in results if r.outcome == "failed"]
    metadata = {
        **{f"count_{k}": v for k, v in counts.items()},
        "products": len(results),
        "api_calls": calls,
        "errors_by_class": MetadataValue.json(summary["errors"]),
        "bytes_written": total_bytes,
        "mean_image_bytes": round(total_bytes / len(made)) if made else 0,
        "mean_image_size": human_bytes(total_bytes / len(made)) if made else "n/a",
        "duration_s": round(duration, 2),
        "images_per_min": round(len(made) / duration * 60, 1) if duration > 0 else 0.0,
        "estimated_cost_usd": round(sum(r.cost_usd for r in made), 4),
        "generator": generator.model,
        "store": client.location,
        "failures": MetadataValue.md(
            md_table(
                ["product", "class", "reason", "calls"],
                [[r.product_id, r.error_class, r.message, r.attempts] for r in failed],
            )
            if failed
            else "none"
        ),
        "preview": MetadataValue.md(_preview(client, made or stored)),
    }
    events = coordinator.breaker_events(generator.rate_limit_bucket(), since=run_started_at)
    if events:
        metadata["breaker_events"] = MetadataValue.json([e.as_dict() for e in events][-20:])
    if processor.stopped is not None:
        raise Failure(description=f"{partition}: {processor.stopped.message}", metadata=metadata)
    if failed:
        classes = ", ".join(sorted({r.error_class or "unknown" for r in failed}))
        raise Failure(
            description=f"{partition}: {len(failed)} of {len(results)} products failed ({classes}); "
            "the others are stored, a rerun of this partition redoes only the failed ones",
            metadata=metadata,
        )
    context.log.info(
        f"{partition}: {len(made)} made, {counts['skipped']} already stored, {calls} API calls, {duration:.1f}s"
    )
    return MaterializeResult(metadata=metadata)


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
