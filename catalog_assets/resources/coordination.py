"""Coordination between runs and machines: partition locks, product claims, a shared rate limiter and a
shared circuit breaker. Production form: Redis (`REDIS_URL`, `redis_coordination.py`); embedded default:
in-process limiter and breaker plus file locks for processes on one machine (`local_coordination.py`).
Both implement `Coordinator`; assets depend on `CoordinationResource` only.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from urllib.parse import urlsplit

from dagster import ConfigurableResource
from pydantic import Field

#: stdlib logger for state changes (breaker transitions, lost locks, waits); the lead wires it into Dagster.
LOGGER_NAME = "catalog_assets.coordination"

#: how many breaker transitions each bucket keeps for run metadata
BREAKER_EVENTS_KEPT = 100

#: response headers that carry the account's per-minute limit, most specific first
LIMIT_HEADERS = ("x-ratelimit-limit-images", "x-ratelimit-limit-requests")


class LockTimeout(Exception):
    """Another run holds the lock past our wait. The message names the holder's run id."""

    def __init__(self, name: str, holder: str | None, waited_s: float) -> None:
        self.name, self.holder, self.waited_s = name, holder, waited_s
        super().__init__(f"{name} is held by run {holder or '<unknown>'}; waited {waited_s:.0f}s")


class LockLost(Exception):
    """Our lock expired or was taken over (e.g. the process was paused past its TTL): stop writing."""


class BreakerOpen(Exception):
    """The shared circuit breaker is open: no worker anywhere calls the API until the cool-down ends."""

    def __init__(self, reason: str, retry_in_s: float) -> None:
        self.reason, self.retry_in_s = reason, retry_in_s
        super().__init__(f"circuit breaker open ({reason}); next probe in {retry_in_s:.0f}s")


class CoordinationUnavailable(Exception):
    """The coordination backend (Redis, or the lock directory) cannot be reached or used.

    Raised by `check()` at run start, and by any operation once the client's bounded reconnect attempts are
    spent, so the caller can fail the partition cleanly instead of working without coordination. The message
    is one line naming the setting (`REDIS_URL` or `lock_dir`) and never contains a password.
    """


class LockHandle(ABC):
    """A held lock, renewed by a heartbeat until released."""

    @abstractmethod
    def is_held(self, *, refresh: bool = False) -> bool:
        """Whether we still hold the lock. Cheap by default (what the heartbeat last saw); `refresh` also
        asks the backend now (one Redis round trip), e.g. right before an expensive write."""

    def ensure_held(self, *, refresh: bool = False) -> None:
        if not self.is_held(refresh=refresh):
            raise LockLost("lost the lock (expired or taken over); stopping writes")


@dataclass(frozen=True)
class BreakerState:
    state: str  # "closed" | "open" | "half_open"
    consecutive_failures: int
    reason: str | None = None
    opened_at: float | None = None  # epoch seconds
    retry_in_s: float | None = None  # open: seconds until the cool-down ends (0: the next caller probes)


@dataclass(frozen=True)
class BreakerEvent:
    """One breaker transition, as kept for run metadata."""

    at: float  # epoch seconds (the Redis server's clock for the Redis coordinator)
    bucket: str
    from_state: str
    to_state: str
    reason: str
    consecutive_failures: int
    by: str  # "host:pid" of the process whose report caused it

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at,
            "bucket": self.bucket,
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
            "consecutive_failures": self.consecutive_failures,
            "by": self.by,
        }


