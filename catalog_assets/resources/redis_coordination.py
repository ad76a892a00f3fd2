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
  pause or a learned limit. GCRA keeps one number per bucket (the theoretical arrival time, TAT) and the
  script books the caller's slot atomically on the server's clock, so N processes never race, never need
  synchronised clocks, and each caller sleeps exactly until its own slot (no retry herd, so no jitter is
  needed: slots are serialised by Redis). A pause is a key holding the resume time; a caller whose booked
  slot falls inside a pause announced after the booking books again behind it. `learn_limit` stores the
  limit an API response announced (an hour's TTL, refreshed on each sighting); the script applies
  min(configured, learned). Scripts read the server clock (TIME), which needs Redis >= 5.
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
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from pydantic import Field
from redis.backoff import EqualJitterBackoff
from redis.exceptions import LockError
from redis.lock import Lock
from redis.retry import Retry

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
    redact_url,
)

log = logging.getLogger(LOGGER_NAME)

#: separates the owner's run id from the random part of a lock token
TOKEN_SEP = "|"
#: learned limits expire so that a raised account tier is picked up without anyone clearing a key
LEARNED_LIMIT_TTL_S = 3600
#: breaker state and events outlive any cool-down by far, but not forever
BREAKER_KEY_TTL_S = 7 * 24 * 3600
#: while another caller's probe is out, waiters look again this often: its verdict is imminent
PROBE_POLL_S = 1.0
#: reasons end up in logs and run metadata: keep them short
MAX_REASON_CHARS = 300

_NOW = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS: tat, pause, learned limit. ARGV: per_minute, headroom, burst_us (GCRA tau), max_wait_us.
# Returns {granted (0/1), wait_us, slot_us}: books the slot only when the wait fits in max_wait_us.
_GCRA = (
    _NOW
    + """
local limit = tonumber(ARGV[1])
local learned = tonumber(redis.call('GET', KEYS[3]) or '')
if learned and learned > 0 and learned < limit then limit = learned end
local interval = 60000000 / (limit * tonumber(ARGV[2]))
local tau = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now_us
if tat < now_us then tat = now_us end
local resume = tonumber(redis.call('GET', KEYS[2]) or '') or 0
local slot = math.max(tat - tau, now_us, resume)
local wait = slot - now_us
if wait > tonumber(ARGV[4]) then return {0, math.floor(wait), math.floor(slot)} end
local new_tat = math.max(tat, slot) + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now_us) / 1000) + 1000)
return {1, math.floor(wait), math.floor(slot)}
"""
)

# KEYS: tat, pause. ARGV: pause_us, burst_us. Never shortens a longer pause; pushes the TAT past the pause
# plus the burst allowance so the first requests after it are paced, not a burst into a recovering API.
_PAUSE = (
    _NOW
    + """
local resume = now_us + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[2]) or '') or 0
if resume > current then
  redis.call('SET', KEYS[2], string.format('%.0f', resume), 'PX', math.ceil(tonumber(ARGV[1]) / 1000))
else
  resume = current
end
local pushed = resume + tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or 0
if tat < pushed then
  redis.call('SET', KEYS[1], string.format('%.0f', pushed), 'PX', math.ceil((pushed - now_us) / 1000) + 1000)
end
return math.floor(resume - now_us)
"""
)

# Shared by the breaker scripts. KEYS: state hash, probe, events. Times in ms of the server's clock.
_BREAKER_PRELUDE = (
    _NOW
    + """
local now = math.floor(now_us / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local function event(from, to, reason, who, keep, ttl)
  redis.call('LPUSH', KEYS[3], cjson.encode({at = now / 1000, from = from, to = to, reason = reason,
    failures = failures, by = who}))
  redis.call('LTRIM', KEYS[3], 0, tonumber(keep) - 1)
  redis.call('EXPIRE', KEYS[3], ttl)
end
"""
)

