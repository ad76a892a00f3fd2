"""The shared limits around one paid API call, for every caller of one bucket (an account key at one
endpoint and model) in every process sharing the coordinator: the breaker's cool-down, the shared rate
limiter's next slot, the breaker once more right before the call, and what the answer tells the limiter and
the breaker. Generation (`call_policy.CallPolicy`), the image reviewer and the text embedder all use it, each
on its own bucket, so a 429 of one endpoint never pauses another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped
from catalog_assets.resources.coordination import BreakerOpen, Coordinator, limit_from_headers

T = TypeVar("T")

#: answers that prove the API is up (it looked at the request): they close a half-open breaker
API_UP_BY = frozenset({ErrorClass.CONTENT_POLICY, ErrorClass.BAD_REQUEST, ErrorClass.INVALID_IMAGE})


class NotSent(ImageAPIError):
    """A transient failure before any call went out: the breaker stayed open past the caller's wait, or the
    limiter's next slot lies past its timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorClass.TRANSIENT, message)


class SharedLimits:
    """The coordinator's breaker and rate limiter for one bucket. `per_minute` (None or 0: no pacing) is the
    configured limit; `sleep` is the caller's (a run's sleep that a stop cuts short)."""

    def __init__(
        self,
        coordinator: Coordinator,
        bucket: str,
        per_minute: float | None,
        *,
        rate_limit_timeout_s: float = 600.0,
        breaker_wait_s: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.coordinator = coordinator
        self.bucket = bucket
        self.per_minute = per_minute or None
        self.rate_limit_timeout_s = rate_limit_timeout_s
        self.breaker_wait_s = breaker_wait_s
        self._sleep = sleep
        self._announced_limit: float | None = None

    # -- one guarded call (reviews, embeddings) -------------------------------------------------------
    def call(self, send: Callable[[], tuple[T, Mapping[str, str]]]) -> T:
        """`send()` once a call may go out, its answer and headers (or its classified error) reported to the
        shared limiter and breaker; returns the answer. `send` returns (answer, response headers) and raises
        a classified `ImageAPIError`. A slot past `rate_limit_timeout_s` is a transient failure of this call."""
        try:
            self.wait_for_slot()
        except TimeoutError as exc:
            raise NotSent(str(exc)) from None
        try:
            answer, headers = send()
        except ImageAPIError as exc:
            self.learn_limit(exc.headers)
            self.report(exc)
            raise
        self.learn_limit(headers)
        self.coordinator.breaker_success(self.bucket)
        return answer

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
