"""The whole pipeline coordinated through the real Redis server, against the stand-in Images API over HTTP:
several `dagster asset materialize` processes (the real CLI, the real definitions) share one API account.

Each test gets its own project copy (store dir and DAGSTER_HOME) and its own Redis key prefix, so claims,
partition locks, limiter and breaker keys never meet another test's. What a test tunes (the key prefix, short
lock TTLs, a short breaker cool-down, small images) reaches the resources as Dagster run config
(`--config-json`), the way an operator overrides a resource of the definitions; `REDIS_URL` and
`OPENAI_API_KEY` stay `{"env": ...}` references there, so no secret is ever part of the run config.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from PIL import Image

from catalog_assets import state
from catalog_assets.generation import image_key, thumbnail_key
from catalog_assets.resources.openai_images import OpenAIImageGenerator
from catalog_assets.resources.redis_coordination import RedisCoordinator
from catalog_assets.resources.store import LocalImageStore, sha256_hex
from catalog_assets.standin import StandInProcess
from catalog_assets_tests.conftest import PROJECT, REDIS_URL, env_without_secrets
from catalog_assets_tests.dagster_projects import BIN, MODULE, free_port, make_project, tail, wait_for
from catalog_assets_tests.resilience_support import CliRun, OwnRedis, run_config
from catalog_assets_tests.support import delete_prefix, standin_fixtures
from catalog_assets_tests.test_coordination import max_in_window

pytestmark = pytest.mark.resilience

KEY = "sk-test-redis-pipeline-4d2a9c"
#: the tests are about calls, locks and budgets, not pixels: small images keep four processes cheap
SIZE = (512, 512)
BATCH_SIZE = 60
PARTITIONS = [f"batch-{n:04d}" for n in range(4)]
PARTITION = PARTITIONS[0]
LOCK_NAME = f"partition:{PARTITION}"
_RUN_ID = re.compile(r" - ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) - ")
_SUMMARY = re.compile(r"(batch-\d{4}): (\d+) made, (\d+) already stored, (\d+) API calls")


# --- processes and projects -----------------------------------------------------------------------------


class Run(CliRun):
    """One `dagster asset materialize` process, in its own process group so that a kill takes everything
    it started with it, as a dying machine would."""

    def run_id(self) -> str | None:
        match = _RUN_ID.search(self.log())
        return match[1] if match else None

    def summary(self) -> tuple[int, int, int] | None:
        """(made, already stored, API calls) from the run's closing log line."""
        match = _SUMMARY.search(self.log())
        return (int(match[2]), int(match[3]), int(match[4])) if match else None


@dataclass
class Project:
    """A copy of the prepared project: catalog materialized, its own store, DAGSTER_HOME and key prefix."""

    root: Path
    env: dict[str, str]
    prefix: str
    runs: list[Run]

    @property
    def store(self) -> LocalImageStore:
        return LocalImageStore(self.root / "store")

    def products(self, partition: str = PARTITION) -> list[str]:
        rows = state.read_batch_products(self.store, partition)
        assert rows, f"{partition} has no products in the store"
        return [row["id"] for row in rows]

    def coordinator(self) -> RedisCoordinator:
        """What the runs use, for reading lock holders and breaker events from the test."""
        return RedisCoordinator(self.env["REDIS_URL"], key_prefix=self.prefix)

    def run_config(
        self,
        *,
        images_per_minute: int = 600,
        coordination: dict[str, Any] | None = None,
        images: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        # One process per run (no step subprocess): half the start-up cost on a busy machine, and a kill of the
        # run is a kill of the step that holds the locks.
        return run_config(
            "images",
            generator={
                "size": "{}x{}".format(*SIZE),
                "timeout_s": 20.0,
                "images_per_minute": images_per_minute,
            },
            coordination={"key_prefix": self.prefix, **(coordination or {})},
            images=images,
        )

    def start(self, name: str, partition: str = PARTITION, config: dict[str, Any] | None = None) -> Run:
        args = [str(BIN / "dagster"), "asset", "materialize", *MODULE, "--select", "product_images"]
        args += ["--partition", partition]
        if config is not None:
            args += ["--config-json", json.dumps(config)]
        log_path = self.root / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                args,
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        run = Run(name, proc, log_path)
        self.runs.append(run)
        return run


standin_process, standin = standin_fixtures(KEY)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, shared_redis: redis.Redis) -> Iterator[Path]:
    """A project with `product_catalog` materialized once (4 batches of 60 bundled products), copied per
    test: one CLI run here instead of one per test."""
    root = tmp_path_factory.mktemp("redis-pipeline") / "template"
    prefix = f"test-redis-pipeline-{uuid.uuid4().hex[:12]}"
    project = make_project(
        root, env={"REDIS_URL": REDIS_URL, "CATALOG_STORE_DIR": str(root / "store")}, products=0
    )
    # More rows than the shared sample holds: the first rows of the bundled catalog.
    rows = json.loads((PROJECT / "data" / "catalog.json").read_text())[: BATCH_SIZE * len(PARTITIONS)]
    (root / "data" / "catalog.json").write_text(json.dumps(rows))
    config = {
        "resources": {"coordination": {"config": {"redis_url": {"env": "REDIS_URL"}, "key_prefix": prefix}}},
        "ops": {"product_catalog": {"config": {"batch_size": BATCH_SIZE}}},
        "execution": {"config": {"in_process": {}}},
    }
    result = project.materialize("product_catalog", config=config)
    delete_prefix(shared_redis, prefix)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    yield root