# ARGV: token, probe_ttl_ms, who, keep, ttl. Returns {verdict, retry_in_ms, reason, changed}:
# verdict "closed" (go), "probe" (go, you decide), "open" or "half_open" (do not call).
_BREAKER_ALLOW = (
    _BREAKER_PRELUDE
    + """
if state == 'closed' then return {'closed', 0, '', 0} end
local reason = redis.call('HGET', KEYS[1], 'reason') or ''
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if now < open_until then return {'open', open_until - now, reason, 0} end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  -- Still the probe (its last call neither succeeded nor failed, e.g. a 400): it may call again.
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return {'probe', 0, reason, 0}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if state ~= 'half_open' then
    redis.call('HSET', KEYS[1], 'state', 'half_open')
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    event(state, 'half_open', 'cool-down over; one probe call decides', ARGV[3], ARGV[4], ARGV[5])
    return {'probe', 0, reason, 1}
  end
  return {'probe', 0, reason, 0}
end
return {'half_open', redis.call('PTTL', KEYS[2]), reason, 0}
"""
)

# ARGV: token, who, keep, ttl. Returns {state, changed}.
_BREAKER_SUCCESS = (
    _BREAKER_PRELUDE
    + """
if state == 'closed' then
  if failures > 0 then redis.call('HSET', KEYS[1], 'failures', 0) end
  return {'closed', 0}
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  failures = 0
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'reason', '')
  redis.call('HDEL', KEYS[1], 'open_until', 'opened_at')
  event(state, 'closed', 'probe call succeeded', ARGV[2], ARGV[3], ARGV[4])
  return {'closed', 1}
end
-- A success of a call sent before the breaker opened: the probe decides, not stragglers.
return {state, 0}
"""
)

# ARGV: token, fatal (0/1), reason, threshold, cooldown_ms, who, keep, ttl. Returns {state, changed, reason}.
_BREAKER_FAILURE = (
    _BREAKER_PRELUDE
    + """
local reason = ARGV[3]
local function open(why)
  local open_until = now + tonumber(ARGV[5])
  local previous = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  if previous > open_until then open_until = previous end
  redis.call('HSET', KEYS[1], 'state', 'open', 'failures', failures, 'reason', why, 'opened_at', now,
    'open_until', open_until)
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  redis.call('DEL', KEYS[2])
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  failures = failures + 1
  local why = 'probe call failed: ' .. reason
  open(why)
  event(state, 'open', why, ARGV[6], ARGV[7], ARGV[8])
  return {'open', 1, why}
end
if ARGV[2] == '1' then
  failures = failures + 1
  local why = 'fatal: ' .. reason
  open(why)
  if state ~= 'open' then
    event(state, 'open', why, ARGV[6], ARGV[7], ARGV[8])
    return {'open', 1, why}
  end
  return {'open', 0, why}
end
if state == 'closed' then
  failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  if failures >= tonumber(ARGV[4]) then
    local why = failures .. ' consecutive transient failures; last: ' .. reason
    open(why)
    event('closed', 'open', why, ARGV[6], ARGV[7], ARGV[8])
    return {'open', 1, why}
  end
  return {'closed', 0, ''}
end
-- Open or half-open: a failure of a call sent before the breaker opened changes nothing.
return {state, 0, ''}
"""
)

# KEYS: state hash. Returns {state, failures, reason, opened_at_ms, open_until_ms, now_ms}.
_BREAKER_STATE = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'reason', 'opened_at', 'open_until')
return {h[1] or 'closed', tonumber(h[2] or '0'), h[3] or '', tonumber(h[4] or '0'), tonumber(h[5] or '0'),
  math.floor(now_us / 1000)}
