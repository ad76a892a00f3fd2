"""What the README promises of a run's calls, held by tests: the offline card after N failed runs, the limit
learned from `x-ratelimit-limit-images` end to end, and a half-open probe that stops on the budget without
leaving every other worker waiting for its verdict."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from catalog_assets import state
from catalog_assets.cards import OFFLINE_MODEL
from catalog_assets.generation import BatchProcessor, GenerationSettings
from catalog_assets.resources.coordination import Coordinator
from catalog_assets.resources.local_coordination import LocalCoordinationResource, LocalCoordinator
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.openai_images import OpenAIImageGenerator, OpenAIImageGeneratorResource
from catalog_assets.resources.redis_coordination import RedisCoordinationResource, RedisCoordinator
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.standin import StandInProcess
from catalog_assets_tests.conftest import RENDERS, CountingGeneratorResource, Pipeline, write_catalog

KEY = "sk-test-claims-8d41c2"
REDIS_URL = "redis://127.0.0.1:6379/0"
SMALL = "256x256"  # these tests are about calls and limits, not pixels


@pytest.fixture(scope="module")
def standin_process() -> Iterator[StandInProcess]:
    with StandInProcess(["--api-key", KEY]) as process:
        yield process


@pytest.fixture
def standin(standin_process: StandInProcess) -> StandInProcess:
    standin_process.reset(config=True)
    return standin_process


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"test-claims-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def mugs(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"MUG-{n:04d}", "name": f"Stoneware Mug {n}", "category": "Kitchen"}
        for n in range(start, count)
    ]


def outcome_rows(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    return state.read_outcomes(pipeline.store, "batch-0000")


# --- fallback after N failed runs ------------------------------------------------------------------------


def test_a_product_failing_n_consecutive_runs_gets_the_offline_card(pipeline: Pipeline) -> None:
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", mugs(4))).success
    pipeline.generator = CountingGeneratorResource(fail_ids=["MUG-0002"], fail_class="transient")
    config = {"fallback_after_failed_runs": 2, "backoff_base_s": 0.0, "max_calls_per_product": 2}

    first = pipeline.images("batch-0000", config)
    assert not first.success
    row = outcome_rows(pipeline)["MUG-0002"]
    assert (row["outcome"], row["failed_runs"]) == ("failed", 1)
    assert not pipeline.store.head("images/MUG-0002.jpg")

    RENDERS.clear()
    second = pipeline.images("batch-0000", config)
    assert second.success
    row = outcome_rows(pipeline)["MUG-0002"]
    assert (row["outcome"], row["source"], row["model"]) == ("fallback", "fallback", OFFLINE_MODEL)
    assert "(fallback after 2 failed runs)" in row["message"]
    assert row["calls_total"] == 4 and row["errors_total"] == ["transient"] * 4  # both runs' calls
    assert RENDERS["MUG-0002"] == 2  # it was tried again first; only then the card
    assert pipeline.store.head("images/MUG-0002.jpg").metadata["source"] == "fallback"
    assert {r["outcome"] for pid, r in outcome_rows(pipeline).items() if pid != "MUG-0002"} == {"skipped"}


def test_a_run_stopped_for_another_reason_neither_counts_nor_resets_the_failed_runs(
    pipeline: Pipeline,
) -> None:
    """Consecutive failed runs of the product: a run that stopped before trying it (a rejected key here)
    says nothing about the product, so the count carries over that run."""
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", mugs(1))).success
    config = {"fallback_after_failed_runs": 2, "backoff_base_s": 0.0, "max_calls_per_product": 1}
    pipeline.generator = CountingGeneratorResource(fail_ids=["MUG-0000"], fail_class="bad_request")
    assert not pipeline.images("batch-0000", config).success
    assert outcome_rows(pipeline)["MUG-0000"]["failed_runs"] == 1

    pipeline.generator = CountingGeneratorResource(fail_ids=["MUG-0000"], fail_class="configuration")
    assert not pipeline.images("batch-0000", config).success
    row = outcome_rows(pipeline)["MUG-0000"]
    assert (row["error_class"], row["failed_runs"]) == ("configuration", 1)

    pipeline.generator = CountingGeneratorResource(fail_ids=["MUG-0000"], fail_class="bad_request")
    assert pipeline.images("batch-0000", config).success
    assert outcome_rows(pipeline)["MUG-0000"]["outcome"] == "fallback"


# --- the limit learned from x-ratelimit-limit-images ------------------------------------------------------


@pytest.mark.parametrize("backend", ["local", "redis"])
def test_the_run_paces_at_the_limit_the_api_announces(
    pipeline: Pipeline, standin: StandInProcess, redis_prefix: str, backend: str
) -> None:
    """The account allows 240 images/min, the setting says 6,000: the first answer's
    `x-ratelimit-limit-images` is learned before the other workers book a slot, so they pace at 240."""
    announced, configured = 240, 6000
    standin.configure(images_per_minute=announced, latency_s=0.05)
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", mugs(16))).success
    pipeline.generator = OpenAIImageGeneratorResource(
        api_key=KEY, base_url=standin.base_url, size=SMALL, images_per_minute=configured, concurrency=8
    )
    if backend == "redis":
        coordination = RedisCoordinationResource(redis_url=REDIS_URL, key_prefix=redis_prefix)
        pipeline.resources = lambda: {  # type: ignore[method-assign]
            "image_generator": pipeline.generator,
            "store": Pipeline.resources(pipeline)["store"],
            "coordination": coordination,
        }
        coordinator: Coordinator = coordination.get_client()
    else:
        coordinator = LocalCoordinationResource(lock_dir=str(pipeline.root / "locks")).get_client()

    result = pipeline.images("batch-0000", {"backoff_base_s": 0.05})
    assert result.success
    stats = standin.stats()
    bucket = OpenAIImageGenerator(
        api_key=KEY, model="gpt-image-2", base_url=standin.base_url
    ).rate_limit_bucket()
    assert coordinator.effective_limit(bucket, configured) == announced
    assert stats["images"] == 16
    # At 6,000/min the eight workers would have sent together into a bucket of four a second: a stream
    # of 429s. Paced at the announced limit, at most a late send meets a refusal.
    assert stats["by_status"].get("429", 0) <= 1, stats["by_status"]


# --- a half-open probe that stops on the budget ------------------------------------------------------------


def _coordinators(backend: str, root: Path, prefix: str) -> tuple[Coordinator, Coordinator]:
    """Two clients of one backend, as two runs have: the second must not wait for the first's probe."""
    options: dict[str, Any] = {"breaker_failure_threshold": 1, "breaker_cooldown_s": 0.2}
    if backend == "redis":
        return tuple(RedisCoordinator(REDIS_URL, key_prefix=prefix, **options) for _ in range(2))  # type: ignore[return-value]
    return tuple(LocalCoordinator(root / "locks", **options) for _ in range(2))  # type: ignore[return-value]


