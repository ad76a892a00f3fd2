"""What the coordination tests run in other processes (or threads): importable, picklable functions that
each build their own coordinator from a plain spec, as a separate Dagster run would."""

from __future__ import annotations

import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import redis

from catalog_assets.resources.coordination import BreakerOpen, Coordinator
from catalog_assets.resources.local_coordination import LocalCoordinator
from catalog_assets.resources.redis_coordination import RedisCoordinator


def make(spec: dict[str, Any]) -> Coordinator:
    """A coordinator from {"backend": "redis", "url": ..., **kwargs} or {"backend": "local", "lock_dir": ...}."""
    options = dict(spec)
    backend = options.pop("backend")
    if backend == "redis":
        return RedisCoordinator(options.pop("url"), **options)
    return LocalCoordinator(options.pop("lock_dir"), **options)


def call(queue: Any, index: int, fn: Any, args: tuple[Any, ...]) -> None:
    """Run `fn(*args)` and report (index, ok, result-or-error) on `queue`."""
    try:
        queue.put((index, True, fn(*args)))
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which asserts on it
        queue.put((index, False, f"{type(exc).__name__}: {exc}"))


def sleep_until(epoch: float) -> None:
    time.sleep(max(0.0, epoch - time.time()))


def count_under_lock(spec: dict[str, Any], name: str, owner: str, iterations: int, counter: str) -> int:
    """Read-sleep-write a counter file under the partition lock: lost updates would betray a second holder."""
    coordinator = make(spec)
    path = Path(counter)
    for _ in range(iterations):
        with coordinator.partition_lock(name, owner) as handle:
            value = int(path.read_text() or "0")
            time.sleep(0.005)
            handle.ensure_held()
            path.write_text(str(value + 1))
    return iterations


def hold_partition(spec: dict[str, Any], name: str, owner: str, hold_s: float, ready: Event) -> None:
    with make(spec).partition_lock(name, owner):
        ready.set()
        time.sleep(hold_s)


def hold_then_check(spec: dict[str, Any], name: str, owner: str, ready: Event, go: Event) -> bool:
    """Hold a lock, wait (the test pauses us meanwhile), then say whether we believe we still hold it."""
    with make(spec).partition_lock(name, owner) as handle:
        ready.set()
        go.wait(30)
        return handle.is_held()


def take_partition(spec: dict[str, Any], name: str, owner: str, wait_s: float) -> float:
    """Take the partition lock; return seconds waited (LockTimeout is reported as an error)."""
    started = time.monotonic()
    with make(spec).partition_lock(name, owner, wait_s=wait_s):
        return time.monotonic() - started


def claim(spec: dict[str, Any], product_id: str, owner: str) -> bool:
    with make(spec).claim_product(product_id, owner) as handle:
        return handle is not None


def grant_times(
    spec: dict[str, Any],
    bucket: str,
    per_minute: float,
    start_at: float,
    end_at: float,
    *,
    booked: bool = False,
) -> list[float]:
    """Acquire in a loop between two wall-clock instants; return when each request was let through, or with
    `booked` the slot each was booked for: what the limiter decided, not when a process the machine kept
    waiting got round to noting it."""
    coordinator = make(spec)
    sleep_until(start_at)
    granted: list[float] = []
    while (left := end_at - time.time()) > 0:
        try:
            coordinator.acquire(bucket, per_minute, timeout_s=left)
        except TimeoutError:
            break
        granted.append(coordinator.booked_slot(bucket) if booked else time.time())
    return granted


def booked_slots(
    spec: dict[str, Any], bucket: str, per_minute: float, start_at: float, end_at: float
) -> list[float]:
    """`grant_times` with `booked`: a picklable target for worker processes."""
    return grant_times(spec, bucket, per_minute, start_at, end_at, booked=True)


def report_failure(spec: dict[str, Any], bucket: str, reason: str, fatal: bool = False) -> None:
    make(spec).breaker_failure(bucket, fatal=fatal, reason=reason)


def allowed(spec: dict[str, Any], bucket: str, start_at: float) -> bool:
    coordinator = make(spec)
    sleep_until(start_at)
    try:
        coordinator.breaker_allow(bucket)
    except BreakerOpen:
        return False
    return True


def probe_race(spec: dict[str, Any], bucket: str, start_at: float, outcome: str) -> dict[str, Any]:
    """Ask to call at `start_at`; if let through, 'call' for 0.5 s and report `outcome`.

    Returns whether we were let through, when our answer was known (`decided_at`, taken after the answer)
    and, for the caller let through, when it began reporting (`reported_at`, taken before the report):
    any answer known before someone's report was given while that probe was out.
    """
    coordinator = make(spec)
    sleep_until(start_at)
    try:
        coordinator.breaker_allow(bucket)
    except BreakerOpen:
        return {"allowed": False, "decided_at": time.time(), "reported_at": None}
    decided_at = time.time()
    time.sleep(0.5)
    reported_at = time.time()
    if outcome == "success":
        coordinator.breaker_success(bucket)
    else:
        coordinator.breaker_failure(bucket, reason="probe got a 500")
    return {"allowed": True, "decided_at": decided_at, "reported_at": reported_at}


def hammer_claims(
    spec: dict[str, Any],
    products: list[str],
    owner: str,
    rounds: int,
    counter: dict[str, str],
    start_at: float,
) -> dict[str, int]:
    """Claim and release `products` in turn as fast as possible; count the claims taken, refused, and taken
    while a shared Redis counter says another process held the same product (an overlap: never allowed)."""
    coordinator = make(spec)
    client = redis.Redis.from_url(counter["url"])
    seen = {"taken": 0, "refused": 0, "overlaps": 0}
    sleep_until(start_at)
    for turn in range(rounds):
        product = products[turn % len(products)]
        with coordinator.claim_product(product, owner) as handle:
            if handle is None:
                seen["refused"] += 1
                continue
            key = f"{counter['prefix']}:holders:{product}"
            if client.incr(key) > 1:
                seen["overlaps"] += 1
            time.sleep(0.0002)  # hold it a moment, as generation would, so a second holder would be seen
            client.decr(key)
            seen["taken"] += 1
    return seen
