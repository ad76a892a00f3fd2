"""Embedded coordination for one machine (no REDIS_URL): file locks shared by every process on the machine,
and a GCRA limiter and circuit breaker shared by the threads of one process.

The limiter and breaker live in this process only (one domain per lock directory), so separate runs on one
machine each get the full budget: use Redis when several runs share an account. The locks are flock(2)
locks on one file per lock: the kernel drops them when their process dies, so they need no TTL or heartbeat.
A lock's file is removed when it is released, so the directory holds only live locks (and those of killed
processes, until their next holder releases them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Unpack

from pydantic import Field

from catalog_assets.call_ledger import FileCallLog
from catalog_assets.resources.coordination import (
    BREAKER_EVENTS_KEPT,
    KEY_VERDICT_TTL_S,
    LOGGER_NAME,
    MAX_REASON_CHARS,
    RATE_EVENTS_KEPT,
    Booking,
    BreakerEvent,
    BreakerState,
    CoordinationResource,
    CoordinationUnavailable,
    Coordinator,
    CoordinatorSettings,
    KeyVerdict,
    LockHandle,
    ProbeVerdict,
    RateEvent,
    RateVerdict,
)

log = logging.getLogger(LOGGER_NAME)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def lock_file_name(name: str) -> str:
    """A file name for any lock name: a readable slug plus a hash, so no id can leave the lock directory."""
    slug = _UNSAFE.sub("_", name).strip("._-")[:48] or "lock"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"


def _names_inode(path: Path, identity: tuple[int, int]) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == identity


def _lock_file(path: Path, payload: bytes) -> tuple[int, tuple[int, int]] | None:
    """flock `path` without waiting: (descriptor, (st_dev, st_ino)) of the locked file, or None if held.

    The holder removes the file when it releases (while still holding the lock), so a process may open the
    file, then lock it just after it was removed, while a third process creates and locks a new file at
    the same path. The inode check after locking catches that: a lock on a file the path no longer names
    is dropped and the path tried again, so at most one process holds the lock the path names.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        st = os.fstat(fd)
        identity = (st.st_dev, st.st_ino)
        if not _names_inode(path, identity):
            os.close(fd)  # removed by its last holder after we opened it: lock what the path names now
            continue
        try:
            # The lock file names its holder, so a waiter can say which run it waits for. Write, then cut
            # what a killed holder left: truncating to 0 first would make ext4 flush the file on close.
            os.pwrite(fd, payload, 0)
            if st.st_size > len(payload):
                os.ftruncate(fd, len(payload))
        except BaseException:
            os.close(fd)
            raise
        return fd, identity


class FileLockHandle(LockHandle):
    """A held flock lock. Lost if its file is removed or replaced (another process could then lock anew)."""

    def __init__(self, fd: int, path: Path, identity: tuple[int, int], *, name: str, owner: str) -> None:
        self.name, self.owner = name, owner
        self._fd = fd
        self._path = path
        self._identity = identity
        self._released = False
        self._lost = False

    def is_held(self, *, refresh: bool = False) -> bool:
        """Checks the lock file every time (a stat), so `refresh` changes nothing here."""
        if self._released or self._lost:
            return False
        if not _names_inode(self._path, self._identity):
            self._lost = True
            log.warning(
                "lost lock %s held for run %s (its lock file was removed); writes stop", self.name, self.owner
            )
        return not self._lost

    def release(self) -> None:
        """Remove the lock file, then unlock. The removal happens while we hold the lock and only if the
        path still names our file, so it never removes a file another holder locked (see `_lock_file`)."""
        if self._released:
            return
        self._released = True
        try:
            if _names_inode(self._path, self._identity):
                self._path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # drops the flock


