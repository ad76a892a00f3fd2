"""Review and embeddings calls are in the call record too, as the API counts them: each appended as it
happens (a `start` before the request goes out, an `end` with its answer), so the calls of a run killed
mid-review still count; the report shows them apart from the image calls, which every image figure counts.

Real SDK against the stand-in over HTTP; a real child process SIGKILLed with its review calls in flight.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

from dagster import materialize

from catalog_assets import call_ledger, report
from catalog_assets.definitions import ALL_ASSETS
from catalog_assets.errors import ImageAPIError
from catalog_assets.resources.embedder import OpenAITextEmbedder
from catalog_assets.resources.image_reviewer import OpenAIImageReviewer
from catalog_assets.resources.local_coordination import LocalCoordinationResource
from catalog_assets.reviewing import BatchReviewer
from catalog_assets_tests.dagster_projects import wait_for
from catalog_assets_tests.review_support import images_through_the_api, stored_images
from catalog_assets_tests.support import standin_server_fixtures

KEY = "sk-test-call-record-reviews-41c7"
HANG_S = 4.0  # a hung request is dropped after this long, whether or not its client is still there

server, standin = standin_server_fixtures(api_key=KEY, hang_s=HANG_S, seed=11)

#: the stand-in's outcome of a failed request -> the error class the call record gives it
CLASS_OF = {"server_error": "transient", "rate_limited": "rate_limited"}


def recorded(call_log: call_ledger.CallLog, *, over: bool = True) -> call_ledger.CallSummary:
    records = {run_id: call_log.read(run_id) for run_id in call_log.runs()}
    return call_ledger.summarize(records, set(records) if over else ())


def kinds(summary: call_ledger.CallSummary) -> dict[str, call_ledger.KindCount]:
    return {k.kind: k for k in summary.other_kinds()}


def expected_errors(by_outcome: dict[str, int]) -> Counter[str]:
    return Counter({CLASS_OF[o]: n for o, n in by_outcome.items() if o != "ok"})


def test_review_and_embeddings_calls_are_recorded_as_the_stand_in_answered_them(
    standin, tmp_path, sample_products
) -> None:
    products = sample_products[:10]
    store, outcomes = stored_images(tmp_path / "store", products)
    standin.configure(review_faults={"server_error": 0.5})
    coordinator = LocalCoordinationResource(lock_dir=str(tmp_path / "locks")).get_client()
    call_log = coordinator.call_log()
    recorder = call_ledger.CallRecorder(call_log, "run-reviews-1", "batch-0000")

    batch = BatchReviewer(
        reviewer=OpenAIImageReviewer(api_key=KEY, base_url=standin.base_url, timeout_s=10.0),
        store=store,
        coordinator=coordinator,
        backoff_base_s=0.0,
        recorder=recorder,
    )
    assert len(batch.review(products, outcomes, {})) + len(batch.stats.failed) == 10
    embedder = OpenAITextEmbedder(api_key=KEY, base_url=standin.base_url, batch_size=2, timeout_s=10.0)
    embedder.share_limits(coordinator, recorder=recorder)
    for n in range(6):
        standin.configure(embedding_faults={"server_error": 1.0 if n < 2 else 0.0})  # two 500s, then answers
        with contextlib.suppress(ImageAPIError):  # a 500: counted as a failed request
            embedder.embed([f"blue soap number {n}", f"red soap number {n}"], attempt=1)

    stats = standin.stats()
    reviews, embeddings = stats["reviews"], stats["embeddings"]
    assert reviews["by_outcome"].get("server_error") and embeddings["by_outcome"].get("server_error")
    summary = recorded(call_log)
    counted = kinds(summary)
    assert list(counted) == [call_ledger.REVIEW, call_ledger.EMBEDDINGS]
    review, embedding = counted[call_ledger.REVIEW], counted[call_ledger.EMBEDDINGS]
    assert review.calls == reviews["requests"] == batch.stats.calls
    assert review.errors == expected_errors(reviews["by_outcome"]) and review.unanswered == 0
    assert embedding.calls == embeddings["requests"] == 6 and embeddings["by_outcome"]["server_error"] == 2
    assert embedding.errors == expected_errors(embeddings["by_outcome"]) and embedding.unanswered == 0
    assert summary.calls == [] and summary.total == 0  # no image call: every image figure stays 0
    assert {c.kind: c.call.split(":")[0] for c in summary.others} == {
        "review": "review",
        "embeddings": "embeddings",
    }

    lines = dict(report.other_call_lines(summary))
    failed = review.failed
    assert lines["Review calls, every run (call record)"] == (
        f"{review.calls:,}, {failed:,} failed (transient {failed:,})"
    )
    assert (
        lines["Embeddings requests, every run (call record)"]
        == f"{embedding.calls:,}, 2 failed (transient 2)"
    )


CHILD = r"""
import json, sys
from catalog_assets.call_ledger import CallRecorder
from catalog_assets.resources.image_reviewer import OpenAIImageReviewer
from catalog_assets.resources.local_coordination import LocalCoordinationResource
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.reviewing import BatchReviewer

