"""Embedded coordination for one machine (no REDIS_URL): file locks shared by every process on the machine,
and a GCRA limiter and circuit breaker shared by the threads of one process.

The limiter and breaker live in this process only (one domain per lock directory), so separate runs on one
machine each get the full budget: use Redis when several runs share an account. The locks are `filelock`
(flock) locks: the kernel drops them when their process dies, so they need no TTL or heartbeat.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout
from pydantic import Field

from catalog_assets.resources.coordination import (
    BREAKER_EVENTS_KEPT,
    LOGGER_NAME,
    BreakerEvent,
    BreakerOpen,
    BreakerState,
    CoordinationResource,
    CoordinationUnavailable,
    Coordinator,
    LockHandle,
    LockTimeout,
    process_label,
)

log = logging.getLogger(LOGGER_NAME)

#: while another thread's probe is out, waiters look again this often: its verdict is imminent
PROBE_POLL_S = 1.0
MAX_REASON_CHARS = 300

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def lock_file_name(name: str) -> str:
    """A file name for any lock name: a readable slug plus a hash, so no id can leave the lock directory."""
    slug = _UNSAFE.sub("_", name).strip("._-")[:48] or "lock"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"


class FileLockHandle(LockHandle):
    """A held flock lock. Lost if its file is deleted or replaced (another process could then lock anew)."""

    def __init__(
        self, lock: FileLock, path: Path, identity: tuple[int, int], *, name: str, owner: str
    ) -> None:
        self.name, self.owner = name, owner
        self._lock = lock
        self._path = path
        self._identity = identity
        self._released = False
        self._lost = False

    def is_held(self, *, refresh: bool = False) -> bool:
        """Checks the lock file every time (a stat), so `refresh` changes nothing here."""
        if self._released or self._lost:
            return False
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._identity:
            self._lost = True
            log.warning(
                "lost lock %s held for run %s (its lock file was removed); writes stop", self.name, self.owner
            )
        return not self._lost

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._lock.release()


@dataclass
class _Bucket:
    tat: float = 0.0  # monotonic theoretical arrival time
    resume: float = 0.0  # monotonic end of the current pause
    learned: float | None = None


@dataclass
class _Breaker:
    state: str = "closed"
    failures: int = 0
    reason: str = ""
    opened_at: float | None = None  # epoch
    open_until: float = 0.0  # monotonic
    probe_token: str | None = None
    probe_until: float = 0.0  # monotonic
    events: deque[BreakerEvent] = field(default_factory=lambda: deque(maxlen=BREAKER_EVENTS_KEPT))


class _Domain:
    """Limiter and breaker state shared by every LocalCoordinator of one lock directory in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, _Bucket] = {}
        self.breakers: dict[str, _Breaker] = {}


_DOMAINS: dict[str, _Domain] = {}
_DOMAINS_LOCK = threading.Lock()


def _domain(lock_dir: Path) -> _Domain:
    key = str(lock_dir.resolve())
    with _DOMAINS_LOCK:
        return _DOMAINS.setdefault(key, _Domain())


