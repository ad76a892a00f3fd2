"""The shared limiter's answer to 429s, on both backends (real Redis on 127.0.0.1:6379, and the in-process
domain): one pause per window however many workers meet it, isolated 429s pause nobody, and the shared rate
drops multiplicatively on a window 429 and climbs back additively after clean periods. End to end, the
stand-in's own headers tell its injected 429s (room left) from its window's (remaining 0).

Recovery is driven by bookings, one step per booking at most, so the tests count steps instead of timing them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from catalog_assets.errors import ErrorClass, ImageAPIError
from catalog_assets.resources.coordination import LOGGER_NAME, Coordinator
from catalog_assets.resources.local_coordination import LocalCoordinator
from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets.resources.redis_coordination import RedisCoordinator
from catalog_assets.standin import StandInConfig, StandInServer
from catalog_assets_tests.conftest import Pipeline, write_catalog

REDIS_URL = "redis://127.0.0.1:6379/0"
BUCKET = "openai:5be0c1d2e3f4a596:gpt-image-2"
WINDOW = {"x-ratelimit-limit-images": "600", "x-ratelimit-remaining-images": "0"}
ROOM = {"x-ratelimit-limit-images": "600", "x-ratelimit-remaining-images": "7"}
FAST = 60_000.0  # per minute: bookings in these tests never wait long

Factory = Callable[..., Coordinator]


@pytest.fixture(params=["redis", "local"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Coordinators of one shared state (one Redis prefix, or one lock directory), as separate runs have."""
    prefix = f"test-rate-{uuid.uuid4().hex[:12]}"

    def build(**settings: Any) -> Coordinator:
        if request.param == "redis":
            return RedisCoordinator(REDIS_URL, key_prefix=prefix, **settings)
        return LocalCoordinator(tmp_path / "locks", **settings)

    yield build
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def paused(coordinator: Coordinator, bucket: str = BUCKET) -> bool:
    """Whether the next slot lies behind a pause (acquire gives up at once, booking nothing)."""
    try:
        coordinator.acquire(bucket, FAST, timeout_s=0.5)
    except TimeoutError:
        return True
    return False


def test_many_window_429s_of_one_window_make_one_pause(make: Factory, caplog: Any) -> None:
    workers = [make() for _ in range(6)]
    for worker in workers:  # six calls in flight, sent before anyone saw the window close
        worker.acquire(BUCKET, FAST)
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    kinds = [w.rate_limited(BUCKET, 5.0, WINDOW, reason="window").kind for w in workers]
    assert kinds == ["window"] + ["coalesced"] * 5
    decreases = [e for e in workers[0].rate_events(BUCKET) if e.change == "decrease"]
    assert len(decreases) == 1 and decreases[0].paused_s == pytest.approx(5.0)
    assert workers[0].rate_factor(BUCKET) == pytest.approx(0.8)  # one decrease, not six
    assert len([r for r in caplog.records if "paused" in r.getMessage()]) == 1
    assert paused(make())


def test_a_call_sent_after_the_window_pause_starts_a_new_window(make: Factory) -> None:
    first, second = make(), make()
    second.acquire(BUCKET, FAST)  # sent before the pause: its 429 belongs to the first window
    first.acquire(BUCKET, FAST)
    assert first.rate_limited(BUCKET, 0.3, WINDOW).kind == "window"
    assert second.rate_limited(BUCKET, 0.3, WINDOW).kind == "coalesced"
    first.acquire(BUCKET, FAST, timeout_s=30)  # waits out the pause: sent after it
    assert first.rate_limited(BUCKET, 0.3, WINDOW).kind == "window"
    assert first.rate_factor(BUCKET) == pytest.approx(0.64)
    assert [e.change for e in first.rate_events(BUCKET)] == ["decrease", "decrease"]


def test_an_isolated_429_pauses_nobody(make: Factory) -> None:
    coordinator = make()
    coordinator.acquire(BUCKET, FAST)
    verdict = coordinator.rate_limited(BUCKET, 5.0, ROOM)  # the window still has room: a fault
    assert verdict.kind == "isolated"
    assert not paused(make())
    assert coordinator.rate_factor(BUCKET) == 1.0 and coordinator.rate_events(BUCKET) == []


def test_without_headers_a_burst_across_workers_means_the_window(make: Factory) -> None:
    workers = [make(rate_burst_429s=3, rate_burst_span_s=60.0) for _ in range(3)]
    kinds = []
    for worker in workers:
        worker.acquire(BUCKET, FAST)
        kinds.append(worker.rate_limited(BUCKET, 5.0, {}).kind)
    assert kinds == ["isolated", "isolated", "window"]
    assert paused(make())


def test_a_shorter_pause_extends_nothing(make: Factory, caplog: Any) -> None:
    coordinator = make()
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    assert coordinator.pause(BUCKET, 5.0) is True
    assert coordinator.pause(BUCKET, 1.0) is False  # ends before the one already set
    assert len([r for r in caplog.records if "paused" in r.getMessage()]) == 1
    assert paused(coordinator)