"""
)


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
        partition_lock_wait_s: float = 60.0,
        product_claim_ttl_s: float = 60.0,
        lock_poll_s: float = 0.5,
        rate_headroom: float = 0.98,
        rate_burst_s: float = 0.0,
        breaker_failure_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        breaker_probe_timeout_s: float = 180.0,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 5.0,
        max_retries: int = 8,
    ) -> None:
        if not 0 < rate_headroom <= 1:
            raise ValueError("rate_headroom must be in (0, 1]")
        if heartbeat_s is not None and heartbeat_s >= lock_ttl_s:
            raise ValueError("heartbeat_s must be shorter than lock_ttl_s")
        if breaker_failure_threshold < 1:
            raise ValueError("breaker_failure_threshold must be at least 1")
        self._url = redis_url
        self._safe_url = redact_url(redis_url)
        self._secrets = _secrets_of(redis_url)
        self._prefix = key_prefix
        self._lock_ttl_s = lock_ttl_s
        self._heartbeat_s = heartbeat_s
        self._partition_lock_wait_s = partition_lock_wait_s
        self._claim_ttl_s = product_claim_ttl_s
        self._lock_poll_s = lock_poll_s
        self._headroom = rate_headroom
        self._burst_us = int(rate_burst_s * 1e6)
        self._threshold = breaker_failure_threshold
        self._cooldown_ms = int(breaker_cooldown_s * 1000)
        self._probe_ttl_ms = int(breaker_probe_timeout_s * 1000)
        self._socket_timeout = socket_timeout
        self._socket_connect_timeout = socket_connect_timeout
        self._who = process_label()
        self._probes = threading.local()  # bucket -> probe token of this thread
        self._r = self._client(max_retries)
        self._gcra = self._r.register_script(_GCRA)
        self._pause = self._r.register_script(_PAUSE)
        self._allow = self._r.register_script(_BREAKER_ALLOW)
        self._success = self._r.register_script(_BREAKER_SUCCESS)
        self._failure = self._r.register_script(_BREAKER_FAILURE)
        self._state = self._r.register_script(_BREAKER_STATE)

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

    def _bucket_keys(self, kind: str, bucket: str, *names: str) -> list[str]:
        # The {bucket} hash tag keeps a bucket's keys in one slot, so the scripts also run on Redis Cluster.
        tag = "{" + bucket.replace("{", "_").replace("}", "_") + "}"
        return [self._key(kind, tag, name) for name in names]

    def close(self) -> None:
        self._r.close()

    # --- check ------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Ping Redis and load the scripts; fail with one line naming REDIS_URL (password redacted)."""
        # Few retries here: at run start a dead Redis should fail the run in about a second, not ride it out.
        client = self._client(max_retries=1)
        try:
            client.ping()
            for script in (self._gcra, self._pause, self._allow, self._success, self._failure, self._state):
                client.script_load(script.script)
        except redis.RedisError as exc:
            raise CoordinationUnavailable(
                f"cannot use Redis at REDIS_URL={self._safe_url} "
                f"({self._scrub(str(exc) or type(exc).__name__)}): start Redis, fix REDIS_URL, "
                "or unset it to coordinate through local file locks"
            ) from None
        finally:
            client.close()

    # --- locks ------------------------------------------------------------------------------------------

    def _holder(self, key: str) -> str | None:
        try:
            value = self._r.get(key)
        except redis.RedisError:
            return None
        return None if value is None else value.rsplit(TOKEN_SEP, 1)[0]

    def _take(
        self, key: str, label: str, owner: str, *, ttl_s: float, wait_s: float
    ) -> RedisLockHandle | None:
        """Try to take `key` for `owner`, polling up to `wait_s`; None when still held by someone else."""
        lock = Lock(self._r, key, timeout=ttl_s, thread_local=False)
        token = f"{owner}{TOKEN_SEP}{uuid.uuid4().hex}"
        heartbeat_s = self._heartbeat_s if self._heartbeat_s is not None else ttl_s / 3
        heartbeat_s = min(heartbeat_s, ttl_s / 2)
        started = time.monotonic()
        announced = False
        with self._errors(f"acquiring {label}"):
            while True:
                attempted_at = time.monotonic()
                if lock.acquire(blocking=False, token=token):
                    return RedisLockHandle(
                        lock,
                        name=label,
                        owner=owner,
                        ttl_s=ttl_s,
                        heartbeat_s=heartbeat_s,
                        acquired_at=attempted_at,
                    )
                remaining = wait_s - (time.monotonic() - started)
                if remaining <= 0:
                    return None
                if not announced:
                    log.info("%s is held by run %s; waiting up to %.0fs", label, self._holder(key), wait_s)
                    announced = True
                time.sleep(min(self._lock_poll_s, remaining))

    @contextmanager
    def partition_lock(
        self, name: str, owner: str, *, wait_s: float | None = None
    ) -> Iterator[RedisLockHandle]:
        """Hold partition `name` for run `owner`; wait up to `wait_s` (default: the configured wait)."""
        wait = self._partition_lock_wait_s if wait_s is None else wait_s
        key = self._key("lock", "partition", name)
        started = time.monotonic()
        handle = self._take(key, f"partition {name}", owner, ttl_s=self._lock_ttl_s, wait_s=wait)
        if handle is None:
            raise LockTimeout(f"partition {name}", self._holder(key), time.monotonic() - started)
        try:
            yield handle
        finally:
            handle.release()

    @contextmanager
    def claim_product(self, product_id: str, owner: str) -> Iterator[RedisLockHandle | None]:
        """Claim `product_id` without waiting; None while any other claim (even of the same run) is live."""
        key = self._key("lock", "product", product_id)
        handle = self._take(key, f"product {product_id}", owner, ttl_s=self._claim_ttl_s, wait_s=0)
        if handle is None:
            yield None
            return
        try:
            yield handle
        finally:
            handle.release()

    def lock_holder(self, name: str) -> str | None:
        """Run id holding partition `name`, if any (for messages and tests)."""
        return self._holder(self._key("lock", "partition", name))

    # --- rate limiter -----------------------------------------------------------------------------------

    def acquire(self, bucket: str, per_minute: float, timeout_s: float = 300.0) -> float:
        """Book the next slot of the shared budget and sleep until it; TimeoutError if it lies past timeout.

        The effective limit is min(per_minute, learned limit) × rate_headroom. Fails at once (without
        booking) when the slot is further away than the time left, rather than sleeping to find out.
        """
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        tat_key, pause_key, limit_key = self._bucket_keys("rate", bucket, "tat", "pause", "limit")
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            max_wait_us = int(max(0.0, deadline - time.monotonic()) * 1e6)
            with self._errors("rate limiting"):
                granted, wait_us, slot_us = self._gcra(
                    keys=[tat_key, pause_key, limit_key],
                    args=[float(per_minute), self._headroom, self._burst_us, max_wait_us],
                )
            if not granted:
                raise TimeoutError(
                    f"rate limiter {bucket}: next slot in {wait_us / 1e6:.1f}s is past the {timeout_s:.0f}s timeout"
                )
            if wait_us <= 0:
                break
            time.sleep(wait_us / 1e6)
            with self._errors("rate limiting"):
                resume = self._r.get(pause_key)
            if resume is None or int(resume) <= slot_us:
                break
            # A pause was announced after we booked: our slot lies inside it, so book again behind it.
        return time.monotonic() - started

    def pause(self, bucket: str, seconds: float) -> None:
        """Hold every worker of `bucket` for `seconds` (never shortens a longer pause already set)."""
        if seconds <= 0:
            return
        tat_key, pause_key = self._bucket_keys("rate", bucket, "tat", "pause")
        with self._errors("pausing the rate limiter"):
            self._pause(keys=[tat_key, pause_key], args=[int(seconds * 1e6), self._burst_us])
        log.info("rate limiter %s paused for %.1fs for every worker", bucket, seconds)

    def learn_limit(self, bucket: str, per_minute: float) -> None:
        """Record the limit the API announced (e.g. `limit_from_headers`); kept for an hour, refreshed on use."""
        if per_minute <= 0:
            return
        (limit_key,) = self._bucket_keys("rate", bucket, "limit")
        with self._errors("recording the learned limit"):
            previous = self._r.get(limit_key)  # only to log changes: no need to be atomic with the SET
            self._r.set(limit_key, repr(float(per_minute)), ex=LEARNED_LIMIT_TTL_S)
        if previous is None or float(previous) != float(per_minute):
            log.info("rate limiter %s: the API announces %g requests/min", bucket, per_minute)

    def effective_limit(self, bucket: str, per_minute: float) -> float:
        """The per-minute budget `acquire` applies: min(configured, learned) before headroom."""
        (limit_key,) = self._bucket_keys("rate", bucket, "limit")
        with self._errors("reading the learned limit"):
            learned = self._r.get(limit_key)
        return min(per_minute, float(learned)) if learned else per_minute

    # --- circuit breaker --------------------------------------------------------------------------------

    def _breaker_keys(self, bucket: str) -> list[str]:
        return self._bucket_keys("breaker", bucket, "state", "probe", "events")

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
        with self._errors("checking the circuit breaker"):
            verdict, retry_in_ms, reason, changed = self._allow(
                keys=self._breaker_keys(bucket),
                args=[token, self._probe_ttl_ms, self._who, BREAKER_EVENTS_KEPT, BREAKER_KEY_TTL_S],
            )
        if verdict == "closed":
            return
        if verdict == "probe":
            tokens[bucket] = token
            if changed:
                log.warning("circuit breaker %s half-open: this worker sends the one probe call", bucket)
            return
        if verdict == "half_open":
            retry_in_ms = min(retry_in_ms, PROBE_POLL_S * 1000)
        raise BreakerOpen(reason or verdict, max(0, retry_in_ms) / 1000)

    def breaker_success(self, bucket: str) -> None:
        token = self._probe_tokens().pop(bucket, "")
        with self._errors("reporting to the circuit breaker"):
            _, changed = self._success(
                keys=self._breaker_keys(bucket),
                args=[token, self._who, BREAKER_EVENTS_KEPT, BREAKER_KEY_TTL_S],
            )
        if changed:
            log.warning("circuit breaker %s closed: the probe call succeeded", bucket)

    def breaker_failure(self, bucket: str, *, fatal: bool = False, reason: str = "") -> None:
        """Count a transient failure (K in a row anywhere open it); `fatal` opens it at once. `reason` is
        logged and kept in events: pass a classified message, never anything holding a secret."""
        token = self._probe_tokens().pop(bucket, "")
        reason = (reason or ("fatal error" if fatal else "transient error"))[:MAX_REASON_CHARS]
        with self._errors("reporting to the circuit breaker"):
            _, changed, why = self._failure(
                keys=self._breaker_keys(bucket),
                args=[
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
        if changed:
            log.warning(
                "circuit breaker %s opened for %.1fs: %s", bucket, self._cooldown_ms / 1000, why or reason
            )

    def breaker_state(self, bucket: str) -> BreakerState:
        with self._errors("reading the circuit breaker"):
            state, failures, reason, opened_at, open_until, now = self._state(
                keys=self._breaker_keys(bucket)[:1]
            )
        return BreakerState(
            state=state,
            consecutive_failures=int(failures),
            reason=reason or None,
            opened_at=opened_at / 1000 if opened_at else None,
            retry_in_s=max(0.0, (open_until - now) / 1000) if state != "closed" else None,
        )

    def breaker_events(self, bucket: str, *, since: float | None = None) -> list[BreakerEvent]:
        """Recent transitions of `bucket`, oldest first; `since` (epoch s) keeps only later ones."""
        with self._errors("reading breaker events"):
            raw = self._r.lrange(self._breaker_keys(bucket)[2], 0, BREAKER_EVENTS_KEPT - 1)
        events = []
        for item in reversed(raw):
            data: dict[str, Any] = json.loads(item)
            event = BreakerEvent(
                at=float(data["at"]),
                bucket=bucket,
                from_state=str(data["from"]),
                to_state=str(data["to"]),
                reason=str(data.get("reason", "")),
                consecutive_failures=int(data.get("failures", 0)),
                by=str(data.get("by", "")),
            )
            if since is None or event.at >= since:
                events.append(event)
        return events


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
            rate_burst_s=self.rate_burst_s,
            **self.shared_settings(),
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_connect_timeout,
            max_retries=self.max_retries,
        )
