"""Settings of the Images API stand-in: latency, rate limit, fault rates; changeable at runtime via
`POST /_config`, so a test can make the server fail and then recover.
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
)

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
