"""One product's way through `product_images`, and a batch of them at once.

prompt → already stored with this fingerprint? skip → claim → breaker + shared rate limit → generate →
classify any error → validate → JPEG + thumbnail → atomic put → outcome. Retries are driven by tenacity
with the waits the error class asks for; every call is counted on the product's result.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from catalog_assets import imaging
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped, TransientStoreError
from catalog_assets.prompts import build_prompt, fingerprint, refine_prompt
from catalog_assets.resources.coordination import (
    BreakerOpen,
    CoordinationUnavailable,
    Coordinator,
    LockHandle,
    LockLost,
    limit_from_headers,
)
from catalog_assets.resources.image_api import ImageGenerator
from catalog_assets.resources.store import JPEG, ImageStore, StoredObject

logger = logging.getLogger("catalog_assets.generation")

OUTCOMES = ("generated", "refined", "fallback", "failed", "skipped")
RETRYABLE = {
    ErrorClass.RATE_LIMITED,
    ErrorClass.TRANSIENT,
    ErrorClass.INVALID_IMAGE,
    ErrorClass.CONTENT_POLICY,
}

# Rate-limit buckets (account key + model) whose calls succeeded lately in this process. Their runs skip the
# first-call gate, so a worker's next partition does not idle for one latency before using the rate limit.
# A bad key or an empty quota never gets here (and is dropped when it shows up): those runs still risk one
# call, and a key revoked mid-run at most one call per worker.
VERIFIED_FOR_S = 600.0
_verified: dict[str, float] = {}
_verified_lock = threading.Lock()


def _recently_verified(bucket: str) -> bool:
    with _verified_lock:
        return time.monotonic() - _verified.get(bucket, -math.inf) < VERIFIED_FOR_S


def _set_verified(bucket: str, ok: bool) -> None:
    with _verified_lock:
        if ok:
            _verified[bucket] = time.monotonic()
        else:
            _verified.pop(bucket, None)


def image_key(product_id: str) -> str:
    return f"images/{product_id}.jpg"


def thumbnail_key(product_id: str) -> str:
    return f"thumbnails/{product_id}.jpg"


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
    #: how long the other workers wait for the first call's verdict: a bad key or an empty quota is refused
    #: within milliseconds, while an image takes seconds, so a full wait would idle every worker for nothing
    first_call_gate_s: float = 1.0
    rate_limit_timeout_s: float = 600.0
    breaker_wait_s: float = 120.0
    store_retry_s: float = 120.0  # how long a paid image waits for a failing store before it is given up


@dataclass
class ProductResult:
    """The outcome of one product in one run; `row()` is what the batch record and manifest keep."""

    product_id: str
    outcome: str = "failed"
    source: str | None = None
    attempts: int = 0  # API calls made for this product in this run
    error_class: str | None = None
    message: str | None = None
    errors: list[str] = field(default_factory=list)  # error class of each failed call, in order
    key: str | None = None
    thumbnail_key: str | None = None
    sha256: str | None = None
    bytes: int = 0
    thumbnail_bytes: int = 0
    width: int | None = None
    height: int | None = None
    model: str | None = None
    prompt_fingerprint: str | None = None
    generated_at: str | None = None
    cost_usd: float = 0.0
    uploaded: bool = False
    replacing: bool = False  # an image of another prompt fingerprint was in the store and is replaced
    failed_runs: int = 0  # consecutive runs in which this product ended failed

    def record_stored(
        self, image: StoredObject, thumb: StoredObject, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Outcome `skipped`: the product's image is in the store; its record comes from the object's metadata."""
        meta = image.metadata if metadata is None else metadata
        self.outcome, self.source = "skipped", meta.get("source", "generated")
        self.key, self.thumbnail_key = image.key, thumb.key
        self.sha256, self.bytes, self.thumbnail_bytes = image.sha256, image.size, thumb.size
        self.width = int(meta["width"]) if meta.get("width") else None
        self.height = int(meta["height"]) if meta.get("height") else None
        self.model, self.generated_at = meta.get("model"), meta.get("generated-at")
        self.cost_usd = float(meta.get("cost-usd") or 0.0)

    def row(self, prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The record kept for the product; calls and errors accumulate over runs of the same prompt."""
        row = asdict(self)
        prior = prior or {}
        same = prior.get("prompt_fingerprint") == self.prompt_fingerprint
        prior_calls = int(prior.get("calls_total", prior.get("attempts")) or 0) if same else 0
        prior_errors = list(prior.get("errors_total", prior.get("errors")) or []) if same else []
        row["calls_total"] = prior_calls + self.attempts
        row["errors_total"] = prior_errors + self.errors
        return row


class Budget:
    """Per-run limit on paid images and their estimated cost: reserve before a call, settle after.

    A call that may still fail holds its reservation until it settles; a worker that finds the only room left
    held that way waits for it rather than stopping the run, so a run stops once the paid images alone reach
    a limit, and its message is true."""

    def __init__(self, max_images: int | None, max_cost_usd: float | None, price: float) -> None:
        self.max_images, self.max_cost_usd, self.price = max_images, max_cost_usd, price
        self.images = 0
        self.reserved_cost = 0.0
        self.spent = 0.0
        self.in_flight = 0
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)

    def _fits(self) -> bool:
        if self.max_images is not None and self.images + 1 > self.max_images:
            return False
        return (
            self.max_cost_usd is None
            or self.spent + self.reserved_cost + self.price <= self.max_cost_usd + 1e-9
        )

    def reserve(self, stopped: threading.Event | None = None) -> None:
        with self._settled:
            while not self._fits():
                if self.in_flight == 0:
                    if self.max_images is not None and self.images + 1 > self.max_images:
                        raise RunStopped(
                            ErrorClass.BUDGET,
                            f"max_images={self.max_images} reached; stopping before more calls",
                        )
                    raise RunStopped(
                        ErrorClass.BUDGET,
                        f"max_cost_usd={self.max_cost_usd:.2f} would be exceeded (spent ${self.spent:.3f}, "
                        f"${self.price:.3f} per image); stopping before more calls",
                    )
                if stopped is not None and stopped.is_set():
                    raise RunStopped(
                        ErrorClass.BUDGET, "run stopped while waiting for calls in flight to settle"
                    )
                self._settled.wait(0.25)
            self.images += 1
            self.in_flight += 1
            self.reserved_cost += self.price

    def settle(self, charged: bool) -> None:
        with self._settled:
            self.reserved_cost -= self.price
            self.in_flight -= 1
            if charged:
                self.spent += self.price
            else:
                self.images -= 1
            self._settled.notify_all()


class _Attempt:
    """Mutable state of one product's attempts: the current prompt and whether it was refined."""

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.refined = False


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
        self.bucket = generator.rate_limit_bucket()
        self.budget = Budget(
            self.settings.max_images, self.settings.max_cost_usd, self.settings.price_per_image_usd
        )
        self.expected_size = imaging.parse_size(generator.size)
        self.stopped: RunStopped | None = None
        self._stop_event = threading.Event()
        self._first_call = threading.Lock()  # see _first_call_gate
        self._first_call_claimed = False
        self._first_call_done = threading.Event()
        self._announced_limit: float | None = None
        self._sleep = sleep or self._interruptible_sleep

    # -- run-level control -------------------------------------------------------------------------
    def stop(self, exc: RunStopped) -> None:
        if self.stopped is None:
            self.stopped = exc
            logger.error("run stopped: %s", exc.message)
        self._stop_event.set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop_event.wait(max(0.0, seconds))
        self._raise_if_stopped()

    def _raise_if_stopped(self) -> None:
        if self.stopped is not None:
            raise self.stopped

    # -- the batch ---------------------------------------------------------------------------------
    def process(
        self, products: Sequence[Mapping[str, Any]], prior: Mapping[str, Mapping[str, Any]] | None = None
    ) -> list[ProductResult]:
        prior = prior or {}
        workers = max(1, min(self.generator.concurrency, len(products) or 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="product") as pool:
            futures = [pool.submit(self._process_one, p, prior.get(p["id"], {})) for p in products]
            results = [f.result() for f in futures]
        return results

    def _process_one(self, product: Mapping[str, Any], prior: Mapping[str, Any]) -> ProductResult:
        result = ProductResult(product_id=product["id"])
        try:
            self._raise_if_stopped()
            self._run_product(product, prior, result)
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
        if result.outcome == "failed" and result.error_class not in (
            None,
            "budget",
            "quota_exhausted",
            "configuration",
        ):
            result.failed_runs = int(prior.get("failed_runs") or 0) + 1
        if self.on_result:
            self.on_result(result)
        return result

    def _run_product(
        self, product: Mapping[str, Any], prior: Mapping[str, Any], result: ProductResult
    ) -> None:
        pid = product["id"]
        prompt = build_prompt(product)
        fp = fingerprint(prompt, self.generator.model, self.generator.size, self.generator.quality)
        result.prompt_fingerprint = fp
        if self._skip_if_stored(pid, fp, result):
            return
        with self._claim(pid, fp, result) as claimed:
            if not claimed:
                return
            if self._skip_if_stored(pid, fp, result):  # finished by another run while we waited
                return
            self._generate_and_store(product, prompt, fp, prior, result)

    def _skip_if_stored(self, pid: str, fp: str, result: ProductResult) -> bool:
        head = self.store.head(image_key(pid))
        if head is None or head.metadata.get("fingerprint") != fp:
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
        return True

    def _import_from_seed(self, pid: str, fp: str, result: ProductResult) -> bool:
        """Moving stores (e.g. local → S3): an image the seed store already holds for this fingerprint is
        copied, verified by the target's checksum, instead of being generated and paid for again."""
        if self.seed_store is None:
            return False
        head = self.seed_store.head(image_key(pid))
        thumb = self.seed_store.head(thumbnail_key(pid))
        if head is None or thumb is None or head.metadata.get("fingerprint") != fp:
            return False
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
        result.message, result.uploaded = f"imported from {self.seed_store.location}", put.uploaded
        return True

    # -- claims --------------------------------------------------------------------------------------
    @contextmanager
    def _claim(self, pid: str, fp: str, result: ProductResult) -> Iterator[bool]:
        """Hold the product's claim while generating; if another run holds it, wait for its image."""
        deadline = time.monotonic() + self.settings.claim_wait_s
        while True:
            with self.coordinator.claim_product(pid, self.run_id) as handle:
                if handle is not None:
                    yield True
                    return
            if self._skip_if_stored(pid, fp, result):
                yield False
                return
            if time.monotonic() > deadline:
                result.outcome, result.error_class = "failed", ErrorClass.COORDINATION.value
                result.message = f"claimed by another run for over {self.settings.claim_wait_s:.0f}s"
                yield False
                return
            self._sleep(0.5 + random.random() * 0.5)

    @contextmanager
    def _first_call_gate(self) -> Iterator[None]:
        """The first paid call of a run goes alone: a bad key or an empty quota costs one call, not N.

        The other workers wait for its verdict, at most `first_call_gate_s` (refusals come back at once; a
        call still running is generating an image). No lock is held while they call, or the workers that
        queued behind the first call would go one at a time. A key that answered lately goes ungated."""
        if not self.generator.paid or self._first_call_done.is_set() or _recently_verified(self.bucket):
            yield
            return
        with self._first_call:
            leader, self._first_call_claimed = not self._first_call_claimed, True
        if not leader:
            self._first_call_done.wait(self.settings.first_call_gate_s)
            self._raise_if_stopped()  # the first call stopped the run (bad key, no quota)
            yield
            return
        try:
            yield
        finally:
            self._first_call_done.set()

    # -- generation ----------------------------------------------------------------------------------
    def _generate_and_store(
        self,
        product: Mapping[str, Any],
        prompt: str,
        fp: str,
        prior: Mapping[str, Any],
        result: ProductResult,
    ) -> None:
        pid = product["id"]
        state = _Attempt(prompt)
        image = None
        try:
            image = self._call_with_retries(product, state, result)
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

    def _call_with_retries(self, product: Mapping[str, Any], state: _Attempt, result: ProductResult):
        s = self.settings

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, ImageAPIError) or exc.error_class not in RETRYABLE:
                return False
            if exc.error_class is ErrorClass.CONTENT_POLICY:
                return getattr(exc, "refine_next", False)
            return True

        def wait(retry_state: RetryCallState) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(exc, ImageAPIError) and exc.error_class is ErrorClass.RATE_LIMITED:
                return random.uniform(0.0, 0.25)  # the shared pause already holds every worker back
            if isinstance(exc, ImageAPIError) and exc.error_class is ErrorClass.CONTENT_POLICY:
                return 0.0
            n = retry_state.attempt_number
            return min(s.backoff_max_s, s.backoff_base_s * 2 ** (n - 1)) * random.uniform(0.5, 1.0)

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(s.max_calls_per_product),
            wait=wait,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._one_call, product, state, result)

    def _one_call(self, product: Mapping[str, Any], state: _Attempt, result: ProductResult):
        """Exactly one call to the generator, with breaker, budget and shared rate limit around it."""
        self._raise_if_stopped()
        self._wait_for_breaker()
        if self.generator.paid:
            try:
                self.budget.reserve(self._stop_event)
            except RunStopped:
                self._raise_if_stopped()  # stopped meanwhile for another reason: that reason is the message
                raise
        charged = False
        try:
            with self._first_call_gate():
                # The slot is booked after the gate: slots booked while waiting for the first call would
                # all go out together when it answers, a burst the API's per-second bucket refuses.
                self._wait_for_slot()
                self._raise_if_stopped()
                result.attempts += 1
                try:
                    generated = self.generator.generate(
                        product_id=product["id"],
                        prompt=state.prompt,
                        attempt=result.attempts,
                        product=product,
                    )
                except ImageAPIError as exc:
                    if exc.error_class in (ErrorClass.CONTENT_POLICY, ErrorClass.BAD_REQUEST):
                        self.coordinator.breaker_success(self.bucket)  # the API answered: it is up
                    # No answer at all (timeout, dropped connection): the API may still have made, and billed,
                    # the image, so the budget counts it as spent.
                    charged = exc.error_class is ErrorClass.TRANSIENT and exc.status_code is None
                    result.errors.append(exc.error_class.value)
                    self._learn_limit(exc.headers)
                    self._react(exc, state, product)  # stops the run before the gate lets others call
                    raise
            charged = True
            _set_verified(self.bucket, True)
            result.model = generated.model
            self._learn_limit(generated.headers)
            try:
                image = (
                    generated.image if generated.image is not None else imaging.decode_image(generated.data)
                )
                imaging.check_image(image, self.expected_size)
            except imaging.InvalidImage as exc:
                self.coordinator.breaker_success(self.bucket)  # the API answered: it is up
                result.errors.append(ErrorClass.INVALID_IMAGE.value)
                raise ImageAPIError(ErrorClass.INVALID_IMAGE, str(exc)) from None
            self.coordinator.breaker_success(self.bucket)
            return image
        finally:
            if self.generator.paid:
                self.budget.settle(charged)

    def _learn_limit(self, headers: Mapping[str, str]) -> None:
        """Tell the shared limiter the limit the API announces: it paces by the lower of that and the
        configured `images_per_minute`, so a too-high setting costs a few 429s, not a stream of them."""
        if not self.generator.images_per_minute or not headers:
            return
        limit = limit_from_headers(headers)
        if limit is not None and limit != self._announced_limit:
            self._announced_limit = limit  # one report per change, not one per image
            self.coordinator.learn_limit(self.bucket, limit)

    def _react(self, exc: ImageAPIError, state: _Attempt, product: Mapping[str, Any]) -> None:
        """What an error class means for the run, the shared state and the next attempt."""
        cls = exc.error_class
        if cls is ErrorClass.RATE_LIMITED:
            pause = exc.retry_after_s if exc.retry_after_s is not None else 1.0
            self.coordinator.pause(self.bucket, pause)
        elif cls is ErrorClass.QUOTA_EXHAUSTED:
            _set_verified(self.bucket, False)
            stop = RunStopped(
                cls, f"API quota exhausted (insufficient_quota): {exc.message}; check the account's billing"
            )
            # Stop before the breaker opens: a worker that saw it open first would stop the run less clearly.
            self.stop(stop)
            self.coordinator.breaker_failure(self.bucket, fatal=True, reason="insufficient_quota")
            raise stop
        elif cls is ErrorClass.CONFIGURATION:
            _set_verified(self.bucket, False)
            self.stop(RunStopped(cls, exc.message))
            raise self.stopped  # type: ignore[misc]
        elif cls is ErrorClass.TRANSIENT:
            self.coordinator.breaker_failure(self.bucket, reason=exc.message[:200])
        elif cls is ErrorClass.CONTENT_POLICY and not state.refined:
            state.refined = True
            state.prompt = refine_prompt(product)
            exc.refine_next = True  # type: ignore[attr-defined]

    def _wait_for_slot(self) -> None:
        """The shared rate limit's next slot, then the breaker once more: a slot booked seconds ahead must
        not carry a call into a breaker that opened meanwhile (its cool-down is waited out, a slot rebooked)."""
        if not self.generator.images_per_minute:
            return
        while True:
            self.coordinator.acquire(
                self.bucket, self.generator.images_per_minute, self.settings.rate_limit_timeout_s
            )
            try:
                self.coordinator.breaker_allow(self.bucket)
                return
            except BreakerOpen:
                self._wait_for_breaker()

    def _wait_for_breaker(self) -> None:
        deadline = time.monotonic() + self.settings.breaker_wait_s
        while True:
            try:
                self.coordinator.breaker_allow(self.bucket)
                return
            except BreakerOpen as exc:
                if "quota" in exc.reason:
                    raise RunStopped(
                        ErrorClass.QUOTA_EXHAUSTED, f"API quota exhausted: {exc}; check the account's billing"
                    ) from None
                if time.monotonic() + min(exc.retry_in_s, 1.0) > deadline:
                    raise ImageAPIError(ErrorClass.TRANSIENT, str(exc)) from None
                self._sleep(min(max(exc.retry_in_s, 0.05), 1.0))

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
        }
        # A run that lost its partition lock (expired while paused, Redis restarted) makes no more calls, but
        # an image it already paid for is still kept: written create-only, so it never replaces an object
        # another run wrote meanwhile.
        lost = self.lock is not None and not self.lock.is_held()
        if lost:
            self.stop(
                RunStopped(ErrorClass.COORDINATION, "lost the lock (expired or taken over); stopping calls")
            )
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


def summarize(results: Sequence[ProductResult]) -> dict[str, Any]:
    counts = {o: 0 for o in OUTCOMES}
    errors: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
        for e in r.errors:
            errors[e] = errors.get(e, 0) + 1
        if r.outcome == "failed" and r.error_class and not r.errors:
            errors[r.error_class] = errors.get(r.error_class, 0) + 1
    return {"counts": counts, "errors": errors}
