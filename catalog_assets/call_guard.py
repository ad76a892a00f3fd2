"""The shared limits around one paid API call, for every caller of one bucket (an account key at one
endpoint and model) in every process sharing the coordinator: the first-call gate (the key's first call goes
alone, so a bad key costs one call), the breaker's cool-down, the shared rate limiter's next slot, the
breaker once more right before the call, and what the answer tells the key verdict, the limiter and the
breaker. Generation (`call_policy.CallPolicy`), the image reviewer and the text embedder all use it, each
on its own bucket, so a 429 of one endpoint never pauses another. Reviews and embeddings requests are
written to the run's call record (`call_ledger`) around the call, as generation's calls are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TypeVar

from catalog_assets.call_ledger import IMAGE, CallRecorder
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped
from catalog_assets.resources.coordination import (
    KEY_VERDICT_TTL_S,
    BreakerOpen,
    Coordinator,
    KeyRejected,
    limit_from_headers,
)

T = TypeVar("T")

#: answers that prove the API is up (it looked at the request): they close a half-open breaker
API_UP_BY = frozenset({ErrorClass.CONTENT_POLICY, ErrorClass.BAD_REQUEST, ErrorClass.INVALID_IMAGE})
#: answers that prove the API accepted the key (it looked at the request): the key's verdict is "ok"
KEY_ACCEPTED_BY = frozenset(
    {
        ErrorClass.RATE_LIMITED,
        ErrorClass.QUOTA_EXHAUSTED,
        ErrorClass.CONTENT_POLICY,
        ErrorClass.BAD_REQUEST,
        ErrorClass.INVALID_IMAGE,
    }
)


class GuardedClient:
    """Mixin of the API clients whose every call goes through `SharedLimits` once `share_limits` was called
    (the image reviewer, the text embedder): the class sets `call_kind` (its kind in the call record),
    `model`, `requests_per_minute` and a `rate_limit_bucket()`."""

    call_kind: str
    model: str
    requests_per_minute: float | None
    _limits: SharedLimits | None = None  # until `share_limits`: calls go straight

    def rate_limit_bucket(self) -> str:
        raise NotImplementedError

    def share_limits(
        self,
        coordinator: Coordinator,
        *,
        breaker_wait_s: float = 120.0,
        recorder: CallRecorder | None = None,
    ) -> None:
        self._limits = SharedLimits(
            coordinator,
            self.rate_limit_bucket(),
            self.requests_per_minute,
            breaker_wait_s=breaker_wait_s,
            recorder=recorder,
            kind=self.call_kind,
            model=self.model,
        )

    def guarded(self, send: Callable[[], tuple[T, Mapping[str, str]]], *, subject: str, attempt: int) -> T:
        """`send()`'s answer: through the shared limits when they are shared, else straight."""
        if self._limits is None:
            return send()[0]
        return self._limits.call(send, subject=subject, attempt=attempt)


