"""How a product's API calls go out: budget, first-call gate, breaker and shared rate limit around each call,
the retries and waits each error class asks for, and what an error means for the run and the shared state.
The breaker's and the limiter's waits are `call_guard.SharedLimits`, which reviews and embeddings use too.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from catalog_assets import imaging
from catalog_assets.budget import Budget
from catalog_assets.call_guard import SharedLimits
from catalog_assets.call_ledger import CallRecorder
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped
from catalog_assets.outcomes import ProductResult
from catalog_assets.prompts import refine_prompt
from catalog_assets.resources.coordination import Coordinator
from catalog_assets.resources.image_api import ImageGenerator

if TYPE_CHECKING:
    from catalog_assets.generation import GenerationSettings

logger = logging.getLogger("catalog_assets.generation")

RETRYABLE = {
    ErrorClass.RATE_LIMITED,
    ErrorClass.TRANSIENT,
    ErrorClass.INVALID_IMAGE,
    ErrorClass.CONTENT_POLICY,
}


class RunControl:
    """Whether the run was stopped (and why), and a sleep that a stop cuts short."""

    def __init__(self) -> None:
        self.stopped: RunStopped | None = None
        self.event = threading.Event()

    def stop(self, exc: RunStopped) -> None:
        if self.stopped is None:
            self.stopped = exc
            logger.error("run stopped: %s", exc.message)
        self.event.set()

    def raise_if_stopped(self) -> None:
        if self.stopped is not None:
            raise self.stopped

    def sleep(self, seconds: float) -> None:
        self.event.wait(max(0.0, seconds))
        self.raise_if_stopped()


class Attempt:
    """Mutable state of one product's attempts: the current prompt and whether it was refined."""

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.refined = False