@pytest.fixture
def project(
    template: Path, tmp_path: Path, shared_redis: redis.Redis, standin: StandInProcess
) -> Iterator[Project]:
    root = tmp_path / "project"
    shutil.copytree(template, root)
    env = env_without_secrets()
    env.update(
        DAGSTER_HOME=str(root / "dagster_home"),
        CATALOG_STORE_DIR=str(root / "store"),
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=standin.base_url,
        REDIS_URL=REDIS_URL,
    )
    prefix = f"test-redis-pipeline-{uuid.uuid4().hex[:12]}"
    made = Project(root=root, env=env, prefix=prefix, runs=[])
    yield made
    for run in made.runs:  # a failed assertion must not leave a run generating behind the next test
        if run.proc.poll() is None:
            run.kill()
    delete_prefix(shared_redis, prefix)


# --- what the stand-in saw ------------------------------------------------------------------------------


def all_calls(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Every generation request, oldest first, each with its product id (times: s since the stand-in's reset)."""
    calls = [
        {**call, "product": pid} for pid, product in stats["products"].items() for call in product["calls"]
    ]
    return sorted(calls, key=lambda c: c["t_start"])


def requests_per_product(stats: dict[str, Any]) -> Counter[str]:
    return Counter({pid: product["requests"] for pid, product in stats["products"].items()})


def stored(project: Project, products: list[str]) -> set[str]:
    """Products whose image is in the store, complete (head() checks the sidecar's sha256)."""
    return {pid for pid in products if project.store.head(image_key(pid)) is not None}


def assert_complete(project: Project, partition: str) -> None:
    """Every product of the partition has an intact image and thumbnail, and the batch record agrees."""
    store = project.store
    outcomes = state.read_outcomes(store, partition)
    for pid in project.products(partition):
        image, thumb = store.head(image_key(pid)), store.head(thumbnail_key(pid))
        assert image is not None and thumb is not None, f"{pid}: image or thumbnail missing or partial"
        data = store.get(image.key)
        assert sha256_hex(data) == image.sha256 == outcomes[pid]["sha256"], pid
        assert image.metadata.get("fingerprint") == outcomes[pid]["prompt_fingerprint"], pid
        with Image.open(store.root / image.key) as decoded:
            assert decoded.size == SIZE, pid


def lock_waits(project: Project, runs: list[Run]) -> set[tuple[str, str]]:
    """Watch the partition lock until every run exits: the (waiter, holder) run-id pairs seen, a waiter
    being a run whose step had started while another run held the lock."""
    coordinator = project.coordinator()
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 180
    while any(r.proc.poll() is None for r in runs) and time.monotonic() < deadline:
        holder = coordinator.lock_holder(LOCK_NAME)
        for run in runs:
            run_id = run.run_id()
            if (
                holder
                and run_id
                and run_id != holder
                and run.proc.poll() is None
                and "STEP_START" in run.log()
            ):
                seen.add((run_id, holder))
        time.sleep(0.1)
    return seen


# --- the tests ------------------------------------------------------------------------------------------


def test_two_processes_on_one_partition_generate_each_product_once(
    project: Project, standin: StandInProcess
) -> None:
    standin.configure(latency_s=0.3, latency_jitter_s=0.1)
    products = project.products()
    # A batch of about 8 s: both processes are surely up while it runs.
    config = project.run_config(images_per_minute=450)
    first, second = project.start("first", config=config), project.start("second", config=config)
    waits = lock_waits(project, [first, second])
    assert [first.wait(), second.wait()] == [0, 0], "\n".join(tail(r.log()) for r in (first, second))

    stats = standin.stats()
    per_product = requests_per_product(stats)
    assert per_product == Counter(dict.fromkeys(products, 1)), "every product called exactly once"
    assert stats["by_status"] == {"200": len(products)}
    # One run generated the batch; the other was up while that one held the partition lock (seen in Redis),
    # waited for it, then found every product stored and skipped them all without a call.
    summaries = sorted([first.summary(), second.summary()])
    assert summaries == [(0, len(products), 0), (len(products), 0, len(products))], summaries
    worker, waiter = (first, second) if first.summary()[0] else (second, first)
    assert (waiter.run_id(), worker.run_id()) in waits, (
        "the skipping run was running while the other held the lock"
    )
    assert_complete(project, PARTITION)


def test_a_killed_lock_holder_is_replaced_within_the_ttl_without_paying_twice(
    project: Project, standin: StandInProcess
) -> None:
    ttl = 6.0
    standin.configure(latency_s=0.3, latency_jitter_s=0.1)
    products = project.products()
    # Slow enough that the batch is still going when the other run is waiting for the lock.
    config = project.run_config(
        images_per_minute=360, coordination={"lock_ttl_s": ttl, "product_claim_ttl_s": ttl}
    )
    runs = [project.start("first", config=config), project.start("second", config=config)]
    coordinator = project.coordinator()

    def holder_and_waiter() -> tuple[Run, Run] | None:
        holder_id = coordinator.lock_holder(LOCK_NAME)
        by_id = {run.run_id(): run for run in runs}
        if holder_id not in by_id or len(stored(project, products)) < 10:
            return None
        waiter = next(run for run in runs if run.run_id() != holder_id)
        return (by_id[holder_id], waiter) if "STEP_START" in waiter.log() else None

    holder, waiter = wait_for(holder_and_waiter, timeout=40, interval=0.1, what="a holder mid-batch")
    holder.kill()
    killed_at = time.monotonic()
    assert coordinator.lock_holder(LOCK_NAME) == holder.run_id(), "it died holding the partition lock"
    before = standin.stats()
    stored_before = stored(project, products)
    assert 10 <= len(stored_before) < len(products), "killed mid-batch"

    wait_for(
        lambda: coordinator.lock_holder(LOCK_NAME) == waiter.run_id(),
        timeout=ttl + 10,
        interval=0.05,
        what="the waiting run to take the partition",
    )
    taken_after = time.monotonic() - killed_at
    assert taken_after <= ttl + 5, f"the partition was taken {taken_after:.1f}s after the kill"
    assert waiter.wait() == 0, tail(waiter.log())

    after = requests_per_product(standin.stats())
    again = {pid: after[pid] - n for pid, n in requests_per_product(before).items() if after[pid] > n}
    print(
        f"killed after {len(stored_before)} stored; taken over {taken_after:.1f}s later (TTL {ttl:.0f}s); "
        f"{len(again)} products called before the kill, unstored, called again"
    )
    assert not again.keys() & stored_before, "a product stored before the kill was called again"
    made, skipped, _ = waiter.summary() or (0, 0, 0)
    assert (made, skipped) == (len(products) - len(stored_before), len(stored_before))
    assert_complete(project, PARTITION)


def test_four_processes_share_one_budget(project: Project, standin: StandInProcess) -> None:
    limit = 600
    standin.configure(images_per_minute=limit, latency_s=0.75, latency_jitter_s=0.25)
    config = project.run_config(images_per_minute=limit)
    runs = [project.start(partition, partition=partition, config=config) for partition in PARTITIONS]
    for run in runs:
        assert run.wait() == 0, tail(run.log())

    stats = standin.stats()
    calls = all_calls(stats)
    starts = [call["t_start"] for call in calls]
    span = starts[-1] - starts[0]
    rate = (len(starts) - 1) / span * 60
    rejected = stats["by_status"].get("429", 0) / stats["requests"]
    busiest = max_in_window(starts, 10.0)
    # The stretch where all four were calling: every partition had begun and none had finished.
    partition_of = {pid: partition for partition in PARTITIONS for pid in project.products(partition)}
    first_call: dict[str, float] = {}
    last_call: dict[str, float] = {}
    for call in calls:
        partition = partition_of[call["product"]]
        first_call.setdefault(partition, call["t_start"])
        last_call[partition] = call["t_start"]
    together_from, together_to = max(first_call.values()), min(last_call.values())
    together = [t for t in starts if together_from <= t <= together_to]
    together_rate = (len(together) - 1) / (together_to - together_from) * 60
    print(
        f"{len(starts)} requests over {span:.1f}s: {rate:.0f}/min ({rate / limit:.1%} of {limit}); "
        f"all four together for {together_to - together_from:.1f}s at {together_rate:.0f}/min; "
        f"busiest 10s: {busiest}; 429s: {rejected:.2%}; first calls at "
        + ", ".join(f"{first_call[p] - starts[0]:.1f}s" for p in PARTITIONS)
    )

    # The budget is a ceiling for the four together; how close they get to it is a figure for
    # benchmarks/bench_scale.py, not an assertion here (a loaded machine only slows them down). The stand-in
    # enforces the same 600/min: four processes pacing themselves apart would get most of their calls
    # refused, four sharing one budget almost none. Arrival times at the stand-in are not asserted window by
    # window: on a loaded machine a call that left late lands next to the one booked after it (the booked
    # slots themselves are checked in test_coordination.py).
    assert span >= 10, f"measured over {span:.1f}s only"
    assert rate <= limit, f"{rate:.0f}/min against a budget of {limit}/min"
    assert rejected <= 0.01, f"{rejected:.1%} of the requests got a 429"
    assert len(together) >= 20, "the four processes hardly overlapped"
    for partition in PARTITIONS:
        assert_complete(project, partition)


def test_breaker_stops_every_process_after_k_failures_and_resumes_after_the_cool_down(
    project: Project, standin: StandInProcess
) -> None:
    threshold, cooldown = 5, 2.0
    standin.configure(latency_s=0.3, faults={"server_error": 1.0})
    config = project.run_config(
        images_per_minute=1200,
        coordination={"breaker_failure_threshold": threshold, "breaker_cooldown_s": cooldown},
        # Retries must outlast a failed probe: the point is the breaker, not the retry budget.
        images={"max_calls_per_product": 10, "backoff_base_s": 0.2},
    )
    runs = [project.start(p, partition=p, config=config) for p in PARTITIONS[:2]]
    coordinator = project.coordinator()
    bucket = OpenAIImageGenerator(api_key=KEY, base_url=standin.base_url).rate_limit_bucket()

    def probe_failed() -> bool:
        return any(
            (e.from_state, e.to_state) == ("half_open", "open") for e in coordinator.breaker_events(bucket)
        )

    # The API keeps failing through one probe, then recovers.
    wait_for(probe_failed, timeout=90, interval=0.05, what="a failed probe")
    standin.configure(faults={})
    assert all(run.proc.poll() is None and "STEP_START" in run.log() for run in runs), "both were working"
    for run in runs:
        assert run.wait() == 0, tail(run.log())

    before = time.time()
    stats = standin.stats()
    zero = (before + time.time()) / 2 - stats["uptime_s"]  # the stand-in's t=0 in epoch seconds
    calls = [{**c, "t_start": zero + c["t_start"]} for c in all_calls(stats)]
    events = coordinator.breaker_events(bucket)
    opened = events[0].at
    timeline = ", ".join(f"{e.at - opened:+.2f}s {e.from_state}->{e.to_state}" for e in events)
    failures = sum(1 for c in calls if c["status"] == 500)
    print(f"breaker: {timeline}; {failures} answers 500 in all, {len(calls)} requests")

    assert events[0].consecutive_failures == threshold, timeline
    assert [(e.from_state, e.to_state) for e in events] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ], timeline
    # While open nobody anywhere calls; each half-open stretch lets exactly the one probe through.
    on_the_wire = 0.25  # a request let through just before the breaker opened may still be arriving
    for event, following in zip(events, events[1:], strict=False):
        if event.to_state == "open":
            inside = [c for c in calls if event.at + on_the_wire < c["t_start"] < following.at]
            assert not inside, f"{len(inside)} calls while open from {event.at - opened:+.2f}s: {timeline}"
            assert following.at - event.at >= cooldown - 0.05, "the cool-down was cut short"
        else:
            inside = [c for c in calls if event.at <= c["t_start"] < following.at]
            assert len(inside) == 1, f"{len(inside)} calls while half-open from {event.at - opened:+.2f}s"
    resumed = [c for c in calls if c["t_start"] > events[-1].at]
    assert resumed and all(c["status"] == 200 for c in resumed)
    for partition in PARTITIONS[:2]:
        assert_complete(project, partition)


def test_redis_down_at_start_fails_naming_redis_url_before_any_call(
    project: Project, standin: StandInProcess
) -> None:
    password = f"s3cret-{uuid.uuid4().hex[:8]}"
    port = free_port()  # nothing listens there
    project.env["REDIS_URL"] = f"redis://:{password}@127.0.0.1:{port}/0"
    run = project.start("down", config=project.run_config())
    assert run.wait(120) != 0
    log = run.log()
    assert f"cannot use Redis at REDIS_URL=redis://:***@127.0.0.1:{port}/0" in log, tail(log)
    assert "products (" not in log, "no product was started"
    assert standin.stats()["requests"] == 0
    for path in [run.log_path, *(project.root / "dagster_home").rglob("*")]:
        if path.is_file():
            assert password.encode() not in path.read_bytes(), f"the Redis password leaked into {path}"


def test_a_redis_restart_mid_run_ends_cleanly_and_the_rerun_pays_nothing_twice(
    project: Project, standin: StandInProcess, tmp_path: Path
) -> None:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        project.env["REDIS_URL"] = server.url
        standin.configure(latency_s=0.3, latency_jitter_s=0.1)
        products = project.products()
        # A short TTL: the heartbeat (every TTL/3) sees the lock vanish well before the batch ends.
        config = project.run_config(images_per_minute=360, coordination={"lock_ttl_s": 6.0})
        first = project.start("first", config=config)
        wait_for(lambda: len(stored(project, products)) >= 10, timeout=90, interval=0.1, what="10 images")
        server.kill()
        time.sleep(1.0)  # Redis is away for a second: a restart without persistence, or a failover
        server.start()
        code = first.wait()
        failure = re.findall(r"Failure: (batch-0000: .*)", first.log())
        print(
            f"first run: {'completed' if code == 0 else failure[-1:]}; stored {len(stored(project, products))}"
        )
        # It went on (the client reconnected) or it failed the partition with a clear reason.
        assert code == 0 or (failure and "lost the lock" in failure[-1]), tail(first.log())
        # Either way the store holds only whole objects, and every product has its outcome recorded.
        assert set(state.read_outcomes(project.store, PARTITION)) == set(products)
        for pid in stored(project, products):
            assert project.store.head(thumbnail_key(pid)) is not None

        rerun = project.start("rerun", config=config)
        assert rerun.wait() == 0, tail(rerun.log())
        assert_complete(project, PARTITION)
        # No product was called again once the API had answered it with an image.
        again = sorted(
            pid
            for pid, product in standin.stats()["products"].items()
            if any(
                later["t_start"] > answered["t_end"]
                for answered in product["calls"]
                if answered["status"] == 200
                for later in product["calls"]
            )
        )
        assert not again, f"called again after the API had answered with an image (paid twice): {again}"
    finally:
        server.kill()
