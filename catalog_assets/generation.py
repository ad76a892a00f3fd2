"""One product's way through `product_images`, and a batch of them at once.

prompt → already stored with this fingerprint? skip (or import from the seed store) → claim → calls (see
`call_policy`: budget, first-call gate, breaker, shared rate limit, retries) → validate → JPEG + thumbnail →
atomic put → outcome (`outcomes.ProductResult`). Only the flow lives here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from catalog_assets import imaging, variants
from catalog_assets.call_ledger import CallRecorder
from catalog_assets.call_policy import Attempt, CallPolicy, RunControl
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped, TransientStoreError
from catalog_assets.outcomes import ProductResult, image_key, summarize, thumbnail_key
from catalog_assets.prompts import build_prompt, fingerprint
from catalog_assets.resources.coordination import CoordinationUnavailable, Coordinator, LockHandle, LockLost
from catalog_assets.resources.image_api import ImageGenerator
from catalog_assets.resources.store import JPEG, ImageStore, StoredObject
from catalog_assets.retakes import RetakeOrder

logger = logging.getLogger("catalog_assets.generation")

__all__ = [
    "BatchProcessor",
    "GenerationSettings",
    "ProductResult",
    "Take",
    "image_key",
    "summarize",
    "thumbnail_key",
]

#: failures that say nothing about the product (the run stopped, or never got to try it): they neither
#: count towards `fallback_after_failed_runs` nor reset the count
NOT_THE_PRODUCTS_FAULT = frozenset({"budget", "quota_exhausted", "configuration", "coordination"})


@dataclass(frozen=True)
class GenerationSettings:
    max_calls_per_product: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    fallback_after_failed_runs: int = 3
    jpeg_quality: int = imaging.JPEG_QUALITY
    thumbnail_px: int = imaging.THUMBNAIL_PX
    max_images: int | None = None
    max_cost_usd: float | None = None
    price_per_image_usd: float = 0.0
    claim_wait_s: float = 180.0
    rate_limit_timeout_s: float = 600.0
    breaker_wait_s: float = 120.0
    store_retry_s: float = 120.0  # how long a paid image waits for a failing store before it is given up
    variants: variants.VariantSpec = field(default_factory=variants.VariantSpec)


def seed_copy(
    seed_store: ImageStore | None, product_id: str, fp: str
) -> tuple[StoredObject, StoredObject] | None:
    """(image, thumbnail) the seed store holds for this product with fingerprint `fp`: importable for free."""
    if seed_store is None:
        return None
    head = seed_store.head(image_key(product_id))
    thumb = seed_store.head(thumbnail_key(product_id))
    if head is None or thumb is None or head.metadata.get("fingerprint") != fp:
        return None
    return head, thumb


@dataclass(frozen=True)
class Take:
    """The prompt and fingerprint one product is made from in a run (`BatchProcessor.take`)."""

    prompt: str
    fingerprint: str
    #: the fingerprint of the product's own prompt (equal to `fingerprint` for a first take)
    base_fingerprint: str
    #: the retake order this take carries out, if the stored image was rejected
    order: RetakeOrder | None = None

    @property
    def retakes(self) -> int:
        return self.order.number if self.order is not None else 0

    @property
    def exact(self) -> bool:
        """A retake (or its card) asks for its own fingerprint: a stored retake of the base prompt is not it."""
        return self.order is not None

    @property
    def card_ordered(self) -> bool:
        return self.order is not None and self.order.action == "fallback"

    def describe(self, result: ProductResult) -> None:
        """The fingerprints and retake count the result (and so the stored image's metadata) carries."""
        result.prompt_fingerprint, result.base_fingerprint = self.fingerprint, self.base_fingerprint
        result.retakes = self.retakes


class BatchProcessor:
    """Processes a batch's products concurrently against one generator, store and coordinator."""

    def __init__(
        self,
        *,
        generator: ImageGenerator,
        fallback: ImageGenerator,
        store: ImageStore,
        coordinator: Coordinator,
        run_id: str,
        settings: GenerationSettings | None = None,
        lock: LockHandle | None = None,
        seed_store: ImageStore | None = None,
        on_result: Callable[[ProductResult], None] | None = None,
        sleep: Callable[[float], None] | None = None,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.generator = generator
        self.fallback = fallback
        self.store = store
        self.coordinator = coordinator
        self.run_id = run_id
        self.settings = settings or GenerationSettings()
        self.lock = lock
        self.seed_store = seed_store
        self.on_result = on_result
        self.control = RunControl()
        self.calls = CallPolicy(
            generator=generator,
            coordinator=coordinator,
            settings=self.settings,
            control=self.control,
            sleep=sleep,
            recorder=recorder,
        )
        self._sleep = sleep or self.control.sleep

    @property
    def stopped(self) -> RunStopped | None:
        """Why the run stopped before every product was tried (quota, key, budget, lost lock), if it did."""
        return self.control.stopped

    def stop(self, exc: RunStopped) -> None:
        self.control.stop(exc)

    # -- the batch ---------------------------------------------------------------------------------
    def process(
        self,
        products: Sequence[Mapping[str, Any]],
        prior: Mapping[str, Mapping[str, Any]] | None = None,
        retakes: Mapping[str, RetakeOrder] | None = None,
    ) -> list[ProductResult]:
        """Every product once; `retakes` (by product id) replaces the rejected stored images."""
        prior, retakes = prior or {}, retakes or {}
        workers = max(1, min(self.generator.concurrency, len(products) or 1))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="product")
        try:
            futures = [
                pool.submit(self._process_one, p, prior.get(p["id"], {}), retakes.get(p["id"]))
                for p in products
            ]
            return [f.result() for f in futures]
        except BaseException:
            # Interrupted (SIGTERM, Ctrl-C): products not yet started never start, while calls in flight finish
            # and their paid images are stored, so the rerun does not pay for them again.
            self.stop(RunStopped(ErrorClass.TRANSIENT, "run interrupted"))
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)

    def _process_one(
        self, product: Mapping[str, Any], prior: Mapping[str, Any], order: RetakeOrder | None = None
    ) -> ProductResult:
        result = ProductResult(product_id=product["id"])
        try:
            self.control.raise_if_stopped()
            self._run_product(product, prior, result, order)
        except RunStopped as exc:
            self.stop(exc)
            result.outcome, result.error_class = "failed", exc.error_class.value
            result.message = result.message or f"not finished: run stopped ({exc.message})"
        except (LockLost, CoordinationUnavailable) as exc:
            # without coordination a call could be paid twice: stop calling, cleanly
            self.stop(RunStopped(ErrorClass.COORDINATION, str(exc)))
            result.outcome, result.error_class, result.message = (
                "failed",
                ErrorClass.COORDINATION.value,
                str(exc),
            )
        except Exception as exc:  # one product's surprise must not sink the batch; it is recorded
            logger.exception("unexpected error for %s", product["id"])
            result.outcome, result.error_class = "failed", "unexpected"
            result.message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        if result.outcome == "failed":
            prior_failed = int(prior.get("failed_runs") or 0)
            counted = result.error_class is not None and result.error_class not in NOT_THE_PRODUCTS_FAULT
            result.failed_runs = prior_failed + 1 if counted else prior_failed
        if self.on_result:
            self.on_result(result)
        return result

    def _run_product(
        self,
        product: Mapping[str, Any],
        prior: Mapping[str, Any],
        result: ProductResult,
        order: RetakeOrder | None = None,
    ) -> None:
        pid = product["id"]
        take = self.take(product, order)
        prompt, fp, exact = take.prompt, take.fingerprint, take.exact
        take.describe(result)
        if self._skip_if_stored(pid, fp, result, exact=exact):
            return
        with self._claim(pid, fp, result, exact=exact) as claimed:
            if not claimed:
                return
            if self._skip_if_stored(pid, fp, result, exact=exact):  # done by another run meanwhile
                return
            if take.card_ordered:
                self.store_ordered_card(product, take, result)
                return
            self._generate_and_store(product, prompt, fp, prior, result)

    def take(self, product: Mapping[str, Any], order: RetakeOrder | None = None) -> Take:
        """What `product` is made from in this run: its own prompt, or for a rejected image the retake's
        prompt (own fingerprint) or the card ordered after the last retake. Both modes plan through here."""
        prompt = build_prompt(product)
        base = self._fingerprint(prompt)
        if order is None:
            return Take(prompt, base, base)
        if order.action == "retake":
            retake = order.prompt_for(prompt)
            return Take(retake, self._fingerprint(retake), base, order)
        card = self._fingerprint(f"{prompt}\n(fallback card after {order.number} retakes)")
        return Take(prompt, card, base, order)

    def store_ordered_card(self, product: Mapping[str, Any], take: Take, result: ProductResult) -> None:
        """The offline card in place of an image still rejected after its last retake (no API call)."""
        assert take.order is not None
        result.source = "fallback"
        result.message = f"image rejected in review ({take.order.by}) after {take.order.number} retakes"
        self.finish(product, take.prompt, take.fingerprint, None, result)

    def _fingerprint(self, prompt: str) -> str:
        return fingerprint(prompt, self.generator.model, self.generator.size, self.generator.quality)

    def skip_if_stored(self, pid: str, fp: str, result: ProductResult, exact: bool = False) -> bool:
        """True (outcome `skipped`) when the product's image with fingerprint `fp` is stored or imported
        (`exact`: see `_skip_if_stored`; a `Take` says which)."""
        return self._skip_if_stored(pid, fp, result, exact=exact)

    def _skip_if_stored(self, pid: str, fp: str, result: ProductResult, exact: bool = False) -> bool:
        """A stored image is current when made from prompt fingerprint `fp`, or, unless `exact` (a retake
        asks for its own), when it is a retake of the prompt `fp` is the fingerprint of."""
        head = self.store.head(image_key(pid))
        current = head is not None and (
            head.metadata.get("fingerprint") == fp
            or (not exact and head.metadata.get("base-fingerprint") == fp)
        )
        if head is None or not current:
            result.replacing = head is not None  # an image of another prompt: replaced on purpose
            return self._import_from_seed(pid, fp, result)
        thumb = self.store.head(thumbnail_key(pid))
        if thumb is None:  # the image is complete but its thumbnail went missing: rebuild it, no call
            source = imaging.decode_image(self.store.get(head.key))
            thumb = self.store.put(
                thumbnail_key(pid),
                imaging.make_thumbnail(source, self.settings.thumbnail_px),
                content_type=JPEG,
                metadata={"product-id": pid, "fingerprint": fp},
            ).object
        result.record_stored(head, thumb)
        result.prompt_fingerprint = head.metadata.get("fingerprint") or fp  # a retake's own
        variants.for_stored_image(self.store, result, head.metadata, self.settings.variants)
        return True

    def _import_from_seed(self, pid: str, fp: str, result: ProductResult) -> bool:
        """Moving stores (e.g. local → S3): an image the seed store already holds for this fingerprint is
        copied, verified by the target's checksum, instead of being generated and paid for again."""
        found = seed_copy(self.seed_store, pid, fp)
        if found is None:
            return False
        assert self.seed_store is not None
        head, thumb = found
        t = self.store.put(
            thumb.key, self.seed_store.get(thumb.key), content_type=JPEG, metadata=thumb.metadata
        )
        put = self.store.put(
            head.key,
            self.seed_store.get(head.key),
            content_type=JPEG,
            metadata=head.metadata,
            create_only=not result.replacing,
        )
        result.record_stored(put.object, t.object, put.object.metadata or head.metadata)
        variants.for_stored_image(
            self.store, result, put.object.metadata or head.metadata, self.settings.variants
        )
        result.message, result.uploaded = f"imported from {self.seed_store.location}", put.uploaded
        return True

    # -- claims --------------------------------------------------------------------------------------
    @contextmanager
    def _claim(self, pid: str, fp: str, result: ProductResult, exact: bool = False) -> Iterator[bool]:
        """Hold the product's claim while generating; if another run holds it, wait for its image."""
        deadline = time.monotonic() + self.settings.claim_wait_s
        while True:
            with self.coordinator.claim_product(pid, self.run_id) as handle:
                if handle is not None:
                    yield True
                    return
            if self._skip_if_stored(pid, fp, result, exact=exact):
                yield False
                return
            if time.monotonic() > deadline:
                result.outcome, result.error_class = "failed", ErrorClass.COORDINATION.value
                result.message = f"claimed by another run for over {self.settings.claim_wait_s:.0f}s"
                yield False
                return
            self._sleep(0.5 + random.random() * 0.5)

    # -- generation ----------------------------------------------------------------------------------
    def _generate_and_store(
        self,
        product: Mapping[str, Any],
        prompt: str,
        fp: str,
        prior: Mapping[str, Any],
        result: ProductResult,
    ) -> None:
        state = Attempt(prompt)
        image = None
        try:
            image = self.calls.call_with_retries(product, state, result)
            result.source = "refined" if state.refined else "generated"
        except ImageAPIError as exc:
            result.error_class, result.message = exc.error_class.value, exc.message[:500]
            if exc.error_class is ErrorClass.CONTENT_POLICY:
                result.source = "fallback"  # the refined prompt was refused too
            elif int(prior.get("failed_runs") or 0) + 1 >= self.settings.fallback_after_failed_runs:
                result.source = "fallback"  # failed on every attempt in N consecutive runs
                result.message = f"{exc.message[:400]} (fallback after {self.settings.fallback_after_failed_runs} failed runs)"
            else:
                result.outcome = "failed"
                return
        self.finish(product, prompt, fp, image, result)

    def finish(
        self, product: Mapping[str, Any], prompt: str, fp: str, image: Any, result: ProductResult
    ) -> None:
        """Store `image` (or, for `result.source == "fallback"`, the offline card) as the product's outcome;
        the Batch API's ingest ends each product here too, so both modes store alike."""
        pid = product["id"]
        if result.source == "fallback":
            generated = self.fallback.generate(product_id=pid, prompt=prompt, attempt=0, product=product)
            image = generated.image if generated.image is not None else imaging.decode_image(generated.data)
            result.model = self.fallback.model
        # The image is paid for: a store failing for a while must not make a rerun pay for it again.
        Retrying(
            retry=retry_if_exception_type(TransientStoreError),
            stop=stop_after_delay(self.settings.store_retry_s),
            wait=wait_exponential_jitter(multiplier=0.5, max=8.0),
            sleep=time.sleep,  # not interrupted when the run stops: this image is kept either way
            reraise=True,
        )(self._store, pid, fp, image, result, replacing=result.replacing)
        result.outcome = result.source

    # -- storing -------------------------------------------------------------------------------------
    def _store(self, pid: str, fp: str, image, result: ProductResult, replacing: bool = True) -> None:
        s = self.settings
        jpeg = imaging.encode_jpeg(image, s.jpeg_quality)
        thumb = imaging.make_thumbnail(image, s.thumbnail_px)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cost = self.settings.price_per_image_usd * (result.attempts > 0 and result.source != "fallback")
        metadata = {
            "product-id": pid,
            "fingerprint": fp,
            "model": result.model or self.generator.model,
            "source": result.source or "generated",
            "attempts": str(result.attempts),
            "generated-at": now,
            "width": str(image.width),
            "height": str(image.height),
            "cost-usd": f"{cost:.4f}",
            "base-fingerprint": result.base_fingerprint or fp,
            "retakes": str(result.retakes),
        }
        # A run that lost its partition lock (expired while paused, Redis restarted) makes no more calls, but
        # an image it already paid for is still kept: written create-only, so it never replaces an object
        # another run wrote meanwhile.
        lost = self.lock is not None and not self.lock.is_held()
        if lost:
            self.stop(
                RunStopped(ErrorClass.COORDINATION, "lost the lock (expired or taken over); stopping calls")
            )
        result.variants, figures = variants.for_new_image(
            self.store, pid, fp, image, s.variants, create_only=lost
        )
        result.figures, metadata = figures.columns(), {**metadata, **variants.new_image_metadata(figures)}
        # thumbnail first: an image present in the store always has its thumbnail
        t = self.store.put(
            thumbnail_key(pid),
            thumb,
            content_type=JPEG,
            metadata={"product-id": pid, "fingerprint": fp},
            create_only=lost,
        )
        put = self.store.put(
            image_key(pid), jpeg, content_type=JPEG, metadata=metadata, create_only=lost or not replacing
        )
        result.key, result.thumbnail_key = put.object.key, t.object.key
        result.sha256, result.bytes, result.thumbnail_bytes = (
            put.object.sha256,
            put.object.size,
            t.object.size,
        )
        result.width, result.height = image.width, image.height
        result.generated_at, result.cost_usd, result.uploaded = now, cost, put.uploaded
