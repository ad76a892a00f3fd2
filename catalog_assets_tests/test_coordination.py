"""Coordination behaviour against the real Redis server on 127.0.0.1:6379 (no fakes) and the local file-lock
default: locks across processes, the shared GCRA budget and pause, the shared breaker, and Redis failures.

Every test keys Redis under its own uuid prefix and deletes its keys afterwards; restart tests run their own
throwaway redis-server on a free port and never touch the shared one.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import redis
from dagster import EnvVar, build_resources

from catalog_assets.resources.coordination import (
    BREAKER_EVENTS_KEPT,
    BreakerOpen,
    CoordinationUnavailable,
    CoordinatorSettings,
    LockLost,
    LockTimeout,
    limit_from_headers,
    redact_url,
)
from catalog_assets.resources.local_coordination import (
    LocalCoordinationResource,
    LocalCoordinator,
    lock_file_name,
)
from catalog_assets.resources.redis_coordination import (
    SCRIPTS,
    RedisCoordinationResource,
    RedisCoordinator,
    lua_source,
)
from catalog_assets_tests import coordination_workers as wk
from catalog_assets_tests.resilience_support import OwnRedis
from catalog_assets_tests.support import delete_prefix

REDIS_URL = "redis://127.0.0.1:6379/0"
BUCKET = "OpenAIImageGenerator:gpt-image-2:3f9a0c"  # as the generator names it: a hash, never the key

Spec = dict[str, Any]


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mp() -> multiprocessing.context.BaseContext:
    """Forkserver children: a clean process each (no inherited threads or sockets), started in milliseconds
    because the server preloads the workers module (and dagster) once."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["catalog_assets_tests.coordination_workers"])
    warm = ctx.Process(target=time.sleep, args=(0,))
    warm.start()
    warm.join(60)
    return ctx


@pytest.fixture
def prefix(shared_redis: redis.Redis) -> Iterator[str]:
    name = f"test-coordination-{uuid.uuid4().hex[:12]}"
    yield name
    delete_prefix(shared_redis, name)


@pytest.fixture(params=["redis", "local"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def spec_builder(backend: str, prefix: str, tmp_path: Path) -> Callable[..., Spec]:
    """Builds the plain spec a worker turns into a coordinator; options a backend lacks are dropped."""

    def build(**overrides: Any) -> Spec:
        options: Spec = {
            "key_prefix": prefix,
            "lock_ttl_s": 2.0,
            "product_claim_ttl_s": 2.0,
            "lock_poll_s": 0.05,
            "partition_lock_wait_s": 10.0,
            "breaker_cooldown_s": 1.0,
            **overrides,
        }
        cls = RedisCoordinator if backend == "redis" else LocalCoordinator
        accepted = {*inspect.signature(cls).parameters, *CoordinatorSettings.__annotations__}
        options = {k: v for k, v in options.items() if k in accepted}
        if backend == "redis":
            return {"backend": "redis", "url": REDIS_URL, **options}
        return {"backend": "local", "lock_dir": str(tmp_path / "locks"), **options}

    return build


@pytest.fixture
def spec_for(backend: str, prefix: str, tmp_path: Path) -> Callable[..., Spec]:
    return spec_builder(backend, prefix, tmp_path)


@pytest.fixture
def redis_spec_for(prefix: str, tmp_path: Path) -> Callable[..., Spec]:
    """For what only the Redis backend has: TTL locks, heartbeats, key layout."""
    return spec_builder("redis", prefix, tmp_path)


def run_parallel(
    mp: multiprocessing.context.BaseContext,
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]],
    *,
    threads: bool = False,
    timeout: float = 60,
) -> list[Any]:
    """Run each (fn, args) in its own process (or thread); return results in order, failing on any error."""
    results: queue.Queue[Any] | Any = queue.Queue() if threads else mp.Queue()
    workers: list[Any] = []
    for index, (fn, args) in enumerate(calls):
        if threads:
            workers.append(threading.Thread(target=wk.call, args=(results, index, fn, args), daemon=True))
        else:
            workers.append(mp.Process(target=wk.call, args=(results, index, fn, args)))
    for worker in workers:
        worker.start()
    collected: dict[int, Any] = {}
    errors: list[str] = []
    for _ in calls:
        index, ok, value = results.get(timeout=timeout)
        collected[index] = value
        if not ok:
            errors.append(f"worker {index}: {value}")
    for worker in workers:
        worker.join(timeout)
    assert not errors, errors
    return [collected[i] for i in range(len(calls))]


