"""Batch mode closes the review loop too: an image rejected in review (by the reviewer or `catalog-images
reject`) is retaken through the next Batch API submission with the retake's prompt and fingerprint, bounded
by `max_retakes`, then the card (stored without a line) or the kept, flagged image; approved images are never
resubmitted. Real SDK against the stand-in over HTTP (generation, batches, reviews)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

from catalog_assets import state
from catalog_assets.batch_mode import BatchPartition
from catalog_assets.cards import OFFLINE_MODEL
from catalog_assets.generation import BatchProcessor
from catalog_assets.outcomes import image_key
from catalog_assets.prompts import build_prompt, fingerprint
from catalog_assets.resources.image_reviewer import OpenAIImageReviewerResource
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.store import LocalImageStoreResource
from catalog_assets.retakes import RetakeOrder, retake_orders
from catalog_assets.review_commands import run_rejection
from catalog_assets.standin import StandInProcess
from catalog_assets_tests.conftest import Pipeline
from catalog_assets_tests.support import standin_fixtures
from catalog_assets_tests.test_batch_mode import (
    KEY,
    batch_generator,
    catalog,
    failure,
    job,
    products,
    sdk,
    wait_terminal,
)

standin_process, standin = standin_fixtures(KEY)


def use_batch_mode(pipeline: Pipeline, standin: StandInProcess) -> None:
    """Images through the Batch API, reviews through the Responses API, both on the stand-in."""
    standin.configure(batch_delay_s=0.01)
    pipeline.generator = batch_generator(standin)
    base = pipeline.resources
    reviewer = OpenAIImageReviewerResource(api_key=KEY, base_url=standin.base_url, timeout_s=10.0)
    pipeline.resources = lambda: {**base(), "image_reviewer": reviewer}


@dataclass(frozen=True)
class Run:
    """What one run materialized, the batch step it observed (None when it materialized), and its log."""

    materialized: list[str]
    step: str | None
    log: str

    @property
    def did(self) -> tuple[list[str], str | None]:
        return self.materialized, self.step


def run(pipeline: Pipeline, partition: str, config: dict | None = None) -> Run:
    """One `product_images_job` run of the partition (images, then their reviews)."""
    run_config = {"ops": {"product_images": {"config": config}}} if config else {}
    result = pipeline._run(["product_images", "image_reviews"], partition, run_config)
    assert result.success, failure(result)
    keys = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
    log = "\n".join(r.user_message for r in pipeline.instance.all_logs(result.run_id))
    return Run(sorted(keys), _observed_action(result), log)


def _observed_action(result) -> str | None:
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            return event.event_specific_data.asset_observation.metadata["batch_action"].value
    return None


BOTH = ["image_reviews", "product_images"]


def submit_and_ingest(pipeline: Pipeline, standin: StandInProcess, partition: str, **config: Any) -> None:
    """A run that submits, then the run that ingests the finished batch (and reviews what it stored)."""
    assert run(pipeline, partition, config).did == ([], "submitted")
    wait_terminal(standin, job(pipeline, partition)["batch_id"])
    assert run(pipeline, partition, config).materialized == BOTH


def submitted_prompts(standin: StandInProcess, batch_id: str) -> dict[str, str]:
    """The prompt of each line of a batch's input file (as the Batch API received it), by custom_id."""
    client = sdk(standin)
    data = client.files.content(client.batches.retrieve(batch_id).input_file_id).text
    lines = [json.loads(raw) for raw in data.splitlines() if raw.strip()]
    return {line["custom_id"]: line["body"]["prompt"] for line in lines}


def lines_by_product(pipeline: Pipeline, standin: StandInProcess, partition: str) -> dict[str, str]:
    """The product and prompt of every line of the partition's current batch."""
    record = job(pipeline, partition)
    prompts = submitted_prompts(standin, record["batch_id"])
    assert set(prompts) == set(record["lines"])
    return {meta["product_id"]: prompts[cid] for cid, meta in record["lines"].items()}


def retake_prompt(pipeline: Pipeline, partition: str, order: RetakeOrder) -> str:
    product = {p["id"]: p for p in state.read_batch_products(pipeline.store, partition)}[order.product_id]
    return order.prompt_for(build_prompt(product))