@pytest.mark.parametrize("backend", ["local", "redis"])
@pytest.mark.parametrize("limit", [{"max_images": 0}, {"max_cost_usd": 0.01}])
def test_a_probe_stopped_by_the_budget_leaves_no_one_waiting_for_its_verdict(
    tmp_path: Path, standin: StandInProcess, redis_prefix: str, backend: str, limit: dict[str, Any]
) -> None:
    first, second = _coordinators(backend, tmp_path, redis_prefix)
    generator = OpenAIImageGenerator(
        api_key=KEY, base_url=standin.base_url, size=SMALL, images_per_minute=None, timeout_s=5.0
    )
    bucket = generator.rate_limit_bucket()
    first.breaker_failure(bucket, reason="server error (500)")  # open, cooling down for 0.2 s
    deadline = time.monotonic() + 10
    while first.breaker_state(bucket).retry_in_s and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.breaker_state(bucket).state == "open"  # cool-down over: the next caller probes

    def processor(coordinator: Coordinator, run_id: str, **settings: Any) -> BatchProcessor:
        return BatchProcessor(
            generator=generator,
            fallback=OfflineCardGenerator(),
            store=LocalImageStore(tmp_path / "store"),
            coordinator=coordinator,
            run_id=run_id,
            settings=GenerationSettings(price_per_image_usd=0.042, backoff_base_s=0.05, **settings),
        )

    stopped = processor(first, "run-over-budget", **limit)
    results = stopped.process(mugs(4))
    assert {r.error_class for r in results} == {"budget"}
    assert stopped.stopped is not None and "stopping before more calls" in stopped.stopped.message
    assert standin.stats()["requests"] == 0

    # Another run: it must become the probe now, not wait out a probe that will never report.
    other = processor(second, "run-with-room", breaker_wait_s=5.0)
    results = other.process(mugs(8, start=4))
    assert [r.outcome for r in results] == ["generated"] * 4, [(r.error_class, r.message) for r in results]
    assert standin.stats()["requests"] == 4
    assert second.breaker_state(bucket).state == "closed"
