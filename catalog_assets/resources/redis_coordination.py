"""Redis coordination: the production `Coordinator`, shared by every run on every machine (`REDIS_URL`).

Choices, and why:
- Locks are redis-py's `Lock` (SET NX PX; token-checked Lua release and re-arm). The token is
  "<owner>|<random>", so a waiter reads the holder's run id from the key itself, and a stale holder can never
  release or renew a lock someone else took. A daemon thread re-arms the TTL every `heartbeat_s`; a handle
  counts as held only while the last successful re-arm is younger than the TTL, so a process that was paused
  past its TTL sees `is_held() == False` even before its heartbeat runs again.
- The rate limiter is GCRA in one Lua script of our own, not a library: `limits` offers non-blocking
  window counters only (a blocking acquire becomes a poll loop, and its moving window keeps one entry per
  request), `redis-cell` is a server module that managed Redis rarely allows, and neither knows a shared
  pause, a learned limit or an adaptive rate. GCRA keeps one number per bucket (the theoretical arrival time, TAT) and the
  script books the caller's slot atomically on the server's clock, so N processes never race, never need
  synchronised clocks, and each caller sleeps exactly until its own slot (no retry herd, so no jitter is
  needed: slots are serialised by Redis). A pause is a key holding the resume time; a caller whose booked
  slot falls inside a pause announced after the booking books again behind it. `learn_limit` stores the
  limit an API response announced (an hour's TTL, refreshed on each sighting); the script applies
  min(configured, learned) x the shared rate factor: `rate_429.lua` classifies a 429 (window or
  isolated, see `Coordinator.rate_limited`), pauses and lowers the factor once per window, and the booking
  script steps it back up after each clean period, so the adaptation is one atomic state for every
  process. Scripts read the server clock (TIME), which needs Redis >= 5.
- The breaker is our own three Lua scripts, not pybreaker's `CircuitRedisStorage`: that storage decides
  transitions in each process with separate GET/SET/INCR calls (not atomic), lets every process whose
  timeout elapsed move to half-open and call at once (no single probe), keeps `opened_at` in whole seconds
  of the local clock, has no "open now" for quota exhaustion, and on a Redis error silently falls back to a
  default state (closed), i.e. calls the API without coordination. Here each report is one atomic script
  on the server's clock; the half-open probe is a SET NX with a TTL, so exactly one caller anywhere probes
  (its thread keeps the token, may call again until it reports, and is replaced if it never does).
- Connection loss: the client retries each command with bounded, jittered exponential backoff (redis-py
  `Retry`), which rides out a Redis restart; past that, operations raise `CoordinationUnavailable`. Locks do
  not survive a restart without persistence: their heartbeat then finds the key gone and the handle reports
  lost, so the partition stops writing and fails cleanly.
- The scripts are package files (`lua/*.lua`, see `SCRIPTS`), read once per process and registered on each
  coordinator's client; the flow around them (waiting, sleeping, probe tokens, logging) is the base
  `Coordinator`'s, shared with the local coordinator.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib.resources import files
from typing import Any, Unpack
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from pydantic import Field
from redis.backoff import EqualJitterBackoff
from redis.commands.core import Script
from redis.exceptions import LockError
from redis.lock import Lock
from redis.retry import Retry

from catalog_assets.call_ledger import RedisCallLog
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
    redact_url,
)

log = logging.getLogger(LOGGER_NAME)

#: separates the owner's run id from the random part of a lock token
TOKEN_SEP = "|"
#: learned limits expire so that a raised account tier is picked up without anyone clearing a key
LEARNED_LIMIT_TTL_S = 3600
#: the shared rate factor and its events outlive any clean period by far; absent means the full limit
RATE_STATE_TTL_S = 3600
#: breaker state and events outlive any cool-down by far, but not forever
BREAKER_KEY_TTL_S = 7 * 24 * 3600

#: each script and the package files (`lua/<name>.lua`) it is made of, in order: the preludes define
#: `now_us` (the server's clock) and the breaker's shared locals and event helper
SCRIPTS: dict[str, tuple[str, ...]] = {
    "gcra": ("now", "rate_prelude", "gcra"),
    "pause": ("now", "pause"),
    "rate_429": ("now", "rate_prelude", "rate_429"),
    "breaker_allow": ("now", "breaker_prelude", "breaker_allow"),
    "breaker_success": ("now", "breaker_prelude", "breaker_success"),
    "breaker_failure": ("now", "breaker_prelude", "breaker_failure"),
    "breaker_state": ("now", "breaker_state"),
}


@cache
def lua_source(name: str) -> str:
    """The source of script `name` (see `SCRIPTS`), read once per process from the package's `lua/` files."""
    folder = files("catalog_assets.resources") / "lua"
    return "\n".join((folder / f"{part}.lua").read_text(encoding="utf-8") for part in SCRIPTS[name])


