"""Error classes of the image pipeline, decided in one place.

Every failure a product can meet is turned into an `ImageAPIError` with one `ErrorClass`; the retry,
refinement, breaker and fallback decisions read the class, never the raw exception.
"""

from __future__ import annotations

import enum


class ErrorClass(enum.StrEnum):
    RATE_LIMITED = "rate_limited"  # 429 rate_limit_exceeded: wait, shared pause, retry
    QUOTA_EXHAUSTED = "quota_exhausted"  # 429 insufficient_quota: open breaker everywhere, stop the run
    CONTENT_POLICY = "content_policy"  # 400 moderation_blocked / content_policy_violation: refine, then fallback
    TRANSIENT = "transient"  # timeout, connection error, 5xx: bounded retries with backoff
    CONFIGURATION = "configuration"  # 401 / 403 / 404 model: fail fast naming the setting
    BAD_REQUEST = "bad_request"  # other 4xx: fail the product, no retry
    INVALID_IMAGE = "invalid_image"  # the API answered, but the bytes are not a usable image
    STORE = "store"  # the object store refused a write
    COORDINATION = "coordination"  # a lock was lost, or Redis went away mid-run
    BUDGET = "budget"  # max_images / max_cost_usd reached before this product


class ImageAPIError(Exception):
    """A classified failure. `retry_after_s` carries the server's advice, when it gave one."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.status_code = status_code
        self.code = code
        self.retry_after_s = retry_after_s
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.error_class.value}: {self.message}"


class RunStopped(Exception):
    """Raised to stop the whole run at once (quota exhausted, configuration error, budget reached)."""

    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class CatalogError(Exception):
    """The catalog file as a whole cannot be used (missing, empty, unparseable, no valid rows)."""


class StoreError(Exception):
    """A store configuration or access problem, as one line a user can act on."""