args = json.loads(sys.argv[1])
coordinator = LocalCoordinationResource(lock_dir=args["locks"]).get_client()
reviewer = OpenAIImageReviewer(api_key=args["key"], base_url=args["base_url"], timeout_s=60.0)
coordinator.set_key_verdict(reviewer.rate_limit_bucket(), True)  # an earlier run proved the key
BatchReviewer(
    reviewer=reviewer,
    store=LocalImageStore(args["store"]),
    coordinator=coordinator,
    concurrency=args["concurrency"],
    recorder=CallRecorder(coordinator.call_log(), args["run_id"], "batch-0000"),
).review(args["products"], args["outcomes"], {})
"""


def test_review_calls_in_flight_when_their_run_is_killed_are_counted(
    standin, tmp_path, sample_products
) -> None:
    products = sample_products[:6]
    in_flight = 3
    store, outcomes = stored_images(tmp_path / "store", products)
    standin.configure(review_faults={"hang": 1.0})  # every review hangs: in flight until the kill
    args: dict[str, Any] = {
        "locks": str(tmp_path / "locks"),
        "store": str(store.root),
        "key": KEY,
        "base_url": standin.base_url,
        "concurrency": in_flight,
        "run_id": "run-killed-mid-review",
        "products": products,
        "outcomes": outcomes,
    }
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], start_new_session=True)
    try:
        wait_for(
            lambda: (
                standin.stats(products=False)["endpoints"].get("responses.create", 0) >= in_flight
                or child.poll() is not None
            ),
            timeout=60,
            interval=0.02,
            what=f"{in_flight} review calls at the stand-in",
        )
        assert child.poll() is None, "the reviewing process ended before the kill"
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    wait_for(
        lambda: standin.stats(products=False)["reviews"]["requests"] >= in_flight,
        timeout=HANG_S + 30,
        interval=0.05,
        what="the hung reviews to end at the stand-in",
    )

    stats = standin.stats(products=False)
    assert stats["reviews"]["requests"] == in_flight and stats["reviews"]["by_outcome"] == {"hang": in_flight}
    call_log = LocalCoordinationResource(lock_dir=str(tmp_path / "locks")).get_client().call_log()
    summary = recorded(call_log)  # the run is over: it was killed
    review = kinds(summary)[call_ledger.REVIEW]
    assert (review.calls, review.unanswered, review.failed) == (in_flight, in_flight, 0)
    assert dict(report.other_call_lines(summary))["Review calls, every run (call record)"] == (
        f"{in_flight}, none failed, {in_flight} with no answer"
    )


def test_the_report_counts_the_review_calls_the_stand_in_counted(
    pipeline, monkeypatch, standin, workdir, sample_products
) -> None:
    """Images through the API, reviewed by the stand-in's vision model half of their requests failing, published: the
    report's review calls equal the stand-in's review requests, failed ones by class."""
    partition = images_through_the_api(pipeline, monkeypatch, standin, workdir, sample_products[:8], KEY)
    standin.configure(review_faults={"server_error": 0.5})
    # a review failing after its retries fails the partition; publishing reviews it again, without faults
    materialize(
        ALL_ASSETS,
        selection=["image_reviews"],
        partition_key=partition,
        instance=pipeline.instance,
        resources=pipeline.resources(),
        raise_on_error=False,
    )
    standin.configure(review_faults={})
    assert pipeline.publish().success

    reviews = standin.stats()["reviews"]
    assert reviews["by_outcome"].get("server_error"), "the fault mix produced errors"
    text = pipeline.store.get("reports/generation_report.md").decode()
    line = re.search(r"^- \*\*Review calls, every run \(call record\)\*\*: (.*)$", text, re.M)
    assert line, "no review-call line in the report"
    errors = expected_errors(reviews["by_outcome"])
    assert (
        line.group(1)
        == f"{reviews['requests']:,}, {sum(errors.values()):,} failed (transient {errors['transient']:,})"
    )
    assert not re.search(r"^- \*\*Embeddings requests", text, re.M)  # the hashing embedder makes none
    image_calls = re.search(r"^- \*\*Image API calls\*\*: ([\d,]+)", text, re.M)
    assert image_calls and int(image_calls.group(1).replace(",", "")) == standin.stats()["requests"]