class NotSent(ImageAPIError):
    """A transient failure before any call went out: the breaker stayed open past the caller's wait, or the
    limiter's next slot lies past its timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorClass.TRANSIENT, message)


class SharedLimits:
    """The coordinator's breaker and rate limiter for one bucket. `per_minute` (None or 0: no pacing) is the
    configured limit; `sleep` is the caller's (a run's sleep that a stop cuts short). With a `recorder`,
    each `call` is written to the run's call record as a call of `kind` to `model`."""

    def __init__(
        self,
        coordinator: Coordinator,
        bucket: str,
        per_minute: float | None,
        *,
        rate_limit_timeout_s: float = 600.0,
        breaker_wait_s: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        recorder: CallRecorder | None = None,
        kind: str = IMAGE,
        model: str = "",
    ) -> None:
        self.coordinator = coordinator
        self.bucket = bucket
        self.recorder = recorder
        self.kind = kind
        self.model = model
        self.per_minute = per_minute or None
        self.rate_limit_timeout_s = rate_limit_timeout_s
        self.breaker_wait_s = breaker_wait_s
        self._sleep = sleep
        self._announced_limit: float | None = None
        self._verdict_written = -math.inf  # monotonic time this caller last recorded the key as accepted

    # -- one guarded call (reviews, embeddings) -------------------------------------------------------
    def call(
        self, send: Callable[[], tuple[T, Mapping[str, str]]], *, subject: str = "", attempt: int = 1
    ) -> T:
        """`send()` once a call may go out, its answer and headers (or its classified error) reported to the
        key verdict, the shared limiter and the breaker; returns the answer. `send` returns (answer, response
        headers) and raises a classified `ImageAPIError`. A slot past `rate_limit_timeout_s` is a transient
        failure of this call; a key rejected before (by any caller of the bucket) stops it without a call.
        `subject` (a product id) and `attempt` name the call in the call record."""
        with self.key_gate() as probing:  # it has just read the verdict: a rejected key raised there
            try:
                self.wait_for_slot()
            except TimeoutError as exc:
                raise NotSent(str(exc)) from None
            call = self._record_start(subject, attempt)
            try:
                answer, headers = send()
            except ImageAPIError as exc:
                self.learn_limit(exc.headers)
                self.report(exc)
                self.record_key_answer(probing, exc)
                self._record_end(call, exc)
                raise
            except Exception as exc:
                self._record_end(call, exc)  # no classified answer: it may have been made and billed
                raise
            self._record_end(call, None, status=200)
            self.learn_limit(headers)
            self.coordinator.breaker_success(self.bucket)
            self.record_key_answer(probing, None)
            return answer

    def _record_start(self, subject: str, attempt: int) -> str | None:
        if self.recorder is None:
            return None
        return self.recorder.started(
            subject, attempt, fingerprint=None, model=self.model, price_usd=0.0, kind=self.kind
        )

    def _record_end(self, call: str | None, exc: BaseException | None, *, status: int | None = None) -> None:
        if self.recorder is not None:
            self.recorder.answered(call, exc, exc is None, status=status)

    # -- the first-call gate ------------------------------------------------------------------------------
    @contextmanager
    def key_gate(self) -> Iterator[bool]:
        """The first call for a key goes alone, across every process sharing the coordinator: a bad key
        costs one call for a whole run or backfill. Yields whether this caller makes that first call; raises
        RunStopped (configuration) when the key was rejected."""
        with ExitStack() as stack:
            try:
                probing = stack.enter_context(self.coordinator.first_call_gate(self.bucket))
            except KeyRejected as exc:
                raise RunStopped(ErrorClass.CONFIGURATION, exc.verdict.reason) from None
            yield probing

    def refuse_if_key_rejected(self) -> None:
        verdict = self.coordinator.key_verdict(self.bucket)
        if verdict is not None and not verdict.ok:
            raise RunStopped(ErrorClass.CONFIGURATION, verdict.reason)

    def record_key_answer(self, probing: bool, exc: ImageAPIError | None) -> None:
        """Share what a call proved about the key: rejected (every other caller stops without a call),
        accepted (refreshed now and then while calls succeed), or nothing (no answer: the next one probes)."""
        if exc is not None and exc.error_class is ErrorClass.CONFIGURATION:
            self.coordinator.set_key_verdict(self.bucket, False, exc.message)
            return
        if exc is not None and exc.error_class not in KEY_ACCEPTED_BY:
            return
        now = time.monotonic()
        if probing or now - self._verdict_written > KEY_VERDICT_TTL_S / 4:
            self._verdict_written = now
            self.coordinator.set_key_verdict(self.bucket, True)

    def report(self, exc: ImageAPIError) -> None:
        """What a classified error tells every process: a 429 goes to the limiter (its verdict is kept on
        `exc.rate_verdict`: window, coalesced or isolated), a transient failure counts towards opening the
        breaker, exhausted quota opens it at once, an answer about the request proves the API up."""
        cls = exc.error_class
        if cls is ErrorClass.RATE_LIMITED:
            exc.rate_verdict = self.coordinator.rate_limited(  # type: ignore[attr-defined]
                self.bucket, exc.retry_after_s, exc.headers, reason=exc.message[:200]
            )
        elif cls is ErrorClass.QUOTA_EXHAUSTED:
            self.coordinator.breaker_failure(self.bucket, fatal=True, reason="insufficient_quota")
        elif cls is ErrorClass.TRANSIENT:
            self.coordinator.breaker_failure(self.bucket, reason=exc.message[:200])
        elif cls in API_UP_BY:
            self.coordinator.breaker_success(self.bucket)

    # -- the pieces -------------------------------------------------------------------------------------
    def learn_limit(self, headers: Mapping[str, str]) -> None:
        """Tell the shared limiter the limit the API announces: it paces by the lower of that and the
        configured `per_minute`, so a too-high setting costs a few 429s, not a stream of them."""
        if not self.per_minute or not headers:
            return
        limit = limit_from_headers(headers)
        if limit is not None and limit != self._announced_limit:
            self._announced_limit = limit  # one report per change, not one per call
            self.coordinator.learn_limit(self.bucket, limit)

    def wait_for_slot(self) -> None:
        """The breaker's cool-down, then the shared rate limit's next slot, then the breaker once more
        right before the call: a slot booked seconds ahead must not carry a call into a breaker that opened
        meanwhile (its cool-down is waited out, a slot rebooked)."""
        self._wait_out_cooldown()
        if not self.per_minute:
            self._wait_for_breaker()
            return
        while True:
            self.coordinator.acquire(self.bucket, self.per_minute, self.rate_limit_timeout_s)
            try:
                self.coordinator.breaker_allow(self.bucket)
                return
            except BreakerOpen:
                self._wait_for_breaker()

    def _breaker_stop(self, exc: BreakerOpen, deadline: float) -> Exception | None:
        """Why a caller facing an open breaker gives up now (quota gone, or waited long enough), else None."""
        if "quota" in exc.reason:
            return RunStopped(
                ErrorClass.QUOTA_EXHAUSTED, f"API quota exhausted: {exc}; check the account's billing"
            )
        if time.monotonic() + min(exc.retry_in_s, 1.0) > deadline:
            return NotSent(str(exc))
        return None

    def _wait_out_cooldown(self) -> None:
        """Wait while the breaker is open and cooling down, without asking to be its probe (that is left to
        the moment right before a call, so a caller stopped meanwhile never holds the probe)."""
        deadline = time.monotonic() + self.breaker_wait_s
        while True:
            st = self.coordinator.breaker_state(self.bucket)
            if st.state != "open" or not st.retry_in_s:
                return
            exc = BreakerOpen(st.reason or "open", st.retry_in_s)
            if (stop := self._breaker_stop(exc, deadline)) is not None:
                raise stop
            self._sleep(min(max(st.retry_in_s, 0.05), 1.0))

    def _wait_for_breaker(self) -> None:
        """Return once a call may go out: the breaker is closed, or this caller is its half-open probe."""
        deadline = time.monotonic() + self.breaker_wait_s
        while True:
            try:
                self.coordinator.breaker_allow(self.bucket)
                return
            except BreakerOpen as exc:
                if (stop := self._breaker_stop(exc, deadline)) is not None:
                    raise stop from None
                self._sleep(min(max(exc.retry_in_s, 0.05), 1.0))
