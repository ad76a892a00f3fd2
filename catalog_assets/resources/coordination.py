"""Coordination between runs and machines: partition locks, product claims, a shared rate limiter and a
shared circuit breaker. Production form: Redis (`REDIS_URL`, `redis_coordination.py`); embedded default:
in-process limiter and breaker plus file locks for processes on one machine (`local_coordination.py`).
Both implement `Coordinator`, which holds the flow they share; assets depend on `CoordinationResource` only.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import urlsplit

from dagster import ConfigurableResource
from pydantic import Field

if TYPE_CHECKING:
    from catalog_assets.call_ledger import CallLog

#: stdlib logger for state changes (breaker transitions, lost locks, waits); product_images forwards it
#: into the run's log
LOGGER_NAME = "catalog_assets.coordination"
log = logging.getLogger(LOGGER_NAME)

#: how many breaker transitions each bucket keeps for run metadata
BREAKER_EVENTS_KEPT = 100

#: response headers that carry the account's per-minute limit, most specific first
LIMIT_HEADERS = ("x-ratelimit-limit-images", "x-ratelimit-limit-requests")
#: response headers that say how much of the window is left, most specific first
REMAINING_HEADERS = ("x-ratelimit-remaining-images", "x-ratelimit-remaining-requests")
#: how many rate changes (decreases on window 429s, steps back up) each bucket keeps for run metadata
RATE_EVENTS_KEPT = 100

#: while another caller's probe is out, waiters look again this often: its verdict is imminent
PROBE_POLL_S = 1.0

#: reasons end up in logs and run metadata: keep them short
MAX_REASON_CHARS = 300


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
    """A held lock until released: a Redis key its heartbeat renews, or a flock on a lock file."""

    @abstractmethod
    def is_held(self, *, refresh: bool = False) -> bool:
        """Whether we still hold the lock. Cheap by default (what the heartbeat last saw); `refresh` also
        asks the backend now (one Redis round trip), e.g. right before an expensive write."""

    def ensure_held(self, *, refresh: bool = False) -> None:
        if not self.is_held(refresh=refresh):
            raise LockLost("lost the lock (expired or taken over); stopping writes")

    @abstractmethod
    def release(self) -> None:
        """Give the lock up (idempotent); never frees a lock someone else took over."""


@dataclass(frozen=True)
class BreakerState:
    state: str  # "closed" | "open" | "half_open"
    consecutive_failures: int
    reason: str | None = None
    opened_at: float | None = None  # epoch seconds
    retry_in_s: float | None = None  # open: seconds until the cool-down ends (0: the next caller probes)


@dataclass(frozen=True)
class RateVerdict:
    """What one 429 (rate_limit_exceeded) meant for the shared limiter.

    `kind`: "window" (the account's window is exhausted: every worker paused for `pause_s` and the shared
    rate lowered to `factor` of the limit), "coalesced" (the same window as a pause already taken: nothing
    changed) or "isolated" (the window has room: only this product waits its retry-after)."""

    kind: str
    pause_s: float
    factor: float


@dataclass(frozen=True)
class RateEvent:
    """One change of a bucket's shared rate, as kept for run metadata."""

    at: float  # epoch seconds (the Redis server's clock for the Redis coordinator)
    bucket: str
    change: str  # "decrease" (a window 429, with a pause) | "increase" (a clean period passed)
    from_factor: float  # fractions of min(configured, learned) limit
    to_factor: float
    paused_s: float
    reason: str
    by: str  # "host:pid"

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at,
            "bucket": self.bucket,
            "change": self.change,
            "from": round(self.from_factor, 4),
            "to": round(self.to_factor, 4),
            "paused_s": round(self.paused_s, 3),
            "reason": self.reason,
            "by": self.by,
        }


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


class CoordinatorSettings(TypedDict, total=False):
    """The settings every coordinator takes (see `CoordinationResource` for what each means)."""

    partition_lock_wait_s: float
    lock_poll_s: float
    rate_headroom: float
    rate_burst_s: float
    rate_decrease: float
    rate_floor: float
    rate_recover_s: float
    rate_increase: float
    rate_burst_429s: int
    rate_burst_span_s: float
    breaker_failure_threshold: int
    breaker_cooldown_s: float
    breaker_probe_timeout_s: float