@dataclass
class _Bucket:
    tat: float = 0.0  # monotonic theoretical arrival time
    resume: float = 0.0  # monotonic end of the current pause
    learned: float | None = None
    factor: float = 1.0  # shared rate as a fraction of the limit (lowered by window 429s)
    changed_at: float = 0.0  # monotonic time of the factor's last change
    window_resume: float = 0.0  # monotonic end of the last window pause: earlier sends are that window
    recent_429s: deque[float] = field(default_factory=deque)  # 429s without a remaining header
    events: deque[RateEvent] = field(default_factory=lambda: deque(maxlen=RATE_EVENTS_KEPT))


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
        self, lock_dir: str | os.PathLike[str] = "data/state/locks", **settings: Unpack[CoordinatorSettings]
    ) -> None:
        super().__init__(**settings)
        self._dir = Path(lock_dir)
        self._domain = _domain(self._dir)

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

    def _path(self, kind: str, name: str) -> Path:
        return self._dir / f"{kind}s" / lock_file_name(name)

    def _try_lock(self, kind: str, name: str, owner: str) -> FileLockHandle | None:
        path = self._path(kind, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"owner": owner, "by": self._who, "since": time.time()}).encode()
        locked = _lock_file(path, payload)
        if locked is None:
            return None
        fd, identity = locked
        return FileLockHandle(fd, path, identity, name=f"{kind} {name}", owner=owner)

    def _holder(self, kind: str, name: str) -> str | None:
        try:
            return str(json.loads(self._path(kind, name).read_text(encoding="utf-8"))["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # --- rate limiter: the same GCRA as the Redis script, on this process's monotonic clock --------------

    def _bucket(self, bucket: str) -> _Bucket:
        return self._domain.buckets.setdefault(bucket, _Bucket())

    def _book(self, bucket: str, per_minute: float, max_wait_s: float) -> Booking:
        with self._domain.lock:
            b = self._bucket(bucket)
            now = time.monotonic()
            raised_to = None
            if b.factor < 1.0 and now - b.changed_at >= self._recover_s:
                raised_to = min(1.0, b.factor + self._increase)
                self._rate_change(bucket, b, "increase", raised_to, 0.0, "no window 429 for a clean period")
                b.changed_at = now
            limit = (min(per_minute, b.learned) if b.learned else per_minute) * b.factor
            tat = max(b.tat, now)
            slot = max(tat - self._burst_s, now, b.resume)
            wait = slot - now
            if wait > max_wait_s:
                return Booking(False, wait, slot, raised_to)
            b.tat = max(tat, slot) + 60.0 / (limit * self._headroom)
        return Booking(True, wait, slot, raised_to)

    def _rate_change(
        self, bucket: str, b: _Bucket, change: str, to: float, paused_s: float, reason: str
    ) -> None:
        """Record and apply a factor change; the caller holds the domain lock."""
        b.events.append(
            RateEvent(
                time.time(), bucket, change, b.factor, to, paused_s, reason[:MAX_REASON_CHARS], self._who
            )
        )
        b.factor = to

    def _report_429(
        self, bucket: str, pause_s: float, sent: float | None, signal: int, reason: str
    ) -> RateVerdict:
        with self._domain.lock:
            b = self._bucket(bucket)
            now = time.monotonic()
            if signal == 0:
                recent = b.recent_429s
                recent.append(now)
                while recent and recent[0] <= now - self._burst_span_s:
                    recent.popleft()
                signal = 1 if len(recent) >= self._burst_429s else -1
            if signal < 0:
                return RateVerdict("isolated", 0.0, b.factor)
            same_window = sent < b.window_resume if sent is not None else now < b.window_resume + pause_s
            if same_window:
                return RateVerdict("coalesced", 0.0, b.factor)
            b.resume = max(b.resume, now + pause_s)
            b.tat = max(b.tat, b.resume + self._burst_s)
            b.window_resume = b.resume
            lowered = max(self._floor, b.factor * self._decrease)
            self._rate_change(bucket, b, "decrease", lowered, pause_s, reason)
            b.changed_at = now
            return RateVerdict("window", b.resume - now, b.factor)

    def _rate_factor(self, bucket: str) -> float:
        with self._domain.lock:
            return self._bucket(bucket).factor

    def _rate_events(self, bucket: str) -> list[RateEvent]:
        with self._domain.lock:
            return list(self._bucket(bucket).events)

    def _slot_epoch_s(self, slot: float) -> float:
        return time.time() - time.monotonic() + slot

    def _paused_past(self, bucket: str, slot: float) -> bool:
        with self._domain.lock:
            return self._bucket(bucket).resume > slot

    def _pause(self, bucket: str, seconds: float) -> bool:
        with self._domain.lock:
            b = self._bucket(bucket)
            resume = time.monotonic() + seconds
            if resume <= b.resume:
                return False
            b.resume = resume
            b.tat = max(b.tat, b.resume + self._burst_s)
            return True

    def _store_limit(self, bucket: str, per_minute: float) -> float | None:
        with self._domain.lock:
            b = self._bucket(bucket)
            previous, b.learned = b.learned, per_minute
        return previous

    def _learned_limit(self, bucket: str) -> float | None:
        with self._domain.lock:
            return self._bucket(bucket).learned

    # --- circuit breaker: the transitions of the Redis scripts, under the domain lock --------------------

    def _breaker(self, bucket: str) -> _Breaker:
        return self._domain.breakers.setdefault(bucket, _Breaker())

    def _transition(self, bucket: str, br: _Breaker, to: str, reason: str) -> None:
        """Record a state change; the caller holds the domain lock."""
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
        br.open_until = max(br.open_until, time.monotonic() + self._cooldown_s)
        br.opened_at = time.time()
        br.reason = why
        br.probe_token = None
        if br.state != "open":
            self._transition(bucket, br, "open", why)

    def _breaker_allow(self, bucket: str, token: str) -> ProbeVerdict:
        with self._domain.lock:
            br = self._breaker(bucket)
            if br.state == "closed":
                return ProbeVerdict("closed")
            now = time.monotonic()
            if now < br.open_until:
                return ProbeVerdict("open", br.open_until - now, br.reason)
            if br.probe_token is not None and now < br.probe_until and br.probe_token != token:
                return ProbeVerdict("half_open", br.probe_until - now, br.reason)
            # A new probe, or still ours (its last call neither succeeded nor failed): it may call again.
            br.probe_token, br.probe_until = token, now + self._probe_timeout_s
            changed = br.state != "half_open"
            if changed:
                self._transition(bucket, br, "half_open", "cool-down over; one probe call decides")
            return ProbeVerdict("probe", 0.0, br.reason, changed)

    def _breaker_success(self, bucket: str, token: str) -> bool:
        with self._domain.lock:
            br = self._breaker(bucket)
            if br.state == "closed":
                br.failures = 0
                return False
            if not token or token != br.probe_token:
                return False  # a call sent before the breaker opened: the probe decides
            br.failures, br.reason, br.probe_token, br.opened_at = 0, "", None, None
            self._transition(bucket, br, "closed", "probe call succeeded")
            return True

    def _breaker_failure(self, bucket: str, token: str, *, fatal: bool, reason: str) -> tuple[bool, str]:
        with self._domain.lock:
            br = self._breaker(bucket)
            was, why = br.state, reason
            if token and token == br.probe_token:
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
            return br.state == "open" and was != "open", why

    def breaker_state(self, bucket: str) -> BreakerState:
        with self._domain.lock:
            br = self._breaker(bucket)
            retry_in = max(0.0, br.open_until - time.monotonic()) if br.state != "closed" else None
            return BreakerState(br.state, br.failures, br.reason or None, br.opened_at, retry_in)

    def _breaker_events(self, bucket: str) -> list[BreakerEvent]:
        with self._domain.lock:
            events = list(self._breaker(bucket).events)
        return events

    def call_log(self) -> FileCallLog:
        """A file per run under <lock_dir>/calls, removed once the run's record is in the store."""
        return FileCallLog(self._dir / "calls")

    # --- API key verdicts and the first-call gate: files under <lock_dir>/keys, shared by the machine ------

    def _key_paths(self, bucket: str) -> tuple[Path, Path]:
        """(verdict file, probe lock file) of `bucket`; the name is a slug plus hash, as for lock files."""
        stem = lock_file_name(bucket).removesuffix(".lock")
        keys = self._dir / "keys"
        return keys / f"{stem}.verdict.json", keys / f"{stem}.probe"

    def key_verdict(self, bucket: str) -> KeyVerdict | None:
        path, _ = self._key_paths(bucket)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if float(data["expires_at"]) <= time.time():
                return None
            return KeyVerdict(bool(data["ok"]), str(data["reason"]), float(data["at"]), str(data["by"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable or half-written by a crashed writer: nobody knows, so probe again

    def set_key_verdict(self, bucket: str, ok: bool, reason: str = "") -> None:
        path, _ = self._key_paths(bucket)
        now = time.time()
        payload = {
            "ok": ok,
            "reason": reason[:MAX_REASON_CHARS],
            "at": now,
            "by": self._who,
            "expires_at": now + KEY_VERDICT_TTL_S,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed over the old one, so a reader sees the old verdict or the new, never half.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verdict-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(payload, out)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if not ok:
            log.error("the API rejected the key of %s: %s", bucket, payload["reason"])

    def _try_key_probe(self, bucket: str) -> Callable[[], None] | None:
        _, path = self._key_paths(bucket)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(
                fd, fcntl.LOCK_EX | fcntl.LOCK_NB
            )  # per open file: threads of one process exclude too
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return lambda: os.close(fd)  # closing the descriptor drops the lock; the kernel does so if we die


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
