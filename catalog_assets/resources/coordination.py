"""Coordination between runs and machines: partition locks, product claims, a shared rate limiter and a
shared circuit breaker. Production form: Redis (`REDIS_URL`); embedded default: in-process limiter and
breaker plus file locks for processes on one machine. Both implement `Coordinator`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass

from dagster import ConfigurableResource


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


class LockHandle(ABC):
    """A held lock, renewed by a heartbeat until released."""

    @abstractmethod
    def is_held(self) -> bool: ...

    def ensure_held(self) -> None:
        if not self.is_held():
            raise LockLost("lost the lock (expired or taken over); stopping writes")


@dataclass(frozen=True)
class BreakerState:
    state: str  # "closed" | "open" | "half_open"
    consecutive_failures: int
    reason: str | None = None
    opened_at: float | None = None


class Coordinator(ABC):
    @abstractmethod
    def check(self) -> None:
        """Verify the backing service answers; raise with a message naming the setting (e.g. REDIS_URL)."""

    @abstractmethod
    def partition_lock(self, name: str, owner: str) -> AbstractContextManager[LockHandle]:
        """Hold `name` for `owner` (a run id). Waits up to the configured time, then raises LockTimeout."""

    @abstractmethod
    def claim_product(self, product_id: str, owner: str) -> AbstractContextManager[LockHandle | None]:
        """Claim one product for generation; yields None (without waiting) when another owner holds it."""

    @abstractmethod
    def acquire(self, bucket: str, per_minute: float, timeout_s: float = 300.0) -> float:
        """Block until one request may be sent under the shared budget; return seconds waited."""

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


class CoordinationResource(ConfigurableResource):
    """Base of the coordination resources: assets depend on this and call `get_client()`."""

    def get_client(self) -> Coordinator:
        raise NotImplementedError