@dataclass(frozen=True)
class Booking:
    """A backend's answer to "book me a slot": `slot` is in the backend's own clock, for `_paused_past`.
    `raised_to` is the shared rate factor when this booking stepped it back up (a clean period passed)."""

    granted: bool
    wait_s: float
    slot: float
    raised_to: float | None = None


@dataclass(frozen=True)
class ProbeVerdict:
    """A backend's answer to "may I call?": "closed" or "probe" (go), "open" or "half_open" (do not)."""

    verdict: str
    retry_in_s: float = 0.0
    reason: str = ""
    changed: bool = False  # this call moved the breaker to half-open


class Coordinator(ABC):
    """Locks, limiter and breaker with the flow every backend shares: waiting for a lock, the limiter's
    sleep-and-rebook loop, the per-thread probe token, reason limits and logging. A backend supplies the
    atomic primitives (the abstract `_`-methods near the end), so both backends follow one flow."""

    def __init__(
        self,
        *,
        partition_lock_wait_s: float = 60.0,
        lock_poll_s: float = 0.5,
        rate_headroom: float = 0.98,
        rate_burst_s: float = 0.0,
        rate_decrease: float = 0.8,
        rate_floor: float = 0.25,
        rate_recover_s: float = 10.0,
        rate_increase: float = 0.05,
        rate_burst_429s: int = 3,
        rate_burst_span_s: float = 2.0,
        breaker_failure_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        breaker_probe_timeout_s: float = 180.0,
    ) -> None:
        if not 0 < rate_headroom <= 1:
            raise ValueError("rate_headroom must be in (0, 1]")
        if not 0 < rate_decrease <= 1 or not 0 < rate_floor <= 1:
            raise ValueError("rate_decrease and rate_floor must be in (0, 1]")
        if rate_recover_s <= 0 or not 0 < rate_increase <= 1:
            raise ValueError("rate_recover_s must be positive and rate_increase in (0, 1]")
        if rate_burst_429s < 1 or rate_burst_span_s <= 0:
            raise ValueError("rate_burst_429s must be at least 1 and rate_burst_span_s positive")
        if breaker_failure_threshold < 1:
            raise ValueError("breaker_failure_threshold must be at least 1")
        self._partition_lock_wait_s = partition_lock_wait_s
        self._lock_poll_s = lock_poll_s
        self._headroom = rate_headroom
        self._burst_s = rate_burst_s
        self._decrease = rate_decrease
        self._floor = rate_floor
        self._recover_s = rate_recover_s
        self._increase = rate_increase
        self._burst_429s = rate_burst_429s
        self._burst_span_s = rate_burst_span_s
        self._sent = threading.local()  # bucket -> backend-clock slot of this thread's last booking
        self._threshold = breaker_failure_threshold
        self._cooldown_s = breaker_cooldown_s
        self._probe_timeout_s = breaker_probe_timeout_s
        self._who = process_label()
        self._probes = threading.local()  # bucket -> probe token of this thread

    @abstractmethod
    def check(self) -> None:
        """Verify the backing service answers; raise with a message naming the setting (e.g. REDIS_URL)."""

    # --- locks ------------------------------------------------------------------------------------------

    @contextmanager
    def partition_lock(self, name: str, owner: str, *, wait_s: float | None = None) -> Iterator[LockHandle]:
        """Hold `name` for `owner` (a run id). Waits up to `wait_s` (default: the configured time), then
        raises LockTimeout naming the holder's run id."""
        wait = self._partition_lock_wait_s if wait_s is None else wait_s
        started = time.monotonic()
        handle = self._take("partition", name, owner, wait_s=wait)
        if handle is None:
            raise LockTimeout(
                f"partition {name}", self._holder("partition", name), time.monotonic() - started
            )
        try:
            yield handle
        finally:
            handle.release()

    @contextmanager
    def claim_product(self, product_id: str, owner: str) -> Iterator[LockHandle | None]:
        """Claim one product for generation; yields None (without waiting) while any other claim (even of
        the same run) is live."""
        handle = self._take("product", product_id, owner, wait_s=0)
        if handle is None:
            yield None
            return
        try:
            yield handle
        finally:
            handle.release()

    def lock_holder(self, name: str) -> str | None:
        """Run id holding partition `name`, for messages (file locks: also a killed holder's, until the next
        holder releases the lock)."""
        return self._holder("partition", name)

    def _take(self, kind: str, name: str, owner: str, *, wait_s: float) -> LockHandle | None:
        """Take lock `kind` `name` for `owner`, trying again every `lock_poll_s` for up to `wait_s`; None
        when someone else still holds it."""
        label = f"{kind} {name}"
        started = time.monotonic()
        announced = False
        while True:
            handle = self._try_lock(kind, name, owner)
            if handle is not None:
                return handle
            remaining = wait_s - (time.monotonic() - started)
            if remaining <= 0:
                return None
            if not announced:
                log.info("%s is held by run %s; waiting up to %.0fs", label, self._holder(kind, name), wait_s)
                announced = True
            time.sleep(min(self._lock_poll_s, remaining))

    # --- rate limiter -----------------------------------------------------------------------------------

    def acquire(self, bucket: str, per_minute: float, timeout_s: float = 300.0) -> float:
        """Block until one request may be sent under the shared budget; return seconds waited. Raises
        TimeoutError (at once, without using budget) when the next free slot lies past `timeout_s`.

        The effective limit is min(per_minute, learned limit) x the shared rate factor (lowered by window
        429s, see `rate_limited`) x rate_headroom (GCRA, burst `rate_burst_s`). The booked slot is remembered
        for this thread: a 429 the call then gets is judged by when it was sent.
        """
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            booking = self._book(bucket, float(per_minute), max(0.0, deadline - time.monotonic()))
            if not booking.granted:
                raise TimeoutError(
                    f"rate limiter {bucket}: next slot in {booking.wait_s:.1f}s is past the {timeout_s:.0f}s timeout"
                )
            if booking.raised_to is not None:
                log.info(
                    "rate limiter %s: no window 429 for %.0fs; rate raised to %.0f%% of the limit",
                    bucket,
                    self._recover_s,
                    100 * booking.raised_to,
                )
            if booking.wait_s > 0:
                time.sleep(booking.wait_s)
                if self._paused_past(bucket, booking.slot):
                    continue  # a pause was announced after we booked: our slot lies inside it, rebook
            self._sent_slots()[bucket] = booking.slot
            break
        return time.monotonic() - started

    def booked_slot(self, bucket: str) -> float | None:
        """When this thread's last request let through for `bucket` was booked to go out (epoch seconds on
        the coordinator's clock), or None before the first and once its 429 was reported."""
        slot = self._sent_slots().get(bucket)
        return None if slot is None else self._slot_epoch_s(slot)

    def _slot_epoch_s(self, slot: float) -> float:
        """A booked slot, in the backend's own clock, as epoch seconds."""
        raise NotImplementedError

    def _sent_slots(self) -> dict[str, float]:
        slots = getattr(self._sent, "slots", None)
        if slots is None:
            slots = self._sent.slots = {}
        return slots

    def rate_limited(
        self,
        bucket: str,
        retry_after_s: float | None,
        headers: Mapping[str, str] | None = None,
        *,
        reason: str = "",
    ) -> RateVerdict:
        """Report a 429 rate_limit_exceeded this thread's last call got; say what it means (`RateVerdict`).

        A 429 signals the window when its `x-ratelimit-remaining-images` (else `-requests`) header is 0, or,
        without that header, when `rate_burst_429s` of them arrive within `rate_burst_span_s` across every
        worker. A window 429 pauses every worker for its retry-after and multiplies the shared rate by
        `rate_decrease` (not below `rate_floor`); it climbs back by `rate_increase` per `rate_recover_s`
        without one. A window 429 of a call sent before the last window pause ended is the same window: it
        is coalesced (no second pause, no second decrease). Any other 429 is isolated: only its product
        waits, everyone else keeps the rate.
        """
        pause_s = 1.0 if retry_after_s is None else max(0.0, retry_after_s)
        signal = window_signal(headers or {})
        sent = self._sent_slots().pop(bucket, None)
        verdict = self._report_429(bucket, pause_s, sent, signal, (reason or "window 429")[:MAX_REASON_CHARS])
        if verdict.kind == "window":
            log.warning(
                "rate limiter %s: the API's window is exhausted; every worker paused for %.1fs, rate lowered "
                "to %.0f%% of the limit",
                bucket,
                verdict.pause_s,
                100 * verdict.factor,
            )
        else:
            log.debug("rate limiter %s: %s 429 (no shared pause)", bucket, verdict.kind)
        return verdict

    def rate_factor(self, bucket: str) -> float:
        """The shared rate as a fraction of min(configured, learned) limit: 1 until a window 429."""
        return self._rate_factor(bucket)

    def rate_events(self, bucket: str, *, since: float | None = None) -> list[RateEvent]:
        """Recent changes of the shared rate of `bucket`, oldest first (at most `RATE_EVENTS_KEPT`); `since`
        (epoch s) keeps only later ones."""
        return [e for e in self._rate_events(bucket) if since is None or e.at >= since]

    def pause(self, bucket: str, seconds: float) -> bool:
        """Pause every worker of `bucket` for `seconds`; return whether the pause's end moved. A pause that
        ends before one already set extends nothing (and is not logged)."""
        if seconds <= 0:
            return False
        extended = self._pause(bucket, seconds)
        if extended:
            log.info("rate limiter %s paused for %.1fs for every worker", bucket, seconds)
        return extended

    def learn_limit(self, bucket: str, per_minute: float) -> None:
        """Record the account's real limit (see `limit_from_headers`); `acquire` then uses the lower one."""
        if per_minute <= 0:
            return
        if self._store_limit(bucket, float(per_minute)) != float(per_minute):
            log.info("rate limiter %s: the API announces %g requests/min", bucket, per_minute)

    def effective_limit(self, bucket: str, per_minute: float) -> float:
        """The limit `acquire` paces against for a configured `per_minute`: min(configured, learned). It
        books `rate_factor` (lowered by window 429s) x `rate_headroom` of it."""
        learned = self._learned_limit(bucket)
        return min(per_minute, learned) if learned else per_minute

    # --- circuit breaker --------------------------------------------------------------------------------

    def _probe_tokens(self) -> dict[str, str]:
        tokens = getattr(self._probes, "tokens", None)
        if tokens is None:
            tokens = self._probes.tokens = {}
        return tokens

    def breaker_allow(self, bucket: str) -> None:
        """Return if a call may go out (closed, or this thread is the one half-open probe); else BreakerOpen.

        The probe is remembered per thread: report its outcome from the same thread with breaker_success or
        breaker_failure. Any answer that is not a transient failure (even a 400) proves the API is up and
        should be reported as a success; until the probe reports, only its thread may call (again), and
        after `breaker_probe_timeout_s` without a report another caller becomes the probe.
        """
        tokens = self._probe_tokens()
        token = tokens.pop(bucket, None) or uuid.uuid4().hex
        answer = self._breaker_allow(bucket, token)
        if answer.verdict == "closed":
            return
        if answer.verdict == "probe":
            tokens[bucket] = token
            if answer.changed:
                log.warning("circuit breaker %s half-open: this worker sends the one probe call", bucket)
            return
        retry_in_s = answer.retry_in_s
        if answer.verdict == "half_open":
            retry_in_s = min(retry_in_s, PROBE_POLL_S)  # the probe's verdict is imminent: look again soon
        raise BreakerOpen(answer.reason or answer.verdict, max(0.0, retry_in_s))

    def breaker_success(self, bucket: str) -> None:
        """Report a call the API answered; the probe's success closes the breaker, anyone's resets the count."""
        if self._breaker_success(bucket, self._probe_tokens().pop(bucket, "")):
            log.warning("circuit breaker %s closed: the probe call succeeded", bucket)

    def breaker_failure(self, bucket: str, *, fatal: bool = False, reason: str = "") -> None:
        """Count a transient failure (K in a row anywhere open it); `fatal` (quota exhausted) opens it at
        once. `reason` is logged and kept in events: pass a classified message, never anything secret."""
        token = self._probe_tokens().pop(bucket, "")
        reason = (reason or ("fatal error" if fatal else "transient error"))[:MAX_REASON_CHARS]
        changed, why = self._breaker_failure(bucket, token, fatal=fatal, reason=reason)
        if changed:
            log.warning("circuit breaker %s opened for %.1fs: %s", bucket, self._cooldown_s, why or reason)

    @abstractmethod
    def breaker_state(self, bucket: str) -> BreakerState: ...

    def breaker_events(self, bucket: str, *, since: float | None = None) -> list[BreakerEvent]:
        """Recent breaker transitions of `bucket`, oldest first (at most `BREAKER_EVENTS_KEPT`); `since`
        (epoch s) keeps only later ones."""
        return [e for e in self._breaker_events(bucket) if since is None or e.at >= since]

    # --- what a backend provides ------------------------------------------------------------------------

    @abstractmethod
    def _try_lock(self, kind: str, name: str, owner: str) -> LockHandle | None:
        """Take lock `kind` ("partition" or "product") `name` for `owner` now, or None if it is held."""

    @abstractmethod
    def _holder(self, kind: str, name: str) -> str | None:
        """Run id recorded by the holder of lock `kind` `name`, None if unknown (never raises)."""

    @abstractmethod
    def _book(self, bucket: str, per_minute: float, max_wait_s: float) -> Booking:
        """Book the next slot atomically if it lies within `max_wait_s`, else book nothing."""

    @abstractmethod
    def _paused_past(self, bucket: str, slot: float) -> bool:
        """Whether a pause now covers `slot` (announced after it was booked)."""

    @abstractmethod
    def _pause(self, bucket: str, seconds: float) -> bool:
        """Set the pause end to now + `seconds` unless a later one is set; return whether it moved."""

    @abstractmethod
    def _report_429(
        self, bucket: str, pause_s: float, sent: float | None, signal: int, reason: str
    ) -> RateVerdict:
        """Atomically classify and apply one 429 (see `rate_limited`). `sent`: the call's booked slot in the
        backend's clock (None: unpaced, then "the same window" means before the last pause end + its
        length); `signal`: 1 remaining header at 0, -1 header with room, 0 no header (count the burst)."""

    @abstractmethod
    def _rate_factor(self, bucket: str) -> float: ...

    @abstractmethod
    def _rate_events(self, bucket: str) -> list[RateEvent]:
        """Every kept rate change of `bucket`, oldest first."""

    @abstractmethod
    def _store_limit(self, bucket: str, per_minute: float) -> float | None:
        """Store the learned limit; return the one stored before (for logging changes)."""

    @abstractmethod
    def _learned_limit(self, bucket: str) -> float | None: ...

    @abstractmethod
    def _breaker_allow(self, bucket: str, token: str) -> ProbeVerdict:
        """Atomically: closed, or open, or make `token` the probe (or keep it), or another probe is out."""

    @abstractmethod
    def _breaker_success(self, bucket: str, token: str) -> bool:
        """Reset the count, or close if `token` is the probe; return whether the breaker closed."""

    @abstractmethod
    def _breaker_failure(self, bucket: str, token: str, *, fatal: bool, reason: str) -> tuple[bool, str]:
        """Count or open (fatal, the probe's failure, or the threshold); return (opened now, why)."""

    @abstractmethod
    def _breaker_events(self, bucket: str) -> list[BreakerEvent]:
        """Every kept transition of `bucket`, oldest first."""

    def call_log(self) -> CallLog | None:
        """Where runs record their calls as they happen (`catalog_assets.call_ledger`), shared like the
        locks; None: this coordinator keeps no record."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release client resources (connection pools); held locks are released by their context managers."""

    # --- API key verdicts and the first-call gate ---------------------------------------------------------
    # One verdict per rate-limit bucket (account key + model), shared by every process of the backend, so a
    # bad key costs one call for a whole run or backfill. The backends keep the verdict (with a TTL) and a
    # probe lock that lives only as long as its holder's process: flock (the kernel drops it) or a Redis key
    # renewed by a heartbeat.

    @abstractmethod
    def key_verdict(self, bucket: str) -> KeyVerdict | None:
        """The shared verdict on the key of `bucket`; None while nobody knows (or it expired)."""

    @abstractmethod
    def set_key_verdict(self, bucket: str, ok: bool, reason: str = "") -> None:
        """Record that the API accepted (`ok`) or rejected the key of `bucket`. `reason` is the message
        every other caller then fails with: classified, naming the setting, never holding a secret."""

    @abstractmethod
    def _try_key_probe(self, bucket: str) -> Callable[[], None] | None:
        """Become the one caller making the first call of `bucket`: its release function, or None while
        another live caller holds it."""

    @contextmanager
    def first_call_gate(self, bucket: str, *, poll_s: float | None = None) -> Iterator[bool]:
        """Let calls go once the key of `bucket` is known to work, or make this caller the one that finds out.

        Yields False when the key was accepted (call freely) and True when this caller is the prober: it
        makes the first call(s) and records the answer with `set_key_verdict`; the others go as soon as a
        verdict is recorded. Raises KeyRejected, with the prober's message, when the key was rejected: no
        call. Waiters wait as long as the prober lives (no fixed timeout); a prober that leaves without a
        verdict (timeouts, 5xx) passes the turn to the next waiter.
        """
        poll = KEY_PROBE_POLL_S if poll_s is None else poll_s
        verdict = self.key_verdict(bucket)
        while verdict is None:
            release = self._try_key_probe(bucket)
            if release is not None:
                verdict = self.key_verdict(bucket)  # decided just before the probe was free?
                if verdict is None:
                    try:
                        yield True
                    finally:
                        release()
                    return
                release()
                break
            time.sleep(poll)
            verdict = self.key_verdict(bucket)
        if not verdict.ok:
            raise KeyRejected(verdict)
        yield False


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
    rate_decrease: float = Field(
        default=0.8,
        description="A window 429 (remaining at 0, or a burst) multiplies the shared rate by this",
    )
    rate_floor: float = Field(
        default=0.25, description="The shared rate never drops below this fraction of the limit"
    )
    rate_recover_s: float = Field(
        default=10.0, description="Seconds without a window 429 before each step of the rate back up"
    )
    rate_increase: float = Field(
        default=0.05, description="Fraction of the limit each clean period adds back (up to the limit)"
    )
    rate_burst_429s: int = Field(
        default=3,
        description="429s without an x-ratelimit-remaining header that, within rate_burst_span_s across "
        "every worker, count as the window (fewer: isolated, only their products wait)",
    )
    rate_burst_span_s: float = Field(default=2.0, description="The span of rate_burst_429s")
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

    def shared_settings(self) -> CoordinatorSettings:
        """The settings every coordinator takes; a resource adds `rate_burst_s` and its backend's own."""
        return {
            "partition_lock_wait_s": self.partition_lock_wait_s,
            "lock_poll_s": self.lock_poll_s,
            "rate_headroom": self.rate_headroom,
            "rate_decrease": self.rate_decrease,
            "rate_floor": self.rate_floor,
            "rate_recover_s": self.rate_recover_s,
            "rate_increase": self.rate_increase,
            "rate_burst_429s": self.rate_burst_429s,
            "rate_burst_span_s": self.rate_burst_span_s,
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


def window_signal(headers: Mapping[str, str]) -> int:
    """What a 429's headers say about the window: 1 remaining at 0 (exhausted), -1 room left, 0 unknown."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in REMAINING_HEADERS:
        value = lowered.get(name)
        if value is None:
            continue
        try:
            remaining = float(value)
        except ValueError:
            continue
        return 1 if remaining <= 0 else -1
    return 0


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


# --- API key verdicts -------------------------------------------------------------------------------------

#: how long a verdict holds: an accepted key is re-verified (one call alone) after this unless calls keep
#: refreshing it; a rejected key is refused without a call for this long (a new key is another bucket)
KEY_VERDICT_TTL_S = 600.0
#: while another caller's first call is out, waiters look again this often: refusals come back at once
KEY_PROBE_POLL_S = 0.1


@dataclass(frozen=True)
class KeyVerdict:
    """What the API said about a key (and model): accepted, or rejected with the message to stop with."""

    ok: bool
    reason: str
    at: float  # epoch seconds
    by: str  # "host:pid" of the process whose call decided it


class KeyRejected(Exception):
    """The API rejected this key (or model) on an earlier call: stop without calling."""

    def __init__(self, verdict: KeyVerdict) -> None:
        self.verdict = verdict
        super().__init__(verdict.reason)