def test_the_rate_drops_multiplicatively_to_its_floor_then_climbs_back(make: Factory) -> None:
    settings = {"rate_decrease": 0.5, "rate_floor": 0.3, "rate_increase": 0.25}
    reporter = make(rate_recover_s=600.0, **settings)  # never waits long enough to step up
    for expected in (0.5, 0.3, 0.3):  # pause 0: every report is a window of its own
        reporter.acquire(BUCKET, FAST)
        verdict = reporter.rate_limited(BUCKET, 0.0, WINDOW)
        assert (verdict.kind, verdict.factor) == ("window", pytest.approx(expected))
    reporter.acquire(BUCKET, FAST)  # booked right after the last decrease: no clean period yet
    assert reporter.rate_factor(BUCKET) == pytest.approx(0.3)

    fast = make(rate_recover_s=0.2, **settings)  # same shared state, shorter clean period
    steps = []
    for _ in range(4):
        time.sleep(0.25)
        fast.acquire(BUCKET, FAST)  # one booking steps up at most once, however late it comes
        steps.append(round(fast.rate_factor(BUCKET), 6))
    assert steps == [0.55, 0.8, 1.0, 1.0]
    events = fast.rate_events(BUCKET)
    assert [(e.change, round(e.to_factor, 6)) for e in events] == [
        ("decrease", 0.5),
        ("decrease", 0.3),
        ("decrease", 0.3),
        ("increase", 0.55),
        ("increase", 0.8),
        ("increase", 1.0),
    ]
    assert set(events[0].as_dict()) >= {"at", "change", "from", "to", "paused_s", "reason", "by"}


def test_the_lowered_rate_paces_the_bookings(make: Factory) -> None:
    """At 0.01 of 600/min every booking is 10 s behind the previous one; at the full rate, 0.1 s."""
    coordinator = make(rate_decrease=0.01, rate_floor=0.01, rate_recover_s=600.0, rate_headroom=1.0)
    coordinator.acquire(BUCKET, 600)
    coordinator.acquire(BUCKET, 600, timeout_s=5.0)  # full rate: the next slot is near
    coordinator.rate_limited(BUCKET, 0.0, WINDOW)
    coordinator.acquire(BUCKET, 600, timeout_s=5.0)
    with pytest.raises(TimeoutError):
        coordinator.acquire(BUCKET, 600, timeout_s=5.0)


# --- the stand-in's own 429s, over HTTP with the real SDK ----------------------------------------------------

KEY = "sk-test-rate-adaptation-5c1e"
MUGS = [{"id": f"MUG-{n:04d}", "name": f"Stoneware Mug {n}", "category": "Kitchen"} for n in range(12)]


def rate_limited_error(generator: Any, product_id: str) -> ImageAPIError:
    with pytest.raises(ImageAPIError) as caught:
        generator.generate(product_id=product_id, prompt="a mug", attempt=1)
    assert caught.value.error_class is ErrorClass.RATE_LIMITED
    return caught.value


def test_the_standins_injected_429_is_isolated_and_its_windows_429_is_the_window(make: Factory) -> None:
    config = StandInConfig(api_key=KEY, images_per_minute=600, faults={"rate_limit": 1.0})
    with StandInServer(config) as standin:
        generator = OpenAIImageGeneratorResource(
            api_key=KEY, base_url=standin.base_url, size="256x256", timeout_s=10.0
        ).get_client()
        coordinator = make()
        bucket = generator.rate_limit_bucket()
        coordinator.acquire(bucket, FAST)
        fault = rate_limited_error(generator, "MUG-0001")  # the window had room: remaining > 0
        assert int(fault.headers["x-ratelimit-remaining-images"]) > 0
        assert coordinator.rate_limited(bucket, fault.retry_after_s, fault.headers).kind == "isolated"
        assert not paused(make(), bucket)

        standin.configure(images_per_minute=60, burst=1, faults={})
        generator.generate(product_id="MUG-0002", prompt="a mug", attempt=1)  # takes the one image allowed
        coordinator.acquire(bucket, FAST)
        window = rate_limited_error(generator, "MUG-0003")
        assert window.headers["x-ratelimit-remaining-images"] == "0"
        verdict = coordinator.rate_limited(bucket, window.retry_after_s, window.headers)
        assert verdict.kind == "window" and verdict.factor == pytest.approx(0.8)
        assert paused(make(), bucket)
        generator.close()


def test_a_run_under_injected_429s_retries_each_product_without_pausing_anyone(
    pipeline: Pipeline, caplog: Any
) -> None:
    """Every first attempt gets a 429 while the window has room (the earlier failure mix's kind): each
    product waits its own retry-after and succeeds; nobody is paused, the shared rate stays whole."""
    config = StandInConfig(
        api_key=KEY,
        images_per_minute=6000,
        faults={"rate_limit": 1.0},
        first_attempt_only=True,
        fault_retry_after_s=0.05,
    )
    with StandInServer(config) as standin:
        assert pipeline.catalog(write_catalog(pipeline.root / "c.json", MUGS)).success
        pipeline.generator = OpenAIImageGeneratorResource(
            api_key=KEY, base_url=standin.base_url, size="256x256", images_per_minute=6000, concurrency=4
        )
        caplog.set_level(logging.INFO, logger=LOGGER_NAME)
        assert pipeline.images("batch-0000", {"backoff_base_s": 0.05}).success
        stats = standin.stats(products=False)
    assert (stats["images"], stats["requests"]) == (len(MUGS), 2 * len(MUGS))
    assert stats["by_outcome"].get("rate_limit_exceeded") == len(MUGS)
    assert not [r for r in caplog.records if "paused" in r.getMessage()]
    coordinator = LocalCoordinator(pipeline.root / "locks")
    bucket = pipeline.generator.get_client().rate_limit_bucket()
    assert coordinator.rate_events(bucket) == [] and coordinator.rate_factor(bucket) == 1.0