def reviews(pipeline: Pipeline, partition: str) -> dict[str, dict[str, Any]]:
    return state.read_reviews(pipeline.store, partition)


def rejected(pipeline: Pipeline, partition: str) -> list[str]:
    return sorted(p for p, r in reviews(pipeline, partition).items() if not r["review"]["approved"])


def billed(standin: StandInProcess) -> dict[str, int]:
    stats = standin.stats()
    assert stats["images_billed_sync"] == 0
    return {pid: n["batch"] for pid, n in stats["billed_products"].items()}


def test_images_rejected_in_review_are_retaken_through_the_next_batch(
    pipeline: Pipeline, standin: StandInProcess
) -> None:
    """20 products, 2 judged wrong: the next submission has exactly their 2 retake lines; a rerun while it is
    in flight submits nothing; the ingest stores the retakes, which are reviewed afresh; then nothing more."""
    (partition,) = catalog(pipeline, products(20))
    wrong = ["PROD-000004", "PROD-000013"]
    use_batch_mode(pipeline, standin)
    standin.configure(review_reject=wrong, review_reject_times=1, review_reject_issue="multiple_products")
    submit_and_ingest(pipeline, standin, partition)
    assert rejected(pipeline, partition) == wrong
    first_takes = {pid: pipeline.store.head(image_key(pid)) for pid in wrong}

    standin.configure(batch_hold=True)  # in flight until released below
    retake_run = run(pipeline, partition)
    assert retake_run.did == ([], "submitted")
    assert "with 2 images (round 1; 2 retakes of images rejected in review)" in retake_run.log
    orders = {pid: RetakeOrder(pid, "retake", 1, ("multiple_products",), "review") for pid in wrong}
    assert lines_by_product(pipeline, standin, partition) == {
        pid: retake_prompt(pipeline, partition, order) for pid, order in orders.items()
    }
    assert run(pipeline, partition).did == ([], "in_flight")
    assert standin.stats()["endpoints"]["batches.create"] == 2
    standin.configure(batch_hold=False)
    wait_terminal(standin, job(pipeline, partition)["batch_id"])
    assert run(pipeline, partition).materialized == BOTH

    assert billed(standin) == {f"PROD-{i:06d}": 1 for i in range(20)} | dict.fromkeys(wrong, 2)
    assert standin.stats()["images_billed_batch"] == 22
    outcomes, generator = state.read_outcomes(pipeline.store, partition), pipeline.generator
    for pid in wrong:
        head = pipeline.store.head(image_key(pid))
        expected = fingerprint(retake_prompt(pipeline, partition, orders[pid]), generator.model,
                               generator.size, generator.quality)  # fmt: skip
        assert head.sha256 != first_takes[pid].sha256
        assert head.metadata["fingerprint"] == expected and outcomes[pid]["prompt_fingerprint"] == expected
        assert head.metadata["base-fingerprint"] == first_takes[pid].metadata["fingerprint"]
        assert head.metadata["retakes"] == "1" and outcomes[pid]["retakes"] == 1
        assert (outcomes[pid]["outcome"], outcomes[pid]["attempts"]) == ("generated", 1)
        assert reviews(pipeline, partition)[pid]["image_sha256"] == head.sha256  # the retake was reviewed
    assert rejected(pipeline, partition) == []
    assert standin.stats()["reviews"]["requests"] == 22

    assert run(pipeline, partition).materialized == BOTH  # every image approved: nothing to submit
    stats = standin.stats()
    assert stats["endpoints"]["batches.create"] == 2 and stats["images_billed_batch"] == 22
    assert stats["reviews"]["requests"] == 22
    assert {r["outcome"] for r in state.read_outcomes(pipeline.store, partition).values()} == {"skipped"}


def test_a_persons_rejection_is_retaken_in_batch_mode(pipeline: Pipeline, standin: StandInProcess) -> None:
    (partition,) = catalog(pipeline, products(5))
    use_batch_mode(pipeline, standin)
    submit_and_ingest(pipeline, standin, partition)
    pid, reason = "PROD-000002", "shows two bottles"
    env = {"store": LocalImageStoreResource(root=str(pipeline.store_dir))}
    assert run_rejection(pid, reason, env_resources=env, out=io.StringIO()) == 0

    submit_and_ingest(pipeline, standin, partition)
    order = RetakeOrder(pid, "retake", 1, ("other",), "person", reason)
    record = job(pipeline, partition)
    (batch_id,) = set(record["batches"])
    assert list(submitted_prompts(standin, batch_id).values()) == [retake_prompt(pipeline, partition, order)]
    assert billed(standin) == {f"PROD-{i:06d}": 1 for i in range(5)} | {pid: 2}
    assert pipeline.store.head(image_key(pid)).metadata["retakes"] == "1"
    assert run(pipeline, partition).materialized == BOTH  # the rejection was of the replaced image
    assert standin.stats()["endpoints"]["batches.create"] == 2