class Coordinator(ABC):
    @abstractmethod
    def check(self) -> None:
        """Verify the backing service answers; raise with a message naming the setting (e.g. REDIS_URL)."""

    @abstractmethod
    def partition_lock(
        self, name: str, owner: str, *, wait_s: float | None = None
    ) -> AbstractContextManager[LockHandle]:
        """Hold `name` for `owner` (a run id). Waits up to `wait_s` (default: the configured time), then
        raises LockTimeout naming the holder's run id."""

    @abstractmethod
    def claim_product(self, product_id: str, owner: str) -> AbstractContextManager[LockHandle | None]:
        """Claim one product for generation; yields None (without waiting) when another owner holds it."""

    @abstractmethod
    def acquire(self, bucket: str, per_minute: float, timeout_s: float = 300.0) -> float:
        """Block until one request may be sent under the shared budget; return seconds waited. Raises
        TimeoutError (at once, without using budget) when the next free slot lies past `timeout_s`."""

    @abstractmethod
    def pause(self, bucket: str, seconds: float) -> None:
        """Pause every worker of `bucket` (a 429 with retry-after seen by anyone)."""

    @abstractmethod
    def breaker_allow(self, bucket: str) -> None:
        """Raise BreakerOpen unless a call may go out now (closed, or this caller is the half-open probe)."""

    @abstractmethod
    def breaker_success(self, bucket: str) -> None: ...

    @abstractmethod
    def breaker_failure(self, bucket: str, *, fatal: bool = False, reason: str = "") -> None:
        """Count a transient failure; `fatal` (quota exhausted) opens the breaker at once."""

    @abstractmethod
    def breaker_state(self, bucket: str) -> BreakerState: ...

    # Optional parts of the interface: safe defaults here, real implementations in both coordinators.

    def learn_limit(self, bucket: str, per_minute: float) -> None:  # noqa: B027 - optional hook
        """Record the account's real limit (see `limit_from_headers`); `acquire` then uses the lower one."""

    def effective_limit(self, bucket: str, per_minute: float) -> float:
        """The per-minute budget `acquire` applies for a configured `per_minute`: min(configured, learned)."""
        return per_minute

    def lock_holder(self, name: str) -> str | None:
        """Run id holding (or, for file locks, last holding) partition `name`, for messages."""
        return None

    def breaker_events(self, bucket: str, *, since: float | None = None) -> list[BreakerEvent]:
        """Recent breaker transitions of `bucket`, oldest first (at most `BREAKER_EVENTS_KEPT`)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release client resources (connection pools); held locks are released by their context managers."""


class CoordinationResource(ConfigurableResource):
    """Base of the coordination resources: assets depend on this and call `get_client()`. The settings of
    the locks' waiting, the limiter and the breaker are the same for every implementation."""

    partition_lock_wait_s: float = Field(
        default=60.0, description="How long a run waits for a partition another run holds before LockTimeout"
    )
    lock_poll_s: float = Field(
        default=0.5, description="How often a waiting run tries the partition lock again"
    )
    rate_headroom: float = Field(
        default=0.98,
        description="Fraction of the per-minute limit actually booked, leaving room for clock and network jitter",
    )
    breaker_failure_threshold: int = Field(
        default=5,
        description="Consecutive transient failures (of every process sharing it) that open the breaker",
    )
    breaker_cooldown_s: float = Field(
        default=30.0, description="How long the breaker stays open before one probe"
    )
    breaker_probe_timeout_s: float = Field(
        default=180.0,
        description="If the probe never reports (its process died), another caller probes after this",
    )

    def shared_settings(self) -> dict[str, float]:
        return {
            "partition_lock_wait_s": self.partition_lock_wait_s,
            "lock_poll_s": self.lock_poll_s,
            "rate_headroom": self.rate_headroom,
            "breaker_failure_threshold": self.breaker_failure_threshold,
            "breaker_cooldown_s": self.breaker_cooldown_s,
            "breaker_probe_timeout_s": self.breaker_probe_timeout_s,
        }

    def get_client(self) -> Coordinator:
        raise NotImplementedError


def limit_from_headers(headers: Mapping[str, str]) -> float | None:
    """The per-minute limit an API response announces (`x-ratelimit-limit-images`, else `-requests`)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in LIMIT_HEADERS:
        value = lowered.get(name)
        if value is None:
            continue
        try:
            limit = float(value)
        except ValueError:
            continue
        if limit > 0:
            return limit
    return None


def redact_url(url: str) -> str:
    """`url` without its password and query string, for messages and logs: `redis://user:***@host:port/0`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = ""
    if parts.username or parts.password:
        userinfo = f"{parts.username or ''}{':***' if parts.password else ''}@"
    return f"{parts.scheme}://{userinfo}{host}{port}{parts.path}"


def process_label() -> str:
    """Who caused a change, for breaker events and logs: "host:pid" (no user data)."""
    return f"{socket.gethostname()}:{os.getpid()}"
