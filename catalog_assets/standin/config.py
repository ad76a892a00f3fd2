"""Settings of the OpenAI API stand-in (images, files and batches, responses, embeddings): latency, rate
limits, fault rates, batch timing; changeable at runtime via `POST /_config`, so a test can make the server
fail and then recover.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Fault kinds, in the order a single uniform draw is matched against their cumulative rates.
FAULT_KINDS = (
    "invalid_key",
    "permission_denied",
    "insufficient_quota",
    "rate_limit",
    "moderation_blocked",
    "server_error",
    "hang",
    "content_policy_violation",
)

#: Fault kinds a batch line can draw: refusals answer the line with a 400, the transient ones with a 500.
BATCH_LINE_FAULTS = ("moderation_blocked", "content_policy_violation", "rate_limit", "server_error", "hang")

#: Endpoints a batch may name (the stand-in serves each of them synchronously too).
BATCH_ENDPOINTS = ("/v1/images/generations", "/v1/responses", "/v1/embeddings")

#: The earlier attempt at this job: 22% of first attempts failed, split 42% rate limiting, 31% content
#: policy, 18% network timeouts and 9% other (here: 500s).
EARLIER_ATTEMPT_FAULTS = {
    "rate_limit": 0.22 * 0.42,
    "moderation_blocked": 0.22 * 0.31,
    "hang": 0.22 * 0.18,
    "server_error": 0.22 * 0.09,
}

CURRENT_MODELS = (
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "gpt-image-2.5-sunburst",
    "gpt-image-2.5-sunburst-2026-09-08",
    "gpt-image-2.5-flare",
    "gpt-image-2.5-flare-2026-09-08",
    "gpt-image-2.6-sunburst",
    "gpt-image-2.6-flare",
    "gpt-image-1.5",
    "gpt-image-1-mini",
    "chatgpt-image-latest",
)

#: Vision-capable models the Responses API stand-in answers for.
RESPONSES_MODELS = (
    "gpt-5.4-mini",
    "gpt-5.4-nano",
    "gpt-5.4-mini-2026-03-17",
    "gpt-5.4-nano-2026-03-17",
    "gpt-5.4",
    "gpt-5.5",
    "gpt-6-astra",
    "gpt-6-sol",
    "gpt-6-luna",
)

#: Embedding models and their full (largest) dimension; `dimensions` is refused by the oldest one.
EMBEDDING_MODELS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


@dataclass
class StandInConfig:
    #: the only key accepted (`Authorization: Bearer ...`); None accepts any non-empty key
    api_key: str | None = "sk-standin"
    latency_s: float = 0.0
    #: uniform jitter added to the latency, +/- this many seconds
    latency_jitter_s: float = 0.0
    #: None: no limit. Otherwise a token bucket refilled at this rate per minute.
    images_per_minute: float | None = None
    #: bucket capacity; None: one second's worth (at least 1), like OpenAI's quantised limits
    burst: float | None = None
    #: fault kind -> probability (see FAULT_KINDS); drawn once per request, kinds are exclusive
    faults: dict[str, float] = field(default_factory=dict)
    #: inject faults only into first attempts (`-a1-` in X-Client-Request-Id); retries always pass
    first_attempt_only: bool = False
    #: prompts containing any of these words (case-insensitive, whole words) are always moderation_blocked
    moderation_words: list[str] = field(default_factory=list)
    #: how long a "hang" holds the connection before dropping it without an answer
    hang_s: float = 30.0
    #: the retry-after an injected (not limiter-made) rate_limit error advises
    fault_retry_after_s: float = 0.5
    seed: int = 0
    #: "b64_json" (what GPT image models return) or "url" (legacy shape, served from /_images/)
    response_shape: str = "b64_json"
    models: list[str] = field(default_factory=lambda: list(CURRENT_MODELS))

    # -- Files and Batches API --------------------------------------------------------------------------
    #: seconds a batch spends validating, and again finalizing
    batch_delay_s: float = 0.05
    #: seconds each batch line takes to process (lines of one batch run one after another)
    batch_line_delay_s: float = 0.0
    #: while set, every batch waits before its next line: in progress, nothing processed (a batch a test
    #: needs in flight for as long as it takes, however loaded the machine)
    batch_hold: bool = False
    #: fault kind -> probability per batch line (see BATCH_LINE_FAULTS), drawn by a hash of the custom_id
    batch_faults: dict[str, float] = field(default_factory=dict)
    #: image models whose batches fail validation (as if the Batch API did not accept them)
    batch_unsupported_models: list[str] = field(default_factory=list)
    #: a batch expires after this many lines were processed (None: only when its window passes)
    batch_expire_after_lines: int | None = None
    #: seconds from creation until a batch expires (the real API's "24h")
    batch_window_s: float = 86400.0
    #: images (lines) of /v1/images/generations batches allowed in flight at once; past it a new batch fails
    #: validation with `token_limit_exceeded`, as the Batch API's enqueued limit does (None: no limit)
    batch_queue_limit: int | None = None
    #: fault kind -> probability for the Files and Batches endpoints themselves (uploads, creates, polls,
    #: lists, downloads): server_error, rate_limit, hang (others are refused)
    batch_api_faults: dict[str, float] = field(default_factory=dict)
    batch_max_lines: int = 50_000
    #: a file download sends this many lines, then stalls (the connection open, nothing more sent) until the
    #: setting is cleared: a client stopped in the middle of reading a batch's output (None: no stall)
    file_content_stall_after_lines: int | None = None
    file_max_bytes: int = 200 * 1024 * 1024
    #: where uploaded and produced files live (None: a temporary directory removed at exit)
    data_dir: str | None = None

    # -- Responses API (image review) and Embeddings API ------------------------------------------------
    responses_models: list[str] = field(default_factory=lambda: list(RESPONSES_MODELS))
    #: product ids whose images the reviewer judges as not showing the product
    review_reject: list[str] = field(default_factory=list)
    #: share of the other products (by a hash of the product id) judged as not showing it
    review_reject_rate: float = 0.0
    #: the issue a rejected review names
    review_reject_issue: str = "wrong_object"
    #: reviews of one product judged wrong at most this many times, then its image is taken as fixed (a
    #: retake that addressed the issue); None: every review of a chosen product rejects
    review_reject_times: int | None = None
    #: fault kind -> probability for /v1/responses and for /v1/embeddings (same kinds as images)
    review_faults: dict[str, float] = field(default_factory=dict)
    embedding_faults: dict[str, float] = field(default_factory=dict)
    #: requests per minute for /v1/responses and /v1/embeddings (None: no limit)
    review_requests_per_minute: float | None = None
    embedding_requests_per_minute: float | None = None
    #: seconds each review / embedding request takes
    review_latency_s: float = 0.0
    embedding_latency_s: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kind(s) {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
        if (
            any(not 0.0 <= rate <= 1.0 for rate in self.faults.values())
            or sum(self.faults.values()) > 1.0 + 1e-9
        ):
            raise ValueError("fault rates must be within 0..1 and sum to at most 1")
        for name in ("review_faults", "embedding_faults"):
            _check_faults(name, getattr(self, name), FAULT_KINDS)
        _check_faults("batch_faults", self.batch_faults, BATCH_LINE_FAULTS)
        _check_faults("batch_api_faults", self.batch_api_faults, ("rate_limit", "server_error", "hang"))
        if self.batch_queue_limit is not None and self.batch_queue_limit < 1:
            raise ValueError("batch_queue_limit must be positive (or None for no limit)")
        if not 0.0 <= self.review_reject_rate <= 1.0:
            raise ValueError("review_reject_rate must be within 0..1")
        if self.review_reject_times is not None and self.review_reject_times < 0:
            raise ValueError("review_reject_times must not be negative (or None for always)")
        if self.file_content_stall_after_lines is not None and self.file_content_stall_after_lines < 0:
            raise ValueError("file_content_stall_after_lines must not be negative")
        if self.batch_expire_after_lines is not None and self.batch_expire_after_lines < 0:
            raise ValueError("batch_expire_after_lines must not be negative")
        if (
            min(self.batch_delay_s, self.batch_line_delay_s, self.review_latency_s, self.embedding_latency_s)
            < 0
        ):
            raise ValueError("batch, review and embedding delays must not be negative")
        if self.batch_window_s <= 0 or self.batch_max_lines < 1 or self.file_max_bytes < 1:
            raise ValueError("batch_window_s, batch_max_lines and file_max_bytes must be positive")
        for name in ("review_requests_per_minute", "embedding_requests_per_minute"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive (or None for no limit)")
        if self.response_shape not in ("b64_json", "url"):
            raise ValueError("response_shape must be 'b64_json' or 'url'")
        if self.images_per_minute is not None and self.images_per_minute <= 0:
            raise ValueError("images_per_minute must be positive (or None for no limit)")
        if self.latency_s < 0 or self.latency_jitter_s < 0 or self.hang_s < 0:
            raise ValueError("latency_s, latency_jitter_s and hang_s must not be negative")

    def updated(self, changes: dict[str, Any]) -> StandInConfig:
        """A copy with `changes` applied (unknown names raise ValueError); `faults` is replaced whole."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}; known: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """The settings as JSON, with the key itself replaced by whether one is required."""
        data = dataclasses.asdict(self)
        data["api_key"] = "<required>" if self.api_key else None
        return data


def _check_faults(name: str, faults: dict[str, float], kinds: tuple[str, ...]) -> None:
    unknown = set(faults) - set(kinds)
    if unknown:
        raise ValueError(f"unknown {name} kind(s) {sorted(unknown)}; known: {', '.join(kinds)}")
    if any(not 0.0 <= rate <= 1.0 for rate in faults.values()) or sum(faults.values()) > 1.0 + 1e-9:
        raise ValueError(f"{name} rates must be within 0..1 and sum to at most 1")