@pytest.mark.parametrize(("after", "source"), [("fallback", "fallback"), ("keep", "generated")])
def test_after_the_last_retake_the_card_is_stored_without_a_submission(
    pipeline: Pipeline, standin: StandInProcess, after: str, source: str
) -> None:
    (partition,) = catalog(pipeline, products(4))
    wrong = "PROD-000001"
    use_batch_mode(pipeline, standin)
    standin.configure(review_reject=[wrong])  # every review of it rejects: the retake does not fix it
    config = {"max_retakes": 1, "after_retakes": after}
    submit_and_ingest(pipeline, standin, partition, **config)
    submit_and_ingest(pipeline, standin, partition, **config)  # the one retake
    assert rejected(pipeline, partition) == [wrong]
    assert standin.stats()["endpoints"]["batches.create"] == 2

    for _ in range(2):  # retakes used up: the card (or the kept image) in one run, no line; then nothing
        assert run(pipeline, partition, config).materialized == BOTH
    stats = standin.stats()
    assert stats["endpoints"]["batches.create"] == 2 and stats["images_billed_batch"] == 5
    head = pipeline.store.head(image_key(wrong))
    assert (head.metadata["source"], head.metadata["retakes"]) == (source, "1")
    assert (head.metadata["model"] == OFFLINE_MODEL) == (after == "fallback")
    row = state.read_outcomes(pipeline.store, partition)[wrong]
    assert (row["source"], row["attempts"]) == (source, 0)
    assert rejected(pipeline, partition) == ([] if after == "fallback" else [wrong])


class CreateDied(BaseException):
    """Not an `Exception`: a worker killed after `batches.create` answered, before its id was recorded."""


def test_a_retake_submission_that_died_before_recording_its_id_is_found_and_ingested_as_the_retake(
    pipeline: Pipeline, standin: StandInProcess
) -> None:
    (partition,) = catalog(pipeline, products(3))
    pid = "PROD-000000"
    use_batch_mode(pipeline, standin)
    standin.configure(review_reject=[pid], review_reject_times=1)
    submit_and_ingest(pipeline, standin, partition)

    def died(batch: Any) -> None:
        raise CreateDied(batch.id)

    store = pipeline.store
    orders = retake_orders(state.read_outcomes(store, partition), reviews(pipeline, partition),
                           state.read_rejections(store), max_retakes=1)  # fmt: skip
    generator = pipeline.generator.get_client()
    processor = BatchProcessor(generator=generator, fallback=OfflineCardGenerator(), store=store,
                               coordinator=pipeline.resources()["coordination"].get_client(), run_id="died")  # fmt: skip
    with pytest.raises(CreateDied):
        BatchPartition(partition=partition, generator=generator, processor=processor, store=store,
                       products=state.read_batch_products(store, partition), retakes=orders,
                       after_create=died).advance()  # fmt: skip
    record = job(pipeline, partition)
    assert record["status"] == "intent" and [m["product_id"] for m in record["lines"].values()] == [pid]

    rerun = run(pipeline, partition)  # finds the batch by its metadata instead of creating another
    assert rerun.materialized in ([], BOTH)
    if not rerun.materialized:
        wait_terminal(standin, job(pipeline, partition)["batch_id"])
        assert run(pipeline, partition).materialized == BOTH
    assert standin.stats()["endpoints"]["batches.create"] == 2
    assert billed(standin) == {f"PROD-{i:06d}": 1 for i in range(3)} | {pid: 2}
    head = store.head(image_key(pid))
    assert (
        head.metadata["retakes"] == "1" and head.metadata["base-fingerprint"] != head.metadata["fingerprint"]
    )
    assert state.read_outcomes(store, partition)[pid]["retakes"] == 1