def _secrets_of(url: str) -> set[str]:
    """Every spelling of the URL's password, so error text can be scrubbed of it."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        if parts.password:
            found |= {parts.password, unquote(parts.password)}
        for value in parse_qs(parts.query).get("password", []):
            found.add(value)
    except ValueError:
        pass
    return {s for s in found if s}


class RedisLockHandle(LockHandle):
    """A held Redis lock whose TTL a daemon thread re-arms until `release()`."""

    def __init__(
        self, lock: Lock, *, name: str, owner: str, ttl_s: float, heartbeat_s: float, acquired_at: float
    ) -> None:
        self.name, self.owner = name, owner
        self._lock = lock
        self._ttl_s = ttl_s
        self._heartbeat_s = heartbeat_s
        # The key's TTL started at the server after `acquired_at` (taken before the SET was sent).
        self._valid_until = acquired_at + ttl_s
        self._lost = False
        self._released = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lock-heartbeat {name}", daemon=True)
        self._thread.start()

    def is_held(self, *, refresh: bool = False) -> bool:
        """True while our heartbeat keeps the lock. `refresh` also asks Redis (one round trip)."""
        if self._lost or self._released or time.monotonic() >= self._valid_until:
            return False
        if refresh:
            try:
                owned = self._lock.owned()
            except redis.RedisError:
                return False  # cannot confirm: treat as not held, the caller stops writing
            if not owned:
                self._mark_lost("the key is gone or holds another token")
        return not self._lost

    def _mark_lost(self, why: str) -> None:
        if not self._lost:
            self._lost = True
            log.warning("lost lock %s held for run %s (%s); writes under it stop", self.name, self.owner, why)

    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            attempted_at = time.monotonic()
            try:
                self._lock.reacquire()
            except LockError:
                self._mark_lost("expired or taken over before the heartbeat renewed it")
                return
            except redis.RedisError as exc:
                # Keep trying: the handle's validity runs out on its own if Redis stays away.
                log.warning("could not renew lock %s: %s", self.name, type(exc).__name__)
                continue
            self._valid_until = attempted_at + self._ttl_s

    def release(self) -> None:
        if self._released:
            return
        self._stop.set()
        self._thread.join(timeout=self._ttl_s)
        self._released = True
        if self._lost:
            return
        try:
            self._lock.release()  # token-checked: never deletes another holder's lock
        except LockError:
            self._mark_lost("expired or taken over before release")
        except redis.RedisError as exc:
            log.warning(
                "could not release lock %s (%s); it expires within %.0fs", self.name, exc, self._ttl_s
            )


class RedisCoordinator(Coordinator):
    """Locks, limiter and breaker in Redis; see the module docstring for the choices."""

    def __init__(
        self,
        redis_url: str,
        *,
        key_prefix: str = "catalog-images",
        lock_ttl_s: float = 30.0,
        heartbeat_s: float | None = None,
        product_claim_ttl_s: float = 60.0,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 5.0,
        max_retries: int = 8,
        **settings: Unpack[CoordinatorSettings],
    ) -> None:
        super().__init__(**settings)
        if heartbeat_s is not None and heartbeat_s >= lock_ttl_s:
            raise ValueError("heartbeat_s must be shorter than lock_ttl_s")
        self._url = redis_url
        self._safe_url = redact_url(redis_url)
        self._secrets = _secrets_of(redis_url)
        self._prefix = key_prefix
        self._ttl_s = {"partition": lock_ttl_s, "product": product_claim_ttl_s}
        self._heartbeat_s = heartbeat_s
        self._burst_us = int(self._burst_s * 1e6)
        self._cooldown_ms = int(self._cooldown_s * 1000)
        self._probe_ttl_ms = int(self._probe_timeout_s * 1000)
        self._socket_timeout = socket_timeout
        self._socket_connect_timeout = socket_connect_timeout
        self._r = self._client(max_retries)
        self._scripts: dict[str, Script] = {
            name: self._r.register_script(lua_source(name)) for name in SCRIPTS
        }

    def __repr__(self) -> str:
        return f"RedisCoordinator({self._safe_url!r}, key_prefix={self._prefix!r})"

    def _client(self, max_retries: int) -> redis.Redis:
        try:
            return redis.Redis.from_url(
                self._url,
                decode_responses=True,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_connect_timeout,
                # Rides out a restart (connection refused, then loading) without the caller noticing.
                retry=Retry(EqualJitterBackoff(cap=1.0, base=0.05), retries=max_retries),
                retry_on_error=[redis.ConnectionError, redis.TimeoutError],
                health_check_interval=30,
            )
        except ValueError as exc:
            raise CoordinationUnavailable(
                f"REDIS_URL is not a valid Redis URL ({self._safe_url}): {self._scrub(str(exc))}"
            ) from None

    # --- plumbing ---------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _unavailable(self, what: str, exc: BaseException) -> CoordinationUnavailable:
        detail = self._scrub(str(exc) or type(exc).__name__).replace("\n", " ")
        return CoordinationUnavailable(
            f"Redis coordination unavailable during {what}: cannot use REDIS_URL={self._safe_url} ({detail})"
        )

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn a Redis failure that survived the client's retries into one clear exception."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._unavailable(what, exc) from None

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    def call_log(self) -> RedisCallLog:
        """A list per run under <key_prefix>:calls:, removed once the run's record is in the store."""
        return RedisCallLog(self._r, self._prefix)

    def _bucket_keys(self, kind: str, bucket: str, *names: str) -> list[str]:
        # The {bucket} hash tag keeps a bucket's keys in one slot, so the scripts also run on Redis Cluster.
        tag = "{" + bucket.replace("{", "_").replace("}", "_") + "}"
        return [self._key(kind, tag, name) for name in names]

    def _run(self, script: str, what: str, keys: list[str], args: list[Any] | None = None) -> Any:
        with self._errors(what):
            return self._scripts[script](keys=keys, args=args or [])

    def close(self) -> None:
        self._r.close()

    # --- check ------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Ping Redis and load the scripts; fail with one line naming REDIS_URL (password redacted)."""
        # Few retries here: at run start a dead Redis should fail the run in about a second, not ride it out.
        client = self._client(max_retries=1)
        try:
            client.ping()
            for script in self._scripts.values():
                client.script_load(script.script)
        except redis.RedisError as exc:
            raise CoordinationUnavailable(
                f"cannot use Redis at REDIS_URL={self._safe_url} "
                f"({self._scrub(str(exc) or type(exc).__name__)}): start Redis, fix REDIS_URL, "
                "or unset it to coordinate through local file locks"
            ) from None
        finally:
            client.close()

    # --- locks: redis-py Lock under <prefix>:lock:<kind>:<name>, token "<owner>|<random>" ----------------

    def _try_lock(self, kind: str, name: str, owner: str) -> RedisLockHandle | None:
        ttl_s = self._ttl_s[kind]
        lock = Lock(self._r, self._key("lock", kind, name), timeout=ttl_s, thread_local=False)
        heartbeat_s = self._heartbeat_s if self._heartbeat_s is not None else ttl_s / 3
        attempted_at = time.monotonic()
        with self._errors(f"acquiring {kind} {name}"):
            if not lock.acquire(blocking=False, token=f"{owner}{TOKEN_SEP}{uuid.uuid4().hex}"):
                return None
        return RedisLockHandle(
            lock,
            name=f"{kind} {name}",
            owner=owner,
            ttl_s=ttl_s,
            heartbeat_s=min(heartbeat_s, ttl_s / 2),
            acquired_at=attempted_at,
        )

    def _holder(self, kind: str, name: str) -> str | None:
        try:
            value = self._r.get(self._key("lock", kind, name))
        except redis.RedisError:
            return None
        return None if value is None else value.rsplit(TOKEN_SEP, 1)[0]

    # --- rate limiter (gcra.lua, pause.lua) -------------------------------------------------------------

    def _rate_keys(self, bucket: str, *extra: str) -> list[str]:
        return self._bucket_keys("rate", bucket, "tat", "pause", "limit", "adapt", "events", *extra)

    def _book(self, bucket: str, per_minute: float, max_wait_s: float) -> Booking:
        granted, wait_us, slot_us, raised = self._run(
            "gcra",
            "rate limiting",
            self._rate_keys(bucket),
            [
                per_minute,
                self._headroom,
                self._burst_us,
                int(max_wait_s * 1e6),
                int(self._recover_s * 1e6),
                self._increase,
                self._who,
                RATE_EVENTS_KEPT,
                RATE_STATE_TTL_S,
            ],
        )
        return Booking(bool(granted), wait_us / 1e6, slot_us, float(raised) if raised else None)

    def _slot_epoch_s(self, slot: float) -> float:
        return slot / 1e6  # Redis TIME, in microseconds

    def _report_429(
        self, bucket: str, pause_s: float, sent: float | None, signal: int, reason: str
    ) -> RateVerdict:
        kind, pause_left_us, factor = self._run(
            "rate_429",
            "reporting a 429 to the rate limiter",
            self._rate_keys(bucket, "burst"),
            [
                int(pause_s * 1e6),
                self._burst_us,
                -1 if sent is None else int(sent),
                signal,
                self._burst_429s,
                max(1, int(self._burst_span_s * 1000)),
                self._decrease,
                self._floor,
                reason,
                self._who,
                RATE_EVENTS_KEPT,
                RATE_STATE_TTL_S,
            ],
        )
        return RateVerdict(str(kind), pause_left_us / 1e6, float(factor))

    def _rate_factor(self, bucket: str) -> float:
        (adapt_key,) = self._bucket_keys("rate", bucket, "adapt")
        with self._errors("reading the shared rate"):
            factor = self._r.hget(adapt_key, "factor")
        return float(factor) if factor else 1.0

    def _rate_events(self, bucket: str) -> list[RateEvent]:
        (events_key,) = self._bucket_keys("rate", bucket, "events")
        with self._errors("reading rate events"):
            raw = self._r.lrange(events_key, 0, RATE_EVENTS_KEPT - 1)
        events = []
        for item in reversed(raw):
            data: dict[str, Any] = json.loads(item)
            events.append(
                RateEvent(
                    at=float(data["at"]),
                    bucket=bucket,
                    change=str(data["change"]),
                    from_factor=float(data["from"]),
                    to_factor=float(data["to"]),
                    paused_s=float(data.get("paused_s", 0)),
                    reason=str(data.get("reason", "")),
                    by=str(data.get("by", "")),
                )
            )
        return events

    def _paused_past(self, bucket: str, slot: float) -> bool:
        (pause_key,) = self._bucket_keys("rate", bucket, "pause")
        with self._errors("rate limiting"):
            resume = self._r.get(pause_key)
        return resume is not None and int(resume) > slot

    def _pause(self, bucket: str, seconds: float) -> bool:
        keys = self._bucket_keys("rate", bucket, "tat", "pause")
        return bool(
            self._run("pause", "pausing the rate limiter", keys, [int(seconds * 1e6), self._burst_us])
        )

    def _store_limit(self, bucket: str, per_minute: float) -> float | None:
        """Kept for an hour (`LEARNED_LIMIT_TTL_S`), refreshed on each sighting."""
        (limit_key,) = self._bucket_keys("rate", bucket, "limit")
        with self._errors("recording the learned limit"):
            previous = self._r.get(limit_key)  # only to log changes: no need to be atomic with the SET
            self._r.set(limit_key, repr(per_minute), ex=LEARNED_LIMIT_TTL_S)
        return None if previous is None else float(previous)

    def _learned_limit(self, bucket: str) -> float | None:
        (limit_key,) = self._bucket_keys("rate", bucket, "limit")
        with self._errors("reading the learned limit"):
            learned = self._r.get(limit_key)
        return float(learned) if learned else None

    # --- circuit breaker (breaker_*.lua) ----------------------------------------------------------------

    def _breaker_keys(self, bucket: str) -> list[str]:
        return self._bucket_keys("breaker", bucket, "state", "probe", "events")

    def _breaker_allow(self, bucket: str, token: str) -> ProbeVerdict:
        verdict, retry_in_ms, reason, changed = self._run(
            "breaker_allow",
            "checking the circuit breaker",
            self._breaker_keys(bucket),
            [token, self._probe_ttl_ms, self._who, BREAKER_EVENTS_KEPT, BREAKER_KEY_TTL_S],
        )
        return ProbeVerdict(verdict, retry_in_ms / 1000, reason, bool(changed))

    def _breaker_success(self, bucket: str, token: str) -> bool:
        _, changed = self._run(
            "breaker_success",
            "reporting to the circuit breaker",
            self._breaker_keys(bucket),
            [token, self._who, BREAKER_EVENTS_KEPT, BREAKER_KEY_TTL_S],
        )
        return bool(changed)

    def _breaker_failure(self, bucket: str, token: str, *, fatal: bool, reason: str) -> tuple[bool, str]:
        _, changed, why = self._run(
            "breaker_failure",
            "reporting to the circuit breaker",
            self._breaker_keys(bucket),
            [
                token,
                1 if fatal else 0,
                reason,
                self._threshold,
                self._cooldown_ms,
                self._who,
                BREAKER_EVENTS_KEPT,
                BREAKER_KEY_TTL_S,
            ],
        )
        return bool(changed), why

    def breaker_state(self, bucket: str) -> BreakerState:
        state, failures, reason, opened_at, open_until, now = self._run(
            "breaker_state", "reading the circuit breaker", self._breaker_keys(bucket)[:1]
        )
        return BreakerState(
            state=state,
            consecutive_failures=int(failures),
            reason=reason or None,
            opened_at=opened_at / 1000 if opened_at else None,
            retry_in_s=max(0.0, (open_until - now) / 1000) if state != "closed" else None,
        )

    def _breaker_events(self, bucket: str) -> list[BreakerEvent]:
        with self._errors("reading breaker events"):
            raw = self._r.lrange(self._breaker_keys(bucket)[2], 0, BREAKER_EVENTS_KEPT - 1)
        events = []
        for item in reversed(raw):
            data: dict[str, Any] = json.loads(item)
            events.append(
                BreakerEvent(
                    at=float(data["at"]),
                    bucket=bucket,
                    from_state=str(data["from"]),
                    to_state=str(data["to"]),
                    reason=str(data.get("reason", "")),
                    consecutive_failures=int(data.get("failures", 0)),
                    by=str(data.get("by", "")),
                )
            )
        return events

    # --- API key verdicts and the first-call gate: <prefix>:key:{bucket}:verdict / :probe ------------------

    #: the first call's probe key outlives a dead prober by at most this; its heartbeat renews it meanwhile
    KEY_PROBE_TTL_S = 15.0

    def key_verdict(self, bucket: str) -> KeyVerdict | None:
        (verdict_key,) = self._bucket_keys("key", bucket, "verdict")
        with self._errors("reading the key verdict"):
            raw = self._r.get(verdict_key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return KeyVerdict(bool(data["ok"]), str(data["reason"]), float(data["at"]), str(data["by"]))
        except (ValueError, KeyError, TypeError):
            return None

    def set_key_verdict(self, bucket: str, ok: bool, reason: str = "") -> None:
        (verdict_key,) = self._bucket_keys("key", bucket, "verdict")
        payload = {"ok": ok, "reason": reason[:MAX_REASON_CHARS], "at": time.time(), "by": self._who}
        with self._errors("recording the key verdict"):
            self._r.set(verdict_key, json.dumps(payload), ex=int(KEY_VERDICT_TTL_S))
        if not ok:
            log.error("the API rejected the key of %s: %s", bucket, payload["reason"])

    def _try_key_probe(self, bucket: str) -> Callable[[], None] | None:
        (probe_key,) = self._bucket_keys("key", bucket, "probe")
        ttl_s = self.KEY_PROBE_TTL_S
        lock = Lock(self._r, probe_key, timeout=ttl_s, thread_local=False)
        attempted_at = time.monotonic()
        with self._errors("taking the first-call probe"):
            if not lock.acquire(blocking=False, token=f"{self._who}{TOKEN_SEP}{uuid.uuid4().hex}"):
                return None
        handle = RedisLockHandle(
            lock,
            name=f"first call of {bucket}",
            owner=self._who,
            ttl_s=ttl_s,
            heartbeat_s=ttl_s / 3,
            acquired_at=attempted_at,
        )
        return handle.release


class RedisCoordinationResource(CoordinationResource):
    """Coordination through Redis, shared by every run on every machine. Wire `redis_url` with
    `EnvVar("REDIS_URL")`; call `get_client().check()` at run start so a dead Redis fails the run."""

    redis_url: str = Field(
        description="Redis URL, e.g. redis://:password@host:6379/0 (set from the REDIS_URL env var)",
        repr=False,
    )
    key_prefix: str = Field(
        default="catalog-images", description="Prefix of every key, so several deployments can share a Redis"
    )
    lock_ttl_s: float = Field(
        default=30.0,
        description="Partition lock TTL: a killed run's lock expires this long after its last heartbeat",
    )
    heartbeat_s: float | None = Field(
        default=None, description="How often held locks are renewed; default a third of each lock's TTL"
    )
    product_claim_ttl_s: float = Field(
        default=60.0,
        description="Product claim TTL (renewed by the heartbeat while the product is worked on)",
    )
    rate_burst_s: float = Field(
        default=0.0,
        description="GCRA burst tolerance (tau): after idling, 1 + rate_burst_s x rate requests may go out at "
        "once. 0 keeps every window of the shared budget at or under the limit, across all processes.",
    )
    socket_timeout: float = Field(default=5.0, description="Seconds to wait for a Redis reply")
    socket_connect_timeout: float = Field(default=5.0, description="Seconds to wait for a Redis connection")
    max_retries: int = Field(
        default=8, description="Reconnect attempts per command (jittered backoff up to 1s) before giving up"
    )

    def get_client(self) -> RedisCoordinator:
        return RedisCoordinator(
            self.redis_url,
            key_prefix=self.key_prefix,
            lock_ttl_s=self.lock_ttl_s,
            heartbeat_s=self.heartbeat_s,
            product_claim_ttl_s=self.product_claim_ttl_s,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_connect_timeout,
            max_retries=self.max_retries,
            rate_burst_s=self.rate_burst_s,
            **self.shared_settings(),
        )
