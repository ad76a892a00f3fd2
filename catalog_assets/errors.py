"""Error classes of the image pipeline, decided in one place.

Every failure a product can meet is turned into an `ImageAPIError` with one `ErrorClass`; the retry,
refinement, breaker and fallback decisions read the class, never the raw exception.
"""

from __future__ import annotations

import email.utils
import enum
import re
import time
from collections.abc import Iterable, Mapping


class ErrorClass(enum.StrEnum):
    RATE_LIMITED = (
        "rate_limited"  # 429 rate_limit_exceeded: wait retry-after (a window 429 pauses everyone), retry
    )
    QUOTA_EXHAUSTED = "quota_exhausted"  # 429 insufficient_quota: open breaker everywhere, stop the run
    CONTENT_POLICY = (
        "content_policy"  # 400 moderation_blocked / content_policy_violation: refine, then fallback
    )
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


class TransientStoreError(StoreError):
    """The store failed for a while (5xx, throttling, timeouts, lost connections): worth retrying."""


# --- OpenAI Images API errors -> ErrorClass -------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
# Whatever looks like an API key in a server message: the real API echoes part of a wrong key
# ("Incorrect API key provided: sk-proj-abc*****wxyz").
_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_*.\-]{2,}|\S*\*{3,}\S*")
_CONTENT_POLICY_CODES = {"moderation_blocked", "content_policy_violation"}
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}


def parse_reset_duration(value: str | None) -> float | None:
    """Seconds in a rate-limit reset header: Go-style "1s", "6m0s", "250ms", "1h2m3.5s", or a bare number."""
    text = (value or "").strip().lower()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """The server's advice in seconds: `retry-after-ms`, else `retry-after` (seconds or an HTTP date), else
    `x-ratelimit-reset-images` / `-requests` (time until the limit is fully restored: an upper bound)."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    try:
        if lowered.get("retry-after-ms"):
            return max(0.0, float(lowered["retry-after-ms"]) / 1000.0)
    except ValueError:
        pass
    retry_after = (lowered.get("retry-after") or "").strip()
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                current = time.time() if now is None else now
                return max(0.0, when.timestamp() - current)
    for name in ("x-ratelimit-reset-images", "x-ratelimit-reset-requests"):
        seconds = parse_reset_duration(lowered.get(name))
        if seconds is not None:
            return seconds
    return None


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """One line without the given secrets or anything key-like, at most 300 characters."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _KEY_LIKE.sub("***", text)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def classify_openai_error(exc: BaseException, *, secrets: Iterable[str] = ()) -> ImageAPIError:
    """The one mapping from an `openai` SDK exception (or a transport error) to an `ImageAPIError`.

    `secrets` (e.g. the API key) are removed from the message, as is anything key-like."""
    import openai  # deferred: this module stays importable without the SDK's start-up cost

    if isinstance(exc, ImageAPIError):
        return exc
    secrets = tuple(secrets)
    if isinstance(exc, openai.APITimeoutError):
        return ImageAPIError(
            ErrorClass.TRANSIENT, "request timed out (no answer within the configured timeout_s)"
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = redact(f"{type(cause).__name__}: {cause}", secrets) if cause else "connection failed"
        return ImageAPIError(ErrorClass.TRANSIENT, f"connection error ({detail})")
    if not isinstance(exc, openai.APIStatusError):
        if isinstance(exc, TimeoutError | ConnectionError):
            return ImageAPIError(ErrorClass.TRANSIENT, redact(f"{type(exc).__name__}: {exc}", secrets))
        if isinstance(exc, openai.APIResponseValidationError):
            return ImageAPIError(
                ErrorClass.INVALID_IMAGE, "the API's answer did not match the ImagesResponse schema"
            )
        return ImageAPIError(
            ErrorClass.BAD_REQUEST, redact(f"unexpected {type(exc).__name__}: {exc}", secrets)
        )

    status, code = exc.status_code, exc.code
    headers = {k.lower(): v for k, v in exc.response.headers.items() if k.lower() != "set-cookie"}
    server_says = redact(_server_message(exc), secrets)
    label = f"{status} {code}" if code else str(status)

    def error(error_class: ErrorClass, message: str, retry_after_s: float | None = None) -> ImageAPIError:
        return ImageAPIError(
            error_class,
            redact(message, secrets),
            status_code=status,
            code=code,
            retry_after_s=retry_after_s,
            headers=headers,
        )

    if status == 429:
        if code in _QUOTA_CODES or exc.type == "insufficient_quota":
            return error(
                ErrorClass.QUOTA_EXHAUSTED,
                f"quota exhausted ({label}): check the plan and billing of the account of OPENAI_API_KEY",
            )
        wait = parse_retry_after(headers)
        advice = f"; retry after {wait:.3g}s" if wait is not None else ""
        return error(ErrorClass.RATE_LIMITED, f"rate limited ({label}): {server_says}{advice}", wait)
    if status == 401:
        # Never the server's text here: the real API echoes part of the rejected key.
        return error(
            ErrorClass.CONFIGURATION, f"the API rejected the key ({label}): set a valid key in OPENAI_API_KEY"
        )
    if status == 403:
        return error(
            ErrorClass.CONFIGURATION,
            f"permission denied ({label}): the key in OPENAI_API_KEY (or its organization/project, "
            f"OPENAI_ORG_ID / OPENAI_PROJECT_ID) may not use this model: {server_says}",
        )
    if status == 404:
        return error(
            ErrorClass.CONFIGURATION,
            f"not found ({label}): check the image generator's `model` setting (and OPENAI_BASE_URL): {server_says}",
        )
    safety = exc.type == "image_generation_user_error" and "safety" in server_says.lower()
    if status == 400 and (code in _CONTENT_POLICY_CODES or safety):
        return error(ErrorClass.CONTENT_POLICY, f"refused by the content policy ({label}): {server_says}")
    if status == 400 and code in _QUOTA_CODES:
        return error(ErrorClass.QUOTA_EXHAUSTED, f"billing limit reached ({label}): {server_says}")
    if status >= 500 or status in (408, 409):
        # 408/409 are the API's "try again" answers (the SDK itself retries them), like a 5xx.
        return error(ErrorClass.TRANSIENT, f"server error ({label}): {server_says}")
    return error(ErrorClass.BAD_REQUEST, f"request rejected ({label}): {server_says}")


def _server_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return body["message"]
    return str(getattr(exc, "message", "") or exc)