def force_expiry(spec: Spec, name: str) -> None:
    """What a lock looks like to its holder after the TTL passed: the key (or the lock file) is gone."""
    if spec["backend"] == "redis":
        redis.Redis.from_url(REDIS_URL).delete(f"{spec['key_prefix']}:lock:partition:{name}")
    else:
        os.unlink(Path(spec["lock_dir"]) / "partitions" / lock_file_name(name))


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- check() and configuration --------------------------------------------------------------------------


def test_check_passes_on_a_working_backend(backend: str, spec_for: Callable[..., Spec]) -> None:
    wk.make(spec_for()).check()


def test_check_names_redis_url_without_the_password() -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(CoordinationUnavailable) as raised:
        RedisCoordinator(url).check()
    message = str(raised.value)
    assert "REDIS_URL" in message and "127.0.0.1" in message
    assert "s3cret" not in message and "s3cret" not in repr(raised.value)
    assert "\n" not in message
    assert time.monotonic() - started < 5  # the run fails at start, promptly


def test_check_rejects_a_malformed_url_without_echoing_it() -> None:
    with pytest.raises(CoordinationUnavailable, match="REDIS_URL") as raised:
        RedisCoordinator("http://user:s3cret@127.0.0.1:6379/0").check()
    assert "s3cret" not in str(raised.value)