class LocalCoordinator(Coordinator):
    """The embedded default: same interface as the Redis coordinator, scoped to one machine / one process."""

    def __init__(
        self,
        lock_dir: str | os.PathLike[str] = "data/state/locks",
        *,
        partition_lock_wait_s: float = 60.0,
        lock_poll_s: float = 0.5,
        rate_headroom: float = 0.98,
        rate_burst_s: float = 0.0,
        breaker_failure_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        breaker_probe_timeout_s: float = 180.0,
    ) -> None:
        if not 0 < rate_headroom <= 1:
            raise ValueError("rate_headroom must be in (0, 1]")
        if breaker_failure_threshold < 1:
            raise ValueError("breaker_failure_threshold must be at least 1")
        self._dir = Path(lock_dir)
        self._partition_lock_wait_s = partition_lock_wait_s
        self._lock_poll_s = lock_poll_s
        self._headroom = rate_headroom
        self._burst_s = rate_burst_s
        self._threshold = breaker_failure_threshold
        self._cooldown_s = breaker_cooldown_s
        self._probe_timeout_s = breaker_probe_timeout_s
        self._who = process_label()
        self._domain = _domain(self._dir)
        self._probes = threading.local()

    def __repr__(self) -> str:
        return f"LocalCoordinator({str(self._dir)!r})"

    def check(self) -> None:
        """Make sure the lock directory exists and is writable (names the `lock_dir` setting if not)."""
        try:
            for sub in ("partitions", "products"):
                (self._dir / sub).mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._dir, prefix=".write-check-"):
                pass
        except OSError as exc:
            raise CoordinationUnavailable(
                f"lock directory {self._dir} (lock_dir) is not writable: {exc.strerror or exc}"
            ) from None

    # --- locks ------------------------------------------------------------------------------------------

    @staticmethod
    def _holder(path: Path) -> str | None:
        try:
            return str(json.loads(path.read_text(encoding="utf-8"))["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _take(self, path: Path, label: str, owner: str, *, wait_s: float) -> FileLockHandle | None:
        path.parent.mkdir(parents=True, exist_ok=True)
        identity: list[tuple[int, int]] = []

        def record_owner(fd: int) -> None:
            # The lock file names its holder, so a waiter can say which run it waits for.
            payload = json.dumps({"owner": owner, "by": self._who, "since": time.time()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)
            st = os.fstat(fd)
            identity.append((st.st_dev, st.st_ino))

        lock = FileLock(path, thread_local=False, on_acquired=record_owner)
        started = time.monotonic()
        try:
            lock.acquire(blocking=False)
        except Timeout:
            if wait_s <= 0:
                return None
            log.info("%s is held by run %s; waiting up to %.0fs", label, self._holder(path), wait_s)
            try:
                lock.acquire(
                    timeout=max(0.0, wait_s - (time.monotonic() - started)), poll_interval=self._lock_poll_s
                )
            except Timeout:
                return None
        return FileLockHandle(lock, path, identity[-1], name=label, owner=owner)

    @contextmanager
    def partition_lock(
        self, name: str, owner: str, *, wait_s: float | None = None
    ) -> Iterator[FileLockHandle]:
        """Hold partition `name` for run `owner`; wait up to `wait_s` (default: the configured wait)."""
        wait = self._partition_lock_wait_s if wait_s is None else wait_s
        path = self._dir / "partitions" / lock_file_name(name)
        started = time.monotonic()
        handle = self._take(path, f"partition {name}", owner, wait_s=wait)
        if handle is None:
            raise LockTimeout(f"partition {name}", self._holder(path), time.monotonic() - started)
        try:
            yield handle
        finally:
            handle.release()

    @contextmanager
    def claim_product(self, product_id: str, owner: str) -> Iterator[FileLockHandle | None]:
        """Claim `product_id` without waiting; None while any other claim (even of the same run) is live."""
        path = self._dir / "products" / lock_file_name(product_id)
        handle = self._take(path, f"product {product_id}", owner, wait_s=0)
        if handle is None:
            yield None
            return
        try:
            yield handle
        finally:
            handle.release()

    def lock_holder(self, name: str) -> str | None:
        """Run id recorded by the last holder of partition `name` (for messages and tests)."""
        return self._holder(self._dir / "partitions" / lock_file_name(name))

    # --- rate limiter -----------------------------------------------------------------------------------

    def _bucket(self, bucket: str) -> _Bucket:
        return self._domain.buckets.setdefault(bucket, _Bucket())

    def acquire(self, bucket: str, per_minute: float, timeout_s: float = 300.0) -> float:
        """Book the next slot of this process's budget and sleep until it (same GCRA as the Redis one)."""
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            with self._domain.lock:
                b = self._bucket(bucket)
                now = time.monotonic()
                limit = min(per_minute, b.learned) if b.learned else per_minute
                tat = max(b.tat, now)
                slot = max(tat - self._burst_s, now, b.resume)
                wait = slot - now
                if wait > deadline - now:
                    raise TimeoutError(
                        f"rate limiter {bucket}: next slot in {wait:.1f}s is past the {timeout_s:.0f}s timeout"
                    )
                b.tat = max(tat, slot) + 60.0 / (limit * self._headroom)
            if wait <= 0:
                break
            time.sleep(wait)
            with self._domain.lock:
                if self._bucket(bucket).resume <= slot:
                    break
            # A pause was announced after we booked: our slot lies inside it, so book again behind it.
        return time.monotonic() - started

    def pause(self, bucket: str, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._domain.lock:
            b = self._bucket(bucket)
            b.resume = max(b.resume, time.monotonic() + seconds)
            b.tat = max(b.tat, b.resume + self._burst_s)
        log.info("rate limiter %s paused for %.1fs for every worker", bucket, seconds)

    def learn_limit(self, bucket: str, per_minute: float) -> None:
        if per_minute <= 0:
            return
        with self._domain.lock:
            b = self._bucket(bucket)
            changed, b.learned = b.learned != per_minute, float(per_minute)
        if changed:
            log.info("rate limiter %s: the API announces %g requests/min", bucket, per_minute)

    def effective_limit(self, bucket: str, per_minute: float) -> float:
        with self._domain.lock:
            learned = self._bucket(bucket).learned
        return min(per_minute, learned) if learned else per_minute

    # --- circuit breaker --------------------------------------------------------------------------------

    def _breaker(self, bucket: str) -> _Breaker:
        return self._domain.breakers.setdefault(bucket, _Breaker())

    def _probe_tokens(self) -> dict[str, str]:
        tokens = getattr(self._probes, "tokens", None)
        if tokens is None:
            tokens = self._probes.tokens = {}
        return tokens

    def _transition(self, bucket: str, br: _Breaker, to: str, reason: str) -> None:
        """Record a state change; the caller holds the domain lock and logs after releasing it."""
        br.events.append(
            BreakerEvent(
                at=time.time(),
                bucket=bucket,
                from_state=br.state,
                to_state=to,
                reason=reason,
                consecutive_failures=br.failures,
                by=self._who,
            )
        )
        br.state = to

    def _open(self, bucket: str, br: _Breaker, why: str) -> None:
        now = time.monotonic()
        was = br.state
        br.open_until = max(br.open_until, now + self._cooldown_s)
        br.opened_at = time.time()
        br.reason = why
        br.probe_token = None
        if was != "open":
            self._transition(bucket, br, "open", why)

    def breaker_allow(self, bucket: str) -> None:
        """As RedisCoordinator.breaker_allow: report the probe's outcome from the same thread."""
        with self._domain.lock:
            br = self._breaker(bucket)
            if br.state == "closed":
                return
            now = time.monotonic()
            if now < br.open_until:
                raise BreakerOpen(br.reason, br.open_until - now)
            mine = self._probe_tokens().pop(bucket, None)
            if br.probe_token is not None and now < br.probe_until and br.probe_token != mine:
                raise BreakerOpen(br.reason, min(br.probe_until - now, PROBE_POLL_S))
            # A new probe, or still ours (its last call neither succeeded nor failed): it may call again.
            token = mine if mine is not None and mine == br.probe_token else uuid.uuid4().hex
            br.probe_token, br.probe_until = token, now + self._probe_timeout_s
            changed = br.state != "half_open"
            if changed:
                self._transition(bucket, br, "half_open", "cool-down over; one probe call decides")
        self._probe_tokens()[bucket] = token
        if changed:
            log.warning("circuit breaker %s half-open: this worker sends the one probe call", bucket)

    def breaker_success(self, bucket: str) -> None:
        token = self._probe_tokens().pop(bucket, None)
        with self._domain.lock:
            br = self._breaker(bucket)
            if br.state == "closed":
                br.failures = 0
                return
            if token is None or token != br.probe_token:
                return  # a call sent before the breaker opened: the probe decides
            br.failures, br.reason, br.probe_token, br.opened_at = 0, "", None, None
            self._transition(bucket, br, "closed", "probe call succeeded")
        log.warning("circuit breaker %s closed: the probe call succeeded", bucket)

    def breaker_failure(self, bucket: str, *, fatal: bool = False, reason: str = "") -> None:
        token = self._probe_tokens().pop(bucket, None)
        reason = (reason or ("fatal error" if fatal else "transient error"))[:MAX_REASON_CHARS]
        with self._domain.lock:
            br = self._breaker(bucket)
            was, why = br.state, reason
            if token is not None and token == br.probe_token:
                br.failures += 1
                why = f"probe call failed: {reason}"
                self._open(bucket, br, why)
            elif fatal:
                br.failures += 1
                why = f"fatal: {reason}"
                self._open(bucket, br, why)
            elif br.state == "closed":
                br.failures += 1
                why = f"{br.failures} consecutive transient failures; last: {reason}"
                if br.failures >= self._threshold:
                    self._open(bucket, br, why)
            changed = br.state == "open" and was != "open"
        if changed:
            log.warning("circuit breaker %s opened for %.1fs: %s", bucket, self._cooldown_s, why)

    def breaker_state(self, bucket: str) -> BreakerState:
        with self._domain.lock:
            br = self._breaker(bucket)
            retry_in = max(0.0, br.open_until - time.monotonic()) if br.state != "closed" else None
            return BreakerState(br.state, br.failures, br.reason or None, br.opened_at, retry_in)

    def breaker_events(self, bucket: str, *, since: float | None = None) -> list[BreakerEvent]:
        with self._domain.lock:
            events = list(self._breaker(bucket).events)
        return [e for e in events if since is None or e.at >= since]


class LocalCoordinationResource(CoordinationResource):
    """Embedded coordination for one machine: file locks under `lock_dir`, in-process limiter and breaker."""

    lock_dir: str = Field(
        default="data/state/locks",
        description="Directory of the partition and product lock files (one machine)",
    )
    rate_burst_s: float = Field(
        default=0.5,
        description="GCRA burst tolerance (tau): after idling, 1 + rate_burst_s x rate requests may go out at "
        "once; half of the one-second bucket the API enforces per-minute limits with, as sends run late.",
    )

    def get_client(self) -> LocalCoordinator:
        return LocalCoordinator(
            self.lock_dir,
            rate_burst_s=self.rate_burst_s,
            **self.shared_settings(),
        )
