"""The review loop: `image_reviews` reviews each stored image once per fingerprint, a rejected image is
retaken by the next `product_images` run with a prompt addressing the issue (bounded by `max_retakes`, then
the fallback card or keep-with-flag), approved images are never paid again, and a person's `reject` /
`unreject` is honoured. Real SDK against the stand-in over HTTP (OPENAI_BASE_URL)."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from typing import Any

import pytest
from dagster import build_schedule_context, materialize
from PIL import Image

from catalog_assets import imaging, state
from catalog_assets.cards import OFFLINE_MODEL
from catalog_assets.checks import LINKED_VECTORS, REVIEW_REJECTION_RATE
from catalog_assets.definitions import ALL_ASSETS, defs
from catalog_assets.errors import ErrorClass, ImageAPIError
from catalog_assets.outcomes import image_key
from catalog_assets.prompts import build_prompt, fingerprint
from catalog_assets.resources.embedder import OpenAITextEmbedderResource
from catalog_assets.resources.image_reviewer import OfflineImageReviewer, OpenAIImageReviewerResource
from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets.resources.store import LocalImageStore, LocalImageStoreResource
from catalog_assets.retakes import RetakeOrder, retake_orders, review_status
from catalog_assets.review_commands import run_rejection
from catalog_assets.reviewing import BatchReviewer
from catalog_assets.schedules import build_failed_batches_retry_schedule
from catalog_assets_tests.check_support import persistent_pipeline
from catalog_assets_tests.conftest import write_catalog
from catalog_assets_tests.support import generated_catalog, standin_fixtures

KEY = "sk-test-review-loop-7c1d"
SMALL = "256x256"

standin_process, standin = standin_fixtures(KEY)


# -- which images the next run replaces (pure) ---------------------------------------------------------


def _outcome(sha: str = "s1", retakes: int = 0, source: str = "generated", outcome: str = "skipped") -> dict:
    return {"key": "images/P.jpg", "sha256": sha, "retakes": retakes, "source": source, "outcome": outcome}


def _review(sha: str = "s1", approved: bool = False, issues: tuple[str, ...] = ("person",)) -> dict:
    return {"image_sha256": sha, "review": {"approved": approved, "issues": list(issues)}}


@pytest.mark.parametrize(
    ("outcome", "review", "rejection", "after", "expected"),
    [
        (_outcome(), _review(approved=True, issues=()), None, "fallback", None),
        (_outcome(), _review(), None, "fallback", ("retake", 1, ("person",), "review")),
        (_outcome(), _review(issues=()), None, "fallback", ("retake", 1, ("wrong_object",), "review")),
        (_outcome(retakes=1), _review(), None, "fallback", ("fallback", 1, ("person",), "review")),
        (_outcome(retakes=1), _review(), None, "keep", None),
        (_outcome(retakes=1, source="fallback"), _review(), None, "fallback", None),
        (_outcome(sha="s2"), _review(sha="s1"), None, "fallback", None),  # the review was of an older image
        (_outcome(outcome="failed"), _review(), None, "fallback", None),
        (_outcome(), None, {"image_sha256": "s1", "reason": "two bottles"}, "fallback",
         ("retake", 1, ("other",), "person")),
        (_outcome(sha="s2"), None, {"image_sha256": "s1", "reason": "two bottles"}, "fallback", None),
    ],
)  # fmt: skip
def test_retake_orders(outcome, review, rejection, after, expected) -> None:
    orders = retake_orders(
        {"P": outcome},
        {"P": review} if review else {},
        {"P": rejection} if rejection else {},
        max_retakes=1,
        after_retakes=after,
    )
    got = orders.get("P")
    assert (None if got is None else (got.action, got.number, got.issues, got.by)) == expected


def test_retake_prompt_addresses_the_issue_and_each_retake_has_its_own_prompt() -> None:
    first = RetakeOrder("P", "retake", 1, ("multiple_products",), "review").prompt_for("Product: soap.")
    second = RetakeOrder("P", "retake", 2, ("multiple_products",), "review").prompt_for("Product: soap.")
    by_person = RetakeOrder("P", "retake", 1, ("other",), "person", 'shows "two" bottles').prompt_for("p")
    assert first.startswith("Product: soap.\nRetake:") and "only one product" in first
    assert second != first and "Retake 2:" in second
    assert "A reviewer noted: 'shows 'two' bottles'." in by_person


def test_review_status_names_a_kept_rejection() -> None:
    assert review_status(_outcome(retakes=1), _review(), None, max_retakes=1) == "rejected_kept"
    assert review_status(_outcome(), _review(), None, max_retakes=1) == "rejected"
    assert review_status(_outcome(), _review(approved=True, issues=()), None) == "approved"
    assert review_status(_outcome(sha="s2"), _review(), None) == "unreviewed"


# -- through the stand-in ------------------------------------------------------------------------------


def _use_standin(pipeline, monkeypatch, standin, concurrency: int = 8) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", standin.base_url)
    pipeline.generator = OpenAIImageGeneratorResource(
        api_key=KEY, size=SMALL, images_per_minute=None, timeout_s=10.0, concurrency=concurrency
    )
    base = pipeline.resources
    pipeline.resources = lambda: {
        **base(),
        "image_reviewer": OpenAIImageReviewerResource(api_key=KEY, timeout_s=10.0),
        "text_embedder": OpenAITextEmbedderResource(api_key=KEY),
    }


def _calls(standin) -> dict[str, Any]:
    stats = standin.stats()
    return {
        "images": stats["images"],
        "reviews": stats["reviews"]["requests"],
        "embeddings": stats["embeddings"]["requests"],
        "billed": {pid: c["sync"] for pid, c in stats["billed_products"].items()},
    }


def _delta(after: dict, before: dict) -> dict:
    billed = {p: n - before["billed"].get(p, 0) for p, n in after["billed"].items()}
    return {
        "images": after["images"] - before["images"],
        "reviews": after["reviews"] - before["reviews"],
        "embeddings": after["embeddings"] - before["embeddings"],
        "paid_products": sorted(p for p, n in billed.items() if n),
    }


def _run_all(pipeline, config: dict | None = None, standin=None) -> dict:
    """Every batch as `product_images_job` runs it (images, then their reviews), then the publish run;
    returns the stand-in calls it made."""
    before = _calls(standin)
    run_config = {"ops": {"product_images": {"config": config}}} if config else {}
    for partition in pipeline.partitions():
        result = pipeline._run(["product_images", "image_reviews"], partition, run_config)
        assert result.success, partition
    published = pipeline.publish()
    assert published.success
    checks = {e.check_name: e for e in published.get_asset_check_evaluations()}
    return {**_delta(_calls(standin), before), "checks": checks}


def _manifest_rows(pipeline) -> dict[str, dict]:
    return {r["product_id"]: r for r in pipeline.store.get_json(state.MANIFEST_LATEST_KEY)["rows"]}


def test_rejected_images_are_retaken_once_and_approved_ones_never_paid_again(
    pipeline, monkeypatch, standin, workdir
) -> None:
    products = json.loads(generated_catalog(workdir / "catalog.json", 20).read_text())
    wrong = sorted(p["id"] for p in products[::7])  # 3 of 20
    standin.configure(review_reject=wrong, review_reject_times=1, review_reject_issue="multiple_products")
    _use_standin(pipeline, monkeypatch, standin)
    assert pipeline.catalog(workdir / "catalog.json", batch_size=10).success

    first = _run_all(pipeline, standin=standin)
    assert (first["images"], first["reviews"]) == (20, 20)
    reviews = {
        **state.read_reviews(pipeline.store, "batch-0000"),
        **state.read_reviews(pipeline.store, "batch-0001"),
    }
    assert sorted(p for p, r in reviews.items() if not r["review"]["approved"]) == wrong
    assert {p for p, r in _manifest_rows(pipeline).items() if r["review_status"] == "rejected"} == set(wrong)
    rejection = first["checks"][REVIEW_REJECTION_RATE]  # 3 of 20 over the default 10 %: a warning
    assert (rejection.passed, rejection.severity.value) == (False, "WARN")
    assert rejection.metadata["rejected"].value == len(wrong)
    recall = first["checks"][LINKED_VECTORS].metadata["recall_at_5"].value
    assert 0.0 <= recall <= 1.0 and first["checks"][LINKED_VECTORS].metadata["self_test_queries"].value == 20

    second = _run_all(pipeline, standin=standin)
    assert second["paid_products"] == wrong  # those and only those
    assert (second["images"], second["reviews"]) == (len(wrong), len(wrong))
    assert second["embeddings"] >= 1  # their new captions
    rows = _manifest_rows(pipeline)
    for pid in wrong:
        meta = pipeline.store.head(image_key(pid)).metadata
        assert meta["retakes"] == "1" and meta["base-fingerprint"] != meta["fingerprint"]
        assert rows[pid]["review_status"] == "approved"
    assert {r["review_status"] for r in rows.values()} == {"approved"}
    assert second["checks"][REVIEW_REJECTION_RATE].passed

    third = _run_all(pipeline, standin=standin)
    assert (third["images"], third["reviews"], third["embeddings"]) == (0, 0, 0)


@pytest.mark.parametrize(("after", "source"), [("fallback", "fallback"), ("keep", "generated")])
def test_after_the_last_retake_the_card_or_the_flagged_image(
    pipeline, monkeypatch, standin, workdir, sample_products, after, source
) -> None:
    products = sample_products[:6]
    wrong = [products[2]["id"]]
    standin.configure(review_reject=wrong)  # every review of it rejects: the retake does not fix it
    _use_standin(pipeline, monkeypatch, standin)
    assert pipeline.catalog(write_catalog(workdir / "c.json", products), batch_size=10).success
    config = {"max_retakes": 1, "after_retakes": after}
    runs = [_run_all(pipeline, config, standin=standin) for _ in range(4)]
    assert [(r["images"], r["reviews"]) for r in runs] == [(6, 6), (1, 1), (0, 0), (0, 0)]
    assert [r["paid_products"] for r in runs[1:]] == [wrong, [], []]
    row = _manifest_rows(pipeline)[wrong[0]]
    assert row["source"] == source
    # the card is reviewed offline (its content comes from the fields): approved; a kept image stays flagged
    assert row["review_status"] == ("approved" if after == "fallback" else "rejected")
    assert (row["review"]["reviewer"] == "offline-reviewer-v1") == (after == "fallback")
    gallery = pipeline.store.get(state.REVIEW_GALLERY_KEY).decode()
    cards = re.findall(r'data-product="([^"]+)" data-status="([^"]+)"', gallery)
    assert sorted(pid for pid, _ in cards) == sorted(p["id"] for p in products)
    if after == "keep":  # the kept, flagged image comes first
        assert cards[0] == (wrong[0], "rejected") and [s for _, s in cards[1:]] == ["approved"] * 5
    report = pipeline.store.get(state.REPORT_KEY).decode()
    assert "review_gallery.html" in report and "**Image reviews**" in report


def test_a_person_rejects_and_unrejects(pipeline, monkeypatch, standin, workdir, sample_products) -> None:
    products = sample_products[:5]
    _use_standin(pipeline, monkeypatch, standin)
    assert pipeline.catalog(write_catalog(workdir / "c.json", products), batch_size=10).success
    _run_all(pipeline, standin=standin)
    env = {"store": LocalImageStoreResource(root=str(pipeline.store_dir))}

    def command(*args: str, withdraw: bool = False) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = run_rejection(*args, withdraw=withdraw, env_resources=env, out=out, err=err)  # type: ignore[arg-type]
        return code, out.getvalue(), err.getvalue()

    code, out, err = command("PROD-999999", "shows two bottles")
    assert (code, out) == (2, "") and err.count("\n") == 1 and "unknown product id 'PROD-999999'" in err
    code, out, err = command(products[4]["id"], None, withdraw=True)
    assert code == 2 and "is not rejected" in err

    first, second = products[1]["id"], products[3]["id"]
    assert command(first, "shows two bottles")[0] == 0
    assert command(second, "label is garbled")[0] == 0
    assert command(second, None, withdraw=True)[0] == 0  # withdrawn before the next run: not retaken
    assert set(state.read_rejections(pipeline.store)) == {first}
    old = pipeline.store.head(image_key(first)).sha256
    again = _run_all(pipeline, standin=standin)
    assert again["paid_products"] == [first] and again["images"] == 1
    assert pipeline.store.head(image_key(first)).sha256 != old
    # made from the product's prompt plus the retake lines quoting the reason
    retake = RetakeOrder(first, "retake", 1, ("other",), "person", "shows two bottles")
    made_from = retake.prompt_for(build_prompt(products[1]))
    generator = pipeline.generator
    expected = fingerprint(made_from, generator.model, generator.size, generator.quality)
    assert pipeline.store.head(image_key(first)).metadata["fingerprint"] == expected
    assert _run_all(pipeline, standin=standin)["images"] == 0  # the rejection was of the replaced image


@pytest.mark.slow
def test_300_products_with_a_tenth_judged_wrong(pipeline, monkeypatch, standin, workdir) -> None:
    products = json.loads(generated_catalog(workdir / "catalog.json", 300).read_text())
    wrong = sorted(p["id"] for p in products[::10])  # 30 of 300
    standin.configure(review_reject=wrong, review_reject_times=1)
    _use_standin(pipeline, monkeypatch, standin, concurrency=16)
    assert pipeline.catalog(workdir / "catalog.json", batch_size=100).success

    first = _run_all(pipeline, standin=standin)
    assert (first["images"], first["reviews"]) == (300, 300)
    rerun = _run_all(pipeline, standin=standin)
    assert rerun["paid_products"] == wrong and (rerun["images"], rerun["reviews"]) == (30, 30)
    again = _run_all(pipeline, standin=standin)
    assert (again["images"], again["reviews"], again["embeddings"]) == (0, 0, 0)
    rows = _manifest_rows(pipeline)
    assert len(rows) == 300 and {r["review_status"] for r in rows.values()} == {"approved"}
    assert sorted(p for p, r in rows.items() if r["retakes"]) == wrong


def test_the_retry_schedule_requests_the_batches_with_pending_retakes(
    monkeypatch, standin, workdir, sample_products
) -> None:
    with persistent_pipeline(workdir) as pipeline:
        products = sample_products[:12]
        wrong = products[7]["id"]  # in batch-0001
        standin.configure(review_reject=[wrong], review_reject_times=1)
        _use_standin(pipeline, monkeypatch, standin)
        monkeypatch.setenv("CATALOG_STORE_DIR", str(pipeline.store_dir))  # the store the schedule reads
        assert pipeline.catalog(write_catalog(workdir / "c.json", products), batch_size=6).success
        _run_all(pipeline, standin=standin)

        def tick() -> list:
            schedule = build_failed_batches_retry_schedule(env={}, include_missing=False)
            with build_schedule_context(
                instance=pipeline.instance, repository_def=defs.get_repository_def()
            ) as ctx:
                return list(schedule.evaluate_tick(ctx).run_requests or [])

        requests = tick()
        assert [r.partition_key for r in requests] == ["batch-0001"]
        assert requests[0].run_key.startswith("batch-0001:retake:")
        before = _calls(standin)
        run = materialize(
            ALL_ASSETS,
            selection=["product_images", "image_reviews"],
            partition_key="batch-0001",
            instance=pipeline.instance,
            resources=pipeline.resources(),
            tags=requests[0].tags,
        )
        assert run.success and _delta(_calls(standin), before)["paid_products"] == [wrong]
        assert tick() == []  # the retake passed review: nothing pending
        # a person rejects an image of the other batch: the next tick asks for that batch
        assert run_rejection(products[2]["id"], "label is cut off", env_resources={
            "store": LocalImageStoreResource(root=str(pipeline.store_dir))}, out=io.StringIO()) == 0  # fmt: skip
        assert [r.partition_key for r in tick()] == ["batch-0000"]


# -- the review flow (no Dagster) ----------------------------------------------------------------------


class CountingReviewer(OfflineImageReviewer):
    """A paid-looking reviewer (its own label) that fails the first attempt of chosen products."""

    paid = True
    offline = False

    def __init__(self, label: str, flaky: set[str]) -> None:
        self.model, self.flaky, self.calls = label, flaky, Counter()

    def review(self, *, product, image, source_model=None, attempt=1):  # type: ignore[no-untyped-def]
        self.calls[product["id"]] += 1
        if product["id"] in self.flaky and attempt == 1:
            raise ImageAPIError(ErrorClass.TRANSIENT, "connection reset")
        return super().review(product=product, image=image, source_model=source_model, attempt=attempt)


def test_each_image_is_reviewed_once_per_fingerprint(tmp_path, sample_products) -> None:
    store = LocalImageStore(tmp_path / "store")
    products = sample_products[:4]
    outcomes = {}
    for i, product in enumerate(products):
        data = imaging.encode_jpeg(Image.new("RGB", (64, 64), (40 * i, 90, 200)))
        put = store.put(image_key(product["id"]), data, content_type="image/jpeg")
        model = OFFLINE_MODEL if i == 3 else "gpt-image-2"  # the last one is an offline card
        outcomes[product["id"]] = {"key": put.object.key, "sha256": put.object.sha256, "model": model}
    reviewer = CountingReviewer("vision-a", flaky={products[1]["id"]})
    first = BatchReviewer(reviewer=reviewer, store=store, backoff_base_s=0, sleep=lambda s: None)
    rows = first.review(products, outcomes, {})
    assert len(rows) == 4 and first.stats.reviewed == 4 and first.stats.failed == []
    # the flaky one twice (retried), the card never by the paid reviewer
    assert reviewer.calls == {products[0]["id"]: 1, products[1]["id"]: 2, products[2]["id"]: 1}
    assert rows[products[3]["id"]]["review"]["reviewer"] == "offline-reviewer-v1"
    again = BatchReviewer(reviewer=reviewer, store=store)
    assert again.review(products, outcomes, rows) == rows and again.stats.reused == 4
    assert sum(reviewer.calls.values()) == 4
    other = CountingReviewer("vision-b", flaky=set())  # another reviewer: a new fingerprint, reviewed again
    changed = BatchReviewer(reviewer=other, store=store).review(products, outcomes, rows)
    assert sum(other.calls.values()) == 3 and changed[products[3]["id"]] == rows[products[3]["id"]]