def test_resource_reads_redis_url_through_envvar(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    resource = RedisCoordinationResource(redis_url=EnvVar("REDIS_URL"), key_prefix=prefix)
    with build_resources({"coordination": resource}) as resources:
        client = resources.coordination.get_client()
        client.check()
        assert isinstance(client, RedisCoordinator)
    # The URL (with any password) stays out of the resource's repr.
    assert "redis_url" not in repr(RedisCoordinationResource(redis_url="redis://:s3cret@h:1/0"))


def test_resource_check_fails_for_unreachable_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    resource = RedisCoordinationResource(redis_url=EnvVar("REDIS_URL"))
    with (
        build_resources({"coordination": resource}) as resources,
        pytest.raises(CoordinationUnavailable, match="REDIS_URL") as raised,
    ):
        resources.coordination.get_client().check()
    assert "s3cret" not in str(raised.value)


def test_local_check_names_an_unusable_lock_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(CoordinationUnavailable, match="lock_dir"):
        LocalCoordinator(blocker / "locks").check()
    LocalCoordinationResource(lock_dir=str(tmp_path / "ok")).get_client().check()
    assert (tmp_path / "ok" / "partitions").is_dir()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://app:p%40ss@cache.example.com:6380/2", "rediss://app:***@cache.example.com:6380/2"),
        ("redis://cache:6379/0?password=s3cret", "redis://cache:6379/0"),
        ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock"),
        ("redis://127.0.0.1", "redis://127.0.0.1"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("headers", "limit"),
    [
        ({"X-RateLimit-Limit-Images": "50", "x-ratelimit-limit-requests": "500"}, 50.0),
        ({"x-ratelimit-limit-requests": "500"}, 500.0),
        ({"x-ratelimit-limit-images": "n/a"}, None),
        ({"x-ratelimit-limit-images": "0"}, None),
        ({}, None),
    ],
)
def test_limit_from_headers(headers: dict[str, str], limit: float | None) -> None:
    assert limit_from_headers(headers) == limit


def test_lua_scripts_are_package_files_a_wheel_ships() -> None:
    folder = files("catalog_assets.resources") / "lua"
    on_disk = {p.name for p in folder.iterdir() if p.name.endswith(".lua")}
    assert on_disk == {
        f"{part}.lua" for parts in SCRIPTS.values() for part in parts
    }  # none missing or unused
    assert all("redis.call" in lua_source(name) for name in SCRIPTS)
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject["tool"]["setuptools"]["package-data"]["catalog_assets"]
    assert all(any(fnmatch(f"resources/lua/{name}", g) for g in package_data) for name in on_disk)


# --- locks ----------------------------------------------------------------------------------------------


def test_partition_lock_excludes_other_processes(
    mp: multiprocessing.context.BaseContext, backend: str, spec_for: Callable[..., Spec], tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    spec = spec_for()
    calls = [(wk.count_under_lock, (spec, "batch-0001", f"run-{i}", 10, str(counter))) for i in range(4)]
    run_parallel(mp, calls)
    assert int(counter.read_text()) == 40  # no lost update: never two holders at once


def test_waiter_names_the_holder_then_proceeds_after_release(
    mp: multiprocessing.context.BaseContext, backend: str, spec_for: Callable[..., Spec]
) -> None:
    spec = spec_for()
    ready = mp.Event()
    holder = mp.Process(target=wk.hold_partition, args=(spec, "batch-0002", "run-holder-42", 1.5, ready))
    holder.start()
    try:
        assert ready.wait(15)
        coordinator = wk.make(spec)
        assert coordinator.lock_holder("batch-0002") == "run-holder-42"
        with pytest.raises(LockTimeout) as raised:
            wk.take_partition(spec, "batch-0002", "run-waiter", 0.3)
        assert raised.value.holder == "run-holder-42"
        assert "run-holder-42" in str(raised.value)
        waited = wk.take_partition(spec, "batch-0002", "run-waiter", 10)
        assert 0.3 < waited < 5
    finally:
        holder.join(10)


def test_release_is_token_checked_and_a_lost_lock_is_detected(
    backend: str, spec_for: Callable[..., Spec]
) -> None:
    spec = spec_for(lock_ttl_s=5.0)
    first, second = wk.make(spec), wk.make(spec)
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(first.partition_lock("batch-0003", "run-A"))
        assert a.is_held()
        force_expiry(spec, "batch-0003")
        with second.partition_lock("batch-0003", "run-B", wait_s=0) as b:
            # A finds out before writing; its stale release must not free B's lock.
            assert wait_for(lambda: not a.is_held(refresh=True), 2)
            with pytest.raises(LockLost):
                a.ensure_held()
            stack.close()
            assert b.is_held()
            assert second.lock_holder("batch-0003") == "run-B"
            with pytest.raises(LockTimeout):
                wk.take_partition(spec, "batch-0003", "run-C", 0)


def test_killed_holders_lock_frees_within_ttl(
    mp: multiprocessing.context.BaseContext, backend: str, spec_for: Callable[..., Spec]
) -> None:
    ttl = 2.0
    spec = spec_for(lock_ttl_s=ttl)
    ready = mp.Event()
    holder = mp.Process(target=wk.hold_partition, args=(spec, "batch-0004", "run-killed", 600, ready))
    holder.start()
    assert ready.wait(15)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    killed_at = time.monotonic()
    wk.take_partition(spec, "batch-0004", "run-next", ttl + 5)
    assert time.monotonic() - killed_at <= ttl + 1.0


def test_product_claims_never_wait_and_are_exclusive(
    mp: multiprocessing.context.BaseContext, backend: str, spec_for: Callable[..., Spec], tmp_path: Path
) -> None:
    spec = spec_for()
    coordinator = wk.make(spec)
    hostile = "../../etc/passwd\x00 {x}"
    for product in ("PROD-000123", hostile):
        with coordinator.claim_product(product, "run-A") as mine:
            assert mine is not None and mine.is_held()
            started = time.monotonic()
            assert run_parallel(mp, [(wk.claim, (spec, product, "run-B"))]) == [False]
            with coordinator.claim_product(
                product, "run-A"
            ) as again:  # even our own run: one claim at a time
                assert again is None
            assert time.monotonic() - started < 5
            if backend == "local":  # the claim's file, whatever the id, lies inside the lock directory
                files = list(tmp_path.rglob("*.lock"))
                lock_dir = (tmp_path / "locks").resolve()
                assert len(files) == 1 and files[0].resolve().is_relative_to(lock_dir)
        assert run_parallel(mp, [(wk.claim, (spec, product, "run-B"))]) == [True]


def test_released_file_locks_leave_no_files_behind(
    mp: multiprocessing.context.BaseContext, tmp_path: Path
) -> None:
    spec = spec_builder("local", "unused", tmp_path)()
    coordinator = wk.make(spec)
    coordinator.check()
    for number in range(300):
        with coordinator.claim_product(f"PROD-{number:06d}", "run-A") as handle:
            assert handle is not None and handle.is_held()
    with coordinator.partition_lock("batch-0011", "run-A"):
        pass
    assert run_parallel(mp, [(wk.claim, (spec, f"PROD-{n:06d}", "run-B")) for n in range(3)]) == [True] * 3
    lock_dir = tmp_path / "locks"
    assert sorted(p.name for p in lock_dir.rglob("*") if p.is_file()) == []
    assert coordinator.lock_holder("batch-0011") is None  # as with Redis: nobody holds it now


def test_a_killed_holders_lock_file_is_taken_over_and_names_the_new_holder(tmp_path: Path) -> None:
    coordinator = LocalCoordinator(tmp_path / "locks")
    coordinator.check()
    leftover = tmp_path / "locks" / "partitions" / lock_file_name("batch-0012")
    leftover.write_text(json.dumps({"owner": "run-killed-" + "x" * 200, "by": "host:1", "since": 0.0}))
    assert (coordinator.lock_holder("batch-0012") or "").startswith("run-killed-")
    with coordinator.partition_lock("batch-0012", "run-next", wait_s=0):
        assert coordinator.lock_holder("batch-0012") == "run-next"  # the longer old record is cut
    assert not leftover.exists()


def test_claims_hammered_by_processes_never_have_two_holders(
    mp: multiprocessing.context.BaseContext,
    backend: str,
    spec_for: Callable[..., Spec],
    prefix: str,
    tmp_path: Path,
) -> None:
    spec = spec_for()
    products, workers, rounds = ["PROD-1", "PROD-2"], 4, 2000
    counter = {"url": REDIS_URL, "prefix": prefix}
    start_at = time.time() + 1.0  # every worker starts together, even on a loaded machine
    calls = [
        (wk.hammer_claims, (spec, products, f"run-{i}", rounds, counter, start_at)) for i in range(workers)
    ]
    seen = run_parallel(mp, calls, timeout=120)
    assert sum(s["overlaps"] for s in seen) == 0, seen
    assert sum(s["taken"] + s["refused"] for s in seen) == workers * rounds
    assert sum(s["refused"] for s in seen) > 0, f"the workers did not contend (machine too loaded?): {seen}"
    assert sum(s["taken"] for s in seen) > 0, seen
    if backend == "local":
        assert list((tmp_path / "locks").rglob("*.lock")) == []


def test_heartbeat_keeps_a_lock_past_its_ttl(redis_spec_for: Callable[..., Spec]) -> None:
    spec = redis_spec_for(lock_ttl_s=1.2)
    coordinator = wk.make(spec)
    with coordinator.partition_lock("batch-0005", "run-A") as handle:
        for _ in range(10):  # 3 s, 2.5 TTLs
            time.sleep(0.3)
            assert handle.is_held(refresh=True)
        with pytest.raises(LockTimeout):
            wk.take_partition(spec, "batch-0005", "run-B", 0)
    assert coordinator.lock_holder("batch-0005") is None  # released on exit


def test_heartbeat_notices_a_vanished_lock(redis_spec_for: Callable[..., Spec]) -> None:
    spec = redis_spec_for(lock_ttl_s=1.5)
    coordinator = wk.make(spec)
    with coordinator.partition_lock("batch-0006", "run-A") as handle:
        force_expiry(spec, "batch-0006")
        assert wait_for(lambda: not handle.is_held(), 1.5)  # without asking Redis: the heartbeat found out
        with pytest.raises(LockLost):
            handle.ensure_held()


def test_a_paused_holder_knows_its_lock_expired(
    mp: multiprocessing.context.BaseContext, redis_spec_for: Callable[..., Spec]
) -> None:
    spec = redis_spec_for(lock_ttl_s=1.0)
    ready, go = mp.Event(), mp.Event()
    results = mp.Queue()
    holder = mp.Process(
        target=wk.call, args=(results, 0, wk.hold_then_check, (spec, "batch-0007", "run-paused", ready, go))
    )
    holder.start()
    assert ready.wait(15)
    os.kill(holder.pid, signal.SIGSTOP)  # the whole process, heartbeat included, stops past the TTL
    try:
        with wk.make(spec).partition_lock("batch-0007", "run-next", wait_s=3) as mine:
            os.kill(holder.pid, signal.SIGCONT)
            go.set()
            assert results.get(timeout=10) == (0, True, False)  # it no longer believes it holds the lock
            holder.join(10)
            assert mine.is_held(refresh=True)  # and its release did not free ours
    finally:
        if holder.is_alive():
            os.kill(holder.pid, signal.SIGCONT)
            holder.join(10)


# --- rate limiter ---------------------------------------------------------------------------------------


def max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_processes_share_one_budget(
    mp: multiprocessing.context.BaseContext, backend: str, spec_for: Callable[..., Spec]
) -> None:
    per_minute, duration, workers = 1200.0, 3.0, 4
    spec = spec_for()
    start = time.time() + 1.0  # time for every worker to start, even on a loaded machine
    calls = [(wk.grant_times, (spec, BUCKET, per_minute, start, start + duration))] * workers
    # Redis: one budget across processes. Local: across the threads of one process (its documented scope).
    per_worker = run_parallel(mp, calls, threads=backend == "local")
    assert all(per_worker), "every worker got its share"
    grants = sorted(t for times in per_worker for t in times)
    budget = per_minute * duration / 60
    assert len(grants) <= budget + 1, (
        f"{len(grants)} requests in {duration}s exceed the budget of {budget:.0f}"
    )
    assert len(grants) >= 0.9 * budget, f"only {len(grants)} of {budget:.0f}"
    # Timestamps are taken by the workers after waking, so scheduling jitter can squeeze one extra in.
    assert max_in_window(grants, 1.0) <= per_minute / 60 + 2


def test_pause_holds_every_worker_until_it_ends(
    mp: multiprocessing.context.BaseContext, backend: str, spec_for: Callable[..., Spec]
) -> None:
    per_minute, workers = 1200.0, 4
    spec = spec_for()
    start = time.time() + 1.0
    end = start + 3.0
    calls = [(wk.booked_slots, (spec, BUCKET, per_minute, start, end))] * workers
    outcome: list[list[Any]] = []
    runner = threading.Thread(
        target=lambda: outcome.append(run_parallel(mp, calls, threads=backend == "local"))
    )
    runner.start()
    wk.sleep_until(start + 1.0)
    asked_at = time.time()
    wk.make(spec).pause(BUCKET, 1.0)  # a 429 with retry-after: 1 seen by someone
    paused_at = time.time()  # the pause began between the two, and lasts a second
    runner.join(30)
    grants = sorted(t for times in outcome[0] for t in times)
    before = [t for t in grants if t < asked_at]
    # Slots, not wake-up times: a slot booked before the pause may be woken late on a busy machine, but no
    # slot may be booked inside it.
    during = [round(t - paused_at, 3) for t in grants if paused_at < t < asked_at + 1.0]
    after = [t for t in grants if t >= paused_at + 1.0]
    assert during == [], f"requests were booked inside the pause, at +{during}s"
    # Every worker carried on once it ended (how fast is the budget test's business, above).
    assert before and after, f"{len(before)} requests before the pause, {len(after)} after it"


def test_acquire_gives_up_at_once_when_the_slot_is_past_its_timeout(
    backend: str, spec_for: Callable[..., Spec]
) -> None:
    coordinator = wk.make(spec_for())
    coordinator.pause(BUCKET, 5.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="timeout"):
        coordinator.acquire(BUCKET, 600, timeout_s=0.5)
    assert time.monotonic() - started < 0.45  # did not sleep through its timeout to find out
    assert coordinator.acquire("another-bucket", 600, timeout_s=0.5) < 0.45  # other buckets unaffected


def test_learned_limit_lowers_the_budget(backend: str, spec_for: Callable[..., Spec]) -> None:
    coordinator = wk.make(spec_for())
    coordinator.learn_limit(BUCKET, 300)  # x-ratelimit-limit-images: 300
    assert coordinator.effective_limit(BUCKET, 1200) == 300
    assert wk.make(spec_for()).effective_limit(BUCKET, 100) == 100  # never above the configured limit
    start = time.time()
    grants = wk.grant_times(spec_for(), BUCKET, 1200, start, start + 1.0)
    assert len(grants) <= 300 / 60 + 1


# --- circuit breaker ------------------------------------------------------------------------------------


def test_breaker_opens_after_k_consecutive_failures_from_several_processes(
    mp: multiprocessing.context.BaseContext, backend: str, spec_for: Callable[..., Spec]
) -> None:
    spec = spec_for(breaker_failure_threshold=5, breaker_cooldown_s=30)
    threads = backend == "local"
    coordinator = wk.make(spec)
    run_parallel(mp, [(wk.report_failure, (spec, BUCKET, "HTTP 500"))] * 4, threads=threads)
    assert coordinator.breaker_state(BUCKET).consecutive_failures == 4
    coordinator.breaker_success(BUCKET)  # consecutive: one success anywhere resets the count
    assert coordinator.breaker_state(BUCKET).consecutive_failures == 0
    run_parallel(mp, [(wk.report_failure, (spec, BUCKET, "HTTP 500"))] * 5, threads=threads)
    state = coordinator.breaker_state(BUCKET)
    assert state.state == "open" and state.consecutive_failures == 5 and "HTTP 500" in (state.reason or "")
    assert 25 < (state.retry_in_s or 0) <= 30
    assert run_parallel(mp, [(wk.allowed, (spec, BUCKET, 0.0))] * 3, threads=threads) == [False] * 3
    with pytest.raises(BreakerOpen) as raised:
        coordinator.breaker_allow(BUCKET)
    assert raised.value.retry_in_s > 25
    events = coordinator.breaker_events(BUCKET)
    assert [(e.from_state, e.to_state) for e in events] == [("closed", "open")]


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_one_probe_after_the_cool_down_decides(
    mp: multiprocessing.context.BaseContext, backend: str, spec_for: Callable[..., Spec], outcome: str
) -> None:
    spec = spec_for(breaker_failure_threshold=2, breaker_cooldown_s=1.0)
    coordinator = wk.make(spec)
    coordinator.breaker_failure(BUCKET, reason="HTTP 503")
    coordinator.breaker_failure(BUCKET, reason="HTTP 503")
    retry_in = coordinator.breaker_state(BUCKET).retry_in_s or 0
    start_at = time.time() + retry_in + 0.3
    answers = run_parallel(
        mp, [(wk.probe_race, (spec, BUCKET, start_at, outcome))] * 8, threads=backend == "local"
    )
    probe = min((a for a in answers if a["allowed"]), key=lambda a: a["decided_at"])
    # Everyone who got an answer while the first probe was out: exactly one of them (the probe) may call.
    # (A worker delayed past the probe's report may legitimately be let through: closed, or a new probe.)
    contenders = [a for a in answers if a["decided_at"] < probe["reported_at"]]
    assert len(contenders) >= 4, "the workers did not race (machine too loaded?)"
    assert sum(a["allowed"] for a in contenders) == 1
    state = coordinator.breaker_state(BUCKET)
    if outcome == "success":
        assert state.state == "closed" and state.consecutive_failures == 0
        coordinator.breaker_allow(BUCKET)
    else:
        assert state.state == "open" and (state.reason or "").startswith("probe call failed")
        assert 0.3 < (state.retry_in_s or 0) <= 1.0  # a fresh cool-down
        with pytest.raises(BreakerOpen):
            coordinator.breaker_allow(BUCKET)
    transitions = [(e.from_state, e.to_state) for e in coordinator.breaker_events(BUCKET)]
    assert transitions == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed" if outcome == "success" else "open"),
    ]


def test_fatal_failure_opens_everywhere_at_once(
    mp: multiprocessing.context.BaseContext,
    backend: str,
    spec_for: Callable[..., Spec],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = spec_for(breaker_failure_threshold=5, breaker_cooldown_s=30)
    coordinator = wk.make(spec)
    with caplog.at_level(logging.WARNING, logger="catalog_assets.coordination"):
        coordinator.breaker_failure(BUCKET, fatal=True, reason="429 insufficient_quota")
    assert any("opened" in r.getMessage() and "insufficient_quota" in r.getMessage() for r in caplog.records)
    state = coordinator.breaker_state(BUCKET)
    assert state.state == "open" and "insufficient_quota" in (state.reason or "")
    assert run_parallel(mp, [(wk.allowed, (spec, BUCKET, 0.0))] * 2, threads=backend == "local") == [
        False,
        False,
    ]
    coordinator.breaker_success(BUCKET)  # a straggler's success (not the probe) does not close it
    assert coordinator.breaker_state(BUCKET).state == "open"


def test_a_probe_that_never_reports_is_replaced(backend: str, spec_for: Callable[..., Spec]) -> None:
    spec = spec_for(breaker_cooldown_s=0.2, breaker_probe_timeout_s=0.5)
    coordinator = wk.make(spec)
    coordinator.breaker_failure(BUCKET, fatal=True, reason="quota")
    time.sleep(0.3)
    coordinator.breaker_allow(BUCKET)  # this thread probes; its call neither succeeds nor fails (a 400) ...
    coordinator.breaker_allow(BUCKET)  # ... so it may call again, still as the one probe ...
    rival = wk.make(spec)
    rejected: list[bool] = []

    def other_thread() -> None:
        try:
            rival.breaker_allow(BUCKET)
            rejected.append(False)
        except BreakerOpen as exc:
            rejected.append(exc.retry_in_s <= 1.0)

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert rejected == [True]  # told to look again soon, not after a whole cool-down
    time.sleep(0.6)  # ... and then it never reports (its process died)
    assert wk.allowed(spec, BUCKET, 0.0)  # the stale probe timed out: a new caller probes


def test_breaker_keeps_a_bounded_event_list(backend: str, spec_for: Callable[..., Spec]) -> None:
    coordinator = wk.make(spec_for(breaker_cooldown_s=0))
    started = time.time()
    for _ in range(40):  # 120 transitions
        coordinator.breaker_failure(BUCKET, fatal=True, reason="quota")
        coordinator.breaker_allow(BUCKET)
        coordinator.breaker_success(BUCKET)
    events = coordinator.breaker_events(BUCKET)
    assert len(events) == BREAKER_EVENTS_KEPT
    assert events[-1].to_state == "closed" and events[0].at <= events[-1].at
    assert all(e.bucket == BUCKET and ":" in e.by for e in events)
    assert coordinator.breaker_events(BUCKET, since=time.time() + 60) == []
    assert len(coordinator.breaker_events(BUCKET, since=started - 60)) == BREAKER_EVENTS_KEPT
    assert set(events[0].as_dict()) >= {"at", "from", "to", "reason"}


def test_redis_keys_all_live_under_the_prefix(
    redis_spec_for: Callable[..., Spec], shared_redis: redis.Redis
) -> None:
    spec = redis_spec_for()
    coordinator = wk.make(spec)
    with coordinator.partition_lock("batch-0008", "run-A"), coordinator.claim_product("P-1", "run-A"):
        coordinator.acquire(BUCKET, 600)
        coordinator.pause(BUCKET, 1)
        coordinator.learn_limit(BUCKET, 500)
        coordinator.breaker_failure(BUCKET, fatal=True, reason="quota")
        keys = set(shared_redis.scan_iter(match=f"{spec['key_prefix']}:*"))
    assert len(keys) == 7  # tat, pause, limit; breaker state, events; partition lock; product claim
    assert all(k.startswith(spec["key_prefix"] + ":") for k in keys)


# --- Redis going away -----------------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed; the restart tests need it")
    with OwnRedis(tmp_path) as server:
        yield server


def test_operations_ride_out_a_redis_restart(own_redis: OwnRedis) -> None:
    coordinator = RedisCoordinator(own_redis.url, lock_ttl_s=1.5, max_retries=6, socket_timeout=1)
    coordinator.check()
    with coordinator.partition_lock("batch-0009", "run-A") as handle:
        coordinator.acquire(BUCKET, 600)
        own_redis.kill()
        restart = threading.Timer(0.5, own_redis.start)
        restart.start()
        # Issued while Redis is down: the client reconnects once it is back, the caller never notices.
        coordinator.acquire(BUCKET, 600, timeout_s=10)
        restart.join()
        coordinator.breaker_failure(BUCKET, reason="HTTP 500")
        assert coordinator.breaker_state(BUCKET).consecutive_failures == 1
        # The restart (no persistence) dropped the lock: the heartbeat notices and writes stop.
        assert wait_for(lambda: not handle.is_held(), 3)
        with pytest.raises(LockLost):
            handle.ensure_held()
    # A rerun takes the partition again.
    with coordinator.partition_lock("batch-0009", "run-B", wait_s=0) as again:
        assert again.is_held(refresh=True)


def test_redis_staying_down_raises_coordination_unavailable(own_redis: OwnRedis) -> None:
    url = own_redis.url.replace("redis://", "redis://:s3cret@")
    own_redis.kill()
    coordinator = RedisCoordinator(url, max_retries=3, socket_timeout=1, socket_connect_timeout=1)
    for operation in (
        lambda: coordinator.acquire(BUCKET, 600),
        lambda: coordinator.breaker_allow(BUCKET),
        lambda: coordinator.partition_lock("batch-0010", "run-A").__enter__(),
    ):
        started = time.monotonic()
        with pytest.raises(CoordinationUnavailable) as raised:
            operation()
        assert time.monotonic() - started < 5  # bounded: the partition fails cleanly, promptly
        assert "REDIS_URL" in str(raised.value) and "s3cret" not in str(raised.value)


# --- the local default's scope --------------------------------------------------------------------------


def test_local_coordinators_of_one_lock_dir_share_limiter_and_breaker(tmp_path: Path) -> None:
    resource = LocalCoordinationResource(lock_dir=str(tmp_path / "locks"), breaker_failure_threshold=1)
    first, second = resource.get_client(), resource.get_client()
    first.breaker_failure(BUCKET, reason="HTTP 500")
    with pytest.raises(BreakerOpen):
        second.breaker_allow(BUCKET)
    first.pause("b", 5)
    with pytest.raises(TimeoutError):
        second.acquire("b", 600, timeout_s=0.1)
