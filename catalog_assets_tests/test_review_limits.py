"""Reviews and embeddings under the shared limits generation uses: the coordinator's rate limiter paces
them on their own bucket per key and endpoint, the shared breaker stops them across processes while it is
open, a review 429 pauses only the reviews, and the review budget stops paid reviews (the next run makes
the rest). Real SDK against the stand-in over HTTP; Redis where processes share the state."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dagster import materialize

from catalog_assets import state
from catalog_assets.budget import ReviewBudget
from catalog_assets.definitions import ALL_ASSETS
from catalog_assets.errors import ErrorClass, ImageAPIError
from catalog_assets.outcomes import image_key
from catalog_assets.resources.coordination import Coordinator
from catalog_assets.resources.embedder import OpenAITextEmbedder
from catalog_assets.resources.image_reviewer import OpenAIImageReviewer
from catalog_assets.resources.local_coordination import LocalCoordinationResource
from catalog_assets.resources.openai_images import OpenAIImageGenerator
from catalog_assets.resources.redis_coordination import RedisCoordinationResource
from catalog_assets.reviewing import BatchReviewer
from catalog_assets_tests.conftest import REDIS_URL
from catalog_assets_tests.review_support import images_through_the_api, stored_images
from catalog_assets_tests.support import delete_prefix, standin_fixtures

KEY = "sk-test-review-limits-5e2a"

standin_process, standin = standin_fixtures(KEY)


@pytest.fixture
def redis_prefix(shared_redis) -> Iterator[str]:
    prefix = f"test-review-limits-{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_prefix(shared_redis, prefix)


def redis_coordinator(prefix: str, **settings: Any) -> Coordinator:
    """A coordinator as another process makes it: its own client on the shared Redis prefix."""
    return RedisCoordinationResource(redis_url=REDIS_URL, key_prefix=prefix, **settings).get_client()


def reviewer(standin, **kw: Any) -> OpenAIImageReviewer:
    return OpenAIImageReviewer(api_key=KEY, base_url=standin.base_url, timeout_s=10.0, **kw)


def review_outcomes(standin) -> dict[str, int]:
    reviews = standin.stats()["reviews"]
    return {"requests": reviews["requests"], **reviews["by_outcome"]}


def test_the_shared_limiter_paces_reviews_under_the_review_rate_limit(standin, tmp_path, sample_products):
    products = sample_products[:12]
    store, outcomes = stored_images(tmp_path / "store", products)
    standin.configure(review_requests_per_minute=240)  # 4 a second, at most 4 at once
    # no burst allowance: the stand-in's one-second bucket keeps three requests of slack for late sends
    coordinator = LocalCoordinationResource(lock_dir=str(tmp_path / "locks"), rate_burst_s=0.0).get_client()
    paced = BatchReviewer(
        reviewer=reviewer(standin, requests_per_minute=240), store=store, coordinator=coordinator
    )
    rows = paced.review(products, outcomes, {})
    assert len(rows) == 12 and paced.stats.failed == []
    # none, or a couple when a starved stand-in handles late requests at once (each is retried)
    paced_429s = review_outcomes(standin).get("rate_limited", 0)
    assert paced_429s <= 2 and review_outcomes(standin) == {
        "requests": 12 + paced_429s,
        "ok": 12,
        **({"rate_limited": paced_429s} if paced_429s else {}),
    }
    assert paced.stats.calls == 12 + paced_429s

    # the same reviews without the shared limiter, 8 at once: the stand-in refuses more of them
    standin.reset()
    unpaced = BatchReviewer(reviewer=reviewer(standin), store=store, sleep=lambda s: None)
    unpaced.review(products, outcomes, {})
    assert review_outcomes(standin).get("rate_limited", 0) > 2


def test_a_burst_of_review_errors_opens_the_breaker_every_reviewer_shares(
    standin, tmp_path, sample_products, redis_prefix
) -> None:
    products = sample_products[:5]
    store, outcomes = stored_images(tmp_path / "store", products)
    settings = {"breaker_failure_threshold": 3, "breaker_cooldown_s": 2.0}
    standin.configure(review_faults={"server_error": 1.0})
    first = BatchReviewer(
        reviewer=reviewer(standin, requests_per_minute=0),
        store=store,
        coordinator=redis_coordinator(redis_prefix, **settings),
        concurrency=1,
        max_attempts=1,
        breaker_wait_s=0.0,  # give up at once while it is open
    )
    first.review(products, outcomes, {})
    # three 500s open it; the last two reviews make no call
    assert review_outcomes(standin) == {"requests": 3, "server_error": 3} and first.stats.calls == 3
    assert [c for _, c, _ in first.stats.failed] == ["transient"] * 5
    assert sum("circuit breaker open" in m for _, _, m in first.stats.failed) == 2

    # another process, another client of the same key: no call while the breaker is open
    other_coordinator = redis_coordinator(redis_prefix, **settings)
    other_reviewer = reviewer(standin, requests_per_minute=0)
    bucket = other_reviewer.rate_limit_bucket()
    assert other_coordinator.breaker_state(bucket).state == "open"
    refused = BatchReviewer(
        reviewer=other_reviewer,
        store=store,
        coordinator=other_coordinator,
        max_attempts=1,
        breaker_wait_s=0.0,
    )
    assert refused.review(products, outcomes, {}) == {} and refused.stats.calls == 0
    assert review_outcomes(standin)["requests"] == 3

    # the API recovers: the waiting reviews send one probe after the cool-down, it closes the breaker
    standin.configure(review_faults={})
    waiting = BatchReviewer(
        reviewer=other_reviewer, store=store, coordinator=other_coordinator, breaker_wait_s=30.0
    )
    rows = waiting.review(products, outcomes, {})
    assert len(rows) == 5 and waiting.stats.calls == 5 and waiting.stats.failed == []
    assert review_outcomes(standin) == {"requests": 8, "server_error": 3, "ok": 5}
    moves = [(e.from_state, e.to_state) for e in other_coordinator.breaker_events(bucket)]
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert all(KEY not in m for _, _, m in first.stats.failed + refused.stats.failed)
    assert KEY not in bucket


def test_a_review_429_pauses_the_reviews_only(standin, tmp_path, sample_products, redis_prefix) -> None:
    products = sample_products[:2]
    store, _ = stored_images(tmp_path / "store", products)
    standin.configure(review_requests_per_minute=60)  # one a second: the second review at once is refused
    coordinator = redis_coordinator(redis_prefix)
    client = reviewer(standin, requests_per_minute=0)
    client.share_limits(coordinator)
    image = store.get(image_key(products[0]["id"]))
    client.review(product=products[0], image=image)
    with pytest.raises(ImageAPIError) as refused:
        client.review(product=products[1], image=image)
    assert refused.value.error_class is ErrorClass.RATE_LIMITED
    assert refused.value.rate_verdict.kind == "window"  # type: ignore[attr-defined]

    reviews = client.rate_limit_bucket()
    generation = OpenAIImageGenerator(api_key=KEY, base_url=standin.base_url).rate_limit_bucket()
    embeddings = OpenAITextEmbedder(api_key=KEY, base_url=standin.base_url).rate_limit_bucket()
    assert len({reviews, generation, embeddings}) == 3  # one bucket per endpoint of the key
    seen_by_another_process = redis_coordinator(redis_prefix)
    assert [e.change for e in seen_by_another_process.rate_events(reviews)] == ["decrease"]
    assert seen_by_another_process.rate_factor(reviews) < 1.0
    assert seen_by_another_process.rate_events(generation) == []
    assert seen_by_another_process.rate_factor(generation) == 1.0
    seen_by_another_process.acquire(generation, 60, timeout_s=0.0)  # no pause: a slot at once
    with pytest.raises(TimeoutError):  # the reviews' pause holds the next review back
        seen_by_another_process.acquire(reviews, 60, timeout_s=0.0)


def test_the_shared_limiter_paces_embedding_requests(standin, tmp_path) -> None:
    standin.configure(embedding_requests_per_minute=240)
    embedder = OpenAITextEmbedder(
        api_key=KEY, base_url=standin.base_url, batch_size=1, requests_per_minute=240
    )
    embedder.share_limits(LocalCoordinationResource(lock_dir=str(tmp_path / "locks")).get_client())
    embedded = embedder.embed([f"blue soap number {i}" for i in range(10)])
    assert embedded.requests == 10 and embedded.vectors.shape == (10, embedder.dimensions)
    stats = standin.stats()["embeddings"]
    assert (stats["requests"], stats["by_outcome"]) == (10, {"ok": 10})


def test_the_review_cost_budget_stops_new_reviews(standin, tmp_path, sample_products) -> None:
    products = sample_products[:4]
    store, outcomes = stored_images(tmp_path / "store", products)
    batch = BatchReviewer(
        reviewer=reviewer(standin),
        store=store,
        concurrency=1,
        budget=ReviewBudget(max_cost_usd=1e-9),  # the first review spends it
    )
    rows = batch.review(products, outcomes, {})
    assert len(rows) == 1 and batch.stats.unreviewed == [p["id"] for p in products[1:]]
    assert batch.stats.failed == [] and "max_review_cost_usd=0.0000 reached" in (batch.stats.stopped or "")
    assert review_outcomes(standin)["requests"] == 1


def test_the_review_budget_leaves_the_rest_to_the_next_run(
    pipeline, monkeypatch, standin, workdir, sample_products
) -> None:
    products = sample_products[:5]
    partition = images_through_the_api(pipeline, monkeypatch, standin, workdir, products, KEY)

    def reviews(config: dict | None = None):
        return materialize(
            ALL_ASSETS,
            selection=["image_reviews"],
            partition_key=partition,
            instance=pipeline.instance,
            resources=pipeline.resources(),
            run_config={"ops": {"image_reviews": {"config": config or {}}}},
            raise_on_error=False,
        )

    stopped = reviews({"max_reviews": 2, "concurrency": 4})
    assert not stopped.success
    failure = next(e for e in stopped.all_events if e.event_type_value == "STEP_FAILURE")
    info = failure.step_failure_data.user_failure_data
    assert "3 images left unreviewed: max_reviews=2 reached" in info.description
    assert info.metadata["reviews_left_unreviewed"].value == 3 and info.metadata["reviews_made"].value == 2
    assert "max_reviews=2 reached" in info.metadata["reviews_stopped"].value
    assert KEY not in info.description and KEY not in str(info.metadata)
    assert review_outcomes(standin)["requests"] == 2
    assert len(state.read_reviews(pipeline.store, partition)) == 2

    again = reviews()
    assert again.success and review_outcomes(standin)["requests"] == 5  # only the three left
    assert len(state.read_reviews(pipeline.store, partition)) == 5


def test_reviews_made_at_publish_stop_at_the_publish_review_budget(
    pipeline, monkeypatch, standin, workdir, sample_products
) -> None:
    """`product_images` alone leaves its images unreviewed: `image_manifest` reviews them, but no more than
    its `max_reviews`; the manifest is still written, the rest listed unreviewed for a later run."""
    products = sample_products[:5]
    images_through_the_api(pipeline, monkeypatch, standin, workdir, products, KEY)
    assert review_outcomes(standin)["requests"] == 0

    published = materialize(
        ALL_ASSETS,
        selection=["image_manifest"],
        instance=pipeline.instance,
        resources=pipeline.resources(),
        run_config={"ops": {"image_manifest": {"config": {"max_reviews": 2}}}},
    )
    metadata = published.asset_materializations_for_node("image_manifest")[0].metadata
    assert metadata["reviews_made_at_publish"].value == 2
    assert metadata["reviews_left_at_publish"].value == 3
    assert review_outcomes(standin)["requests"] == 2
    statuses = [row["review_status"] for row in pipeline.store.get_json(state.MANIFEST_LATEST_KEY)["rows"]]
    assert sorted(statuses) == ["approved", "approved", "unreviewed", "unreviewed", "unreviewed"]


def test_a_wrong_key_costs_one_review_call_for_every_reviewer_sharing_the_coordinator(
    standin, tmp_path, sample_products, redis_prefix
) -> None:
    """The first review call of a key goes alone (the first-call gate generation uses): a rejected key stops
    eight concurrent reviews, and another process's, after one call; no verdict or message holds the key."""
    products = sample_products[:12]
    store, outcomes = stored_images(tmp_path / "store", products)
    wrong = "sk-test-WRONG-review-77d1"
    batches = [
        BatchReviewer(
            reviewer=OpenAIImageReviewer(api_key=wrong, base_url=standin.base_url, timeout_s=10.0),
            store=store,
            coordinator=redis_coordinator(redis_prefix),
            concurrency=8,
        )
        for _ in range(2)
    ]
    for batch in batches:
        assert batch.review(products, outcomes, {}) == {}
        assert "set a valid key in OPENAI_API_KEY" in (batch.stats.stopped or "")
    assert review_outcomes(standin)["requests"] == 1
    assert batches[0].stats.calls + batches[1].stats.calls == 1
    assert all(wrong not in (b.stats.stopped or "") for b in batches)