class CallPolicy:
    """Every call to the generator of one run goes through here; see the module docstring."""

    def __init__(
        self,
        *,
        generator: ImageGenerator,
        coordinator: Coordinator,
        settings: GenerationSettings,
        control: RunControl,
        sleep: Callable[[float], None] | None = None,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.generator = generator
        # the call record (catalog_assets.call_ledger): every paid call, as it happens
        self.recorder = recorder
        self.coordinator = coordinator
        self.settings = settings
        self.control = control
        self.bucket = generator.rate_limit_bucket()
        self.limits = SharedLimits(
            coordinator,
            self.bucket,
            generator.images_per_minute,
            rate_limit_timeout_s=settings.rate_limit_timeout_s,
            breaker_wait_s=settings.breaker_wait_s,
            sleep=sleep or control.sleep,
        )
        self.budget = Budget(settings.max_images, settings.max_cost_usd, settings.price_per_image_usd)
        self.expected_size = imaging.parse_size(generator.size)
        self._sleep = sleep or control.sleep

    # -- one product ---------------------------------------------------------------------------------
    def call_with_retries(self, product: Mapping[str, Any], state: Attempt, result: ProductResult) -> Any:
        """The product's image (decoded and checked), after at most `max_calls_per_product` calls."""
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
                verdict = getattr(exc, "rate_verdict", None)
                if verdict is not None and verdict.kind == "isolated":
                    # Only this product waits its retry-after; the others keep the shared rate.
                    advised = exc.retry_after_s if exc.retry_after_s is not None else 1.0
                    return advised + random.uniform(0.0, 0.1)
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
        # The prober keeps its turn through its own retries: a first call that timed out is retried by the
        # same worker while the others still wait for the key's verdict.
        with self._key_gate() as probing:
            return retrying(self._one_call, product, state, result, probing)

    def _one_call(
        self, product: Mapping[str, Any], state: Attempt, result: ProductResult, probing: bool
    ) -> Any:
        """Exactly one call to the generator, with key verdict, budget, breaker and rate limit around it.

        The budget is reserved before the breaker is asked: a caller let through as the half-open probe
        goes on to call, and never stops on the budget while every other worker waits for its verdict."""
        self.control.raise_if_stopped()
        paid = self.generator.paid
        if paid and not probing:
            self._refuse_if_key_rejected()  # rejected meanwhile (e.g. revoked mid-run): no call
        if paid:
            try:
                self.budget.reserve(self.control.event)
            except RunStopped:
                self.control.raise_if_stopped()  # stopped meanwhile for another reason: that is the message
                raise
        charged = False
        try:
            # The slot is booked after the gate: slots booked while waiting for the first call would all go
            # out together when it answers, a burst the API's per-second bucket refuses.
            self.limits.wait_for_slot()
            self.control.raise_if_stopped()
            result.attempts += 1
            call = self._record_start(product["id"], result)
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
                # Limit, pause and breaker are shared before the verdict, which lets the waiting workers go.
                self.limits.learn_limit(exc.headers)
                try:
                    self._react(exc, state, product)
                finally:
                    self._record_key_answer(probing, exc)
                    self._record_end(call, exc, charged)
                raise
            except Exception as exc:
                # no classified answer (a surprise in the client): the call may have been made and billed
                self._record_end(call, exc, True)
                raise
            # recorded at once, before the verdict lets the waiting workers go
            self._record_end(call, None, True, status=200)
            self.limits.learn_limit(generated.headers)
            self._record_key_answer(probing, None)
            charged = True
            result.model = generated.model
            try:
                image = (
                    generated.image if generated.image is not None else imaging.decode_image(generated.data)
                )
                imaging.check_image(image, self.expected_size)
            except imaging.InvalidImage as exc:
                self.coordinator.breaker_success(self.bucket)  # the API answered: it is up
                result.errors.append(ErrorClass.INVALID_IMAGE.value)
                if call is not None and self.recorder is not None:
                    self.recorder.checked(call, ErrorClass.INVALID_IMAGE.value)
                raise ImageAPIError(ErrorClass.INVALID_IMAGE, str(exc)) from None
            self.coordinator.breaker_success(self.bucket)
            return image
        finally:
            if paid:
                self.budget.settle(charged)

    # -- the call record -------------------------------------------------------------------------------
    def _record_start(self, product_id: str, result: ProductResult) -> str | None:
        if self.recorder is None or not self.generator.paid:
            return None
        return self.recorder.started(
            product_id,
            result.attempts,
            fingerprint=result.prompt_fingerprint,
            model=self.generator.model,
            price_usd=self.settings.price_per_image_usd,
        )

    def _record_end(
        self, call: str | None, exc: BaseException | None, billed: bool, *, status: int | None = None
    ) -> None:
        if self.recorder is not None:
            self.recorder.answered(call, exc, billed, status=status)

    # -- the first-call gate (`SharedLimits`), for paid generators only -----------------------------
    @contextmanager
    def _key_gate(self) -> Iterator[bool]:
        if not self.generator.paid:
            yield False
            return
        with self.limits.key_gate() as probing:
            yield probing

    def _refuse_if_key_rejected(self) -> None:
        self.limits.refuse_if_key_rejected()

    def _record_key_answer(self, probing: bool, exc: ImageAPIError | None) -> None:
        if self.generator.paid:
            self.limits.record_key_answer(probing, exc)

    # -- what an error means -----------------------------------------------------------------------
    def _react(self, exc: ImageAPIError, state: Attempt, product: Mapping[str, Any]) -> None:
        """What an error class means for the run, the shared state and the next attempt."""
        cls = exc.error_class
        if cls is ErrorClass.RATE_LIMITED:
            # The limiter tells a 429 of the exhausted window (pause everyone once, lower the shared rate)
            # from an isolated one (only this product waits): see Coordinator.rate_limited.
            exc.rate_verdict = self.coordinator.rate_limited(  # type: ignore[attr-defined]
                self.bucket, exc.retry_after_s, exc.headers, reason=exc.message[:200]
            )
        elif cls is ErrorClass.QUOTA_EXHAUSTED:
            stop = RunStopped(
                cls, f"API quota exhausted (insufficient_quota): {exc.message}; check the account's billing"
            )
            # Stop before the breaker opens: a worker that saw it open first would stop the run less clearly.
            self.control.stop(stop)
            self.coordinator.breaker_failure(self.bucket, fatal=True, reason="insufficient_quota")
            raise stop
        elif cls is ErrorClass.CONFIGURATION:
            self.control.stop(RunStopped(cls, exc.message))
            raise self.control.stopped  # type: ignore[misc]
        elif cls is ErrorClass.TRANSIENT:
            self.coordinator.breaker_failure(self.bucket, reason=exc.message[:200])
        elif cls is ErrorClass.CONTENT_POLICY and not state.refined:
            state.refined = True
            state.prompt = refine_prompt(product)
            exc.refine_next = True  # type: ignore[attr-defined]
