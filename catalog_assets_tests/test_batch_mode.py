"""Batch mode (`CATALOG_GENERATION_MODE=batch`): the mode chosen in one place, batch prices, and the Batch API
flow through the real `openai` SDK against the stand-in over HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis
from dagster import AssetKey, build_sensor_context

from catalog_assets import state
from catalog_assets.batch_mode import TERMINAL, BatchPartition, classify_line, read_job
from catalog_assets.batch_sensor import batch_requests, build_batch_images_sensor, poll_interval
from catalog_assets.costs import price_per_image
from catalog_assets.definitions import resources_for_environment
from catalog_assets.dryrun import BatchPlan, RunPlan, format_plan
from catalog_assets.errors import ErrorClass
from catalog_assets.generation import BatchProcessor
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets.resources.redis_coordination import RedisCoordinationResource
from catalog_assets.resources.s3_store import S3ImageStoreResource
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.standin import StandInProcess
from catalog_assets_tests.conftest import Pipeline, write_catalog
from catalog_assets_tests.support import delete_prefix

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("model", "quality", "size"),
    [
        ("gpt-image-2", "medium", "1024x1024"),
        ("gpt-image-1-mini", "high", "1536x1024"),
        ("gpt-image-2", "auto", "auto"),
    ],
)
def test_batch_prices_are_half_the_sync_prices(model: str, quality: str, size: str) -> None:
    sync = price_per_image(model, quality, size)
    assert sync is not None and sync > 0
    assert price_per_image(model, quality, size, mode="batch") == pytest.approx(sync * 0.5)
    assert price_per_image("no-such-model", quality, size, mode="batch") is None


@pytest.mark.parametrize(
    ("value", "mode"), [(None, "sync"), ("sync", "sync"), ("batch", "batch"), (" Batch ", "batch")]
)
def test_the_mode_is_chosen_in_one_place(value: str | None, mode: str) -> None:
    env = {"OPENAI_API_KEY": "sk-test", **({"CATALOG_GENERATION_MODE": value} if value is not None else {})}
    generator = resources_for_environment(env)["image_generator"]
    assert generator.generation_mode == mode
    field = type(generator).model_fields["generation_mode"]
    assert "CATALOG_GENERATION_MODE" in (field.description or "")


def test_a_bad_mode_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="CATALOG_GENERATION_MODE must be 'sync' or 'batch', not 'fast'"):
        resources_for_environment({"OPENAI_API_KEY": "sk-test", "CATALOG_GENERATION_MODE": "fast"})


def test_the_dry_run_prices_both_modes() -> None:
    plan = RunPlan(
        catalog="c.json", rows_read=200, quarantined=0, model="gpt-image-2", size="1024x1024", quality="medium",
        paid=True, price_per_image_usd=0.042, images_per_minute=None, max_calls_per_product=4, store="s",
        batch_price_per_image_usd=0.021, generation_mode="batch",
    )  # fmt: skip
    plan.batches.append(
        BatchPlan(partition="batch-0000", products=200, stored=0, imported=0, outdated=0, fallback=0)
    )
    out = format_plan(plan)
    assert "$0.042 per image" in out and "$0.021 through the Batch API" in out and "mode batch" in out
    assert (
        "Batch API (CATALOG_GENERATION_MODE=batch, done within 24 h): estimated cost $4.20; synchronously: $8.40."
        in out
    )


# --- the Batch API flow, end to end against the stand-in -------------------------------------------------

KEY = "sk-test-standin-batch-77a1"
SMALL = "256x256"
MADE = {"generated", "refined", "fallback"}


@pytest.fixture(scope="module")
def standin_process() -> Iterator[StandInProcess]:
    with StandInProcess(["--api-key", KEY]) as process:
        yield process


@pytest.fixture
def standin(standin_process: StandInProcess) -> StandInProcess:
    standin_process.reset(config=True)
    standin_process.configure(batch_delay_s=0.01)
    return standin_process


def batch_generator(standin: StandInProcess, **settings: Any) -> OpenAIImageGeneratorResource:
    defaults = {"api_key": KEY, "base_url": standin.base_url, "timeout_s": 10.0, "images_per_minute": None,
                "size": SMALL, "generation_mode": "batch"}  # fmt: skip
    return OpenAIImageGeneratorResource(**{**defaults, **settings})


def sdk(standin: StandInProcess) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=standin.base_url, max_retries=0, timeout=30)


def catalog(pipeline: Pipeline, products: list[dict], batch_size: int = 100) -> list[str]:
    assert pipeline.catalog(write_catalog(pipeline.root / "catalog.json", products), batch_size).success
    return pipeline.partitions()


def products(n: int, odd: dict[int, str] | None = None) -> list[dict]:
    names = {i: f"Ceramic Mug No. {i}" for i in range(n)} | (odd or {})
    return [{"id": f"PROD-{i:06d}", "name": names[i], "category": "Kitchen"} for i in range(n)]


def job(pipeline: Pipeline, partition: str) -> dict[str, Any]:
    return read_job(pipeline.store, partition)


def wait_terminal(standin: StandInProcess, batch_id: str, limit_s: float = 120.0) -> Any:
    client, deadline = sdk(standin), time.monotonic() + limit_s
    while (batch := client.batches.retrieve(batch_id)).status not in TERMINAL:
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status}"
        time.sleep(0.1)
    return batch


def materialized(result) -> int:
    return len(result.get_asset_materialization_events())


def failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            return event.step_failure_data.error.message
    return ""


def tick(pipeline: Pipeline, cursor: str | None = None) -> Any:
    sensor = build_batch_images_sensor()
    resources = {k: v for k, v in pipeline.resources().items() if k in ("store", "image_generator")}
    with build_sensor_context(
        instance=pipeline.instance, cursor=cursor, resources=resources, sensor_name=sensor.name
    ) as context:
        return sensor(context)


def drive(pipeline: Pipeline, standin: StandInProcess, partitions: list[str], rounds: int = 6) -> list[str]:
    """Submit every partition, then tick the sensor and run what it requests until all are materialized;
    returns the run keys the sensor requested."""
    for partition in partitions:
        result = pipeline.images(partition)
        assert result.success and materialized(result) == 0, failure(result)
    run_keys, cursor, done = [], None, set()
    for _ in range(rounds):
        for partition in sorted(set(partitions) - done):
            wait_terminal(standin, job(pipeline, partition)["batch_id"])
        answer = tick(pipeline, cursor)
        cursor = answer.cursor
        for request in answer.run_requests:
            assert request.tags["catalog/batch"] == "ingest"
            assert request.run_key == job(pipeline, request.partition_key)["batch_id"]
            run_keys.append(request.run_key)
            result = pipeline.images(request.partition_key)
            assert result.success, failure(result)
            if materialized(result):
                done.add(request.partition_key)
        if done == set(partitions):
            return run_keys
    raise AssertionError(f"not every partition was ingested: {sorted(set(partitions) - done)}")


def test_a_catalog_through_the_batch_api(pipeline: Pipeline, standin: StandInProcess) -> None:
    """150 products in two partitions: refusals are refined or resubmitted, every product ends with an image,
    the stand-in bills batch images only, each product once, at half the sync price."""
    standin.configure(moderation_words=["knife", "zebra"], batch_faults={"server_error": 0.1},
                      first_attempt_only=True)  # fmt: skip
    odd = {3: "Chef Knife Block", 7: "Zebra Print Cushion", 120: "Paring Knife"}
    partitions = catalog(pipeline, products(150, odd), batch_size=100)
    assert partitions == ["batch-0000", "batch-0001"]
    pipeline.generator = batch_generator(standin)
    run_keys = drive(pipeline, standin, partitions)

    rows = {}
    for partition in partitions:
        data = pipeline.store.get_json(f"state/outcomes/{partition}.json")
        rows |= {r["product_id"]: r for r in data["results"]}
        assert job(pipeline, partition)["status"] == "done"
    assert len(rows) == 150 and {r["outcome"] for r in rows.values()} <= MADE
    assert rows["PROD-000003"]["outcome"] == rows["PROD-000120"]["outcome"] == "refined"
    assert rows["PROD-000007"]["outcome"] == "fallback"  # "zebra" is what the product is: refused twice
    stored = {o.key for o in pipeline.store.list("images/")}
    assert all(f"images/{pid}.jpg" in stored for pid in rows)
    stats = standin.stats()
    paid = [pid for pid, r in rows.items() if r["outcome"] != "fallback"]
    assert stats["images_billed_sync"] == 0 and stats["images_billed_batch"] == len(paid) == 149
    assert all(stats["billed_products"][pid] == {"sync": 0, "batch": 1} for pid in paid)
    assert stats["endpoints"]["batches.create"] == len(run_keys)  # one ingest run per batch
    assert len(set(run_keys)) == len(run_keys) >= 4  # each partition resubmitted its refusals once
    sync_price = price_per_image("gpt-image-2", "medium", SMALL)
    events = pipeline.instance.fetch_materializations(AssetKey("product_images"), limit=10).records
    cost = sum(e.asset_materialization.metadata["estimated_cost_usd"].value for e in events)
    assert cost == pytest.approx(0.5 * sync_price * 149, abs=0.01)
    modes = {e.asset_materialization.metadata["generation_mode"].value for e in events}
    assert modes == {"batch"}


def test_reruns_while_a_batch_is_in_flight_submit_nothing(
    pipeline: Pipeline, standin: StandInProcess
) -> None:
    standin.configure(batch_hold=True)  # in flight until released below
    (partition,) = catalog(pipeline, products(12))
    pipeline.generator = batch_generator(standin)
    first = pipeline.images(partition)
    assert first.success and materialized(first) == 0
    batch_id = job(pipeline, partition)["batch_id"]
    again = pipeline.images(partition)
    assert again.success and materialized(again) == 0
    observed = [e for e in again.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    (observation,) = observed
    metadata = observation.event_specific_data.asset_observation.metadata
    assert metadata["batch_action"].value == "in_flight" and metadata["batch_id"].value == batch_id
    first_tick = tick(pipeline)
    assert not first_tick.run_requests  # not finished yet: nothing to ingest
    polls = standin.stats()["endpoints"]["batches.retrieve"]
    assert not tick(pipeline, first_tick.cursor).run_requests  # polled just now: backs off, no request
    assert standin.stats()["endpoints"]["batches.retrieve"] == polls
    assert standin.stats()["endpoints"]["batches.create"] == 1
    assert standin.stats()["endpoints"]["files.create"] == 1
    standin.configure(batch_hold=False)
    wait_terminal(standin, batch_id)
    (request,) = tick(pipeline).run_requests
    assert request.run_key == batch_id and request.partition_key == partition
    assert materialized(pipeline.images(partition)) == 1
    assert standin.stats()["images_billed_batch"] == 12
    done = pipeline.images(partition)  # a finished partition again: everything is stored, nothing is sent
    assert done.success and materialized(done) == 1
    rows = pipeline.store.get_json(f"state/outcomes/{partition}.json")["results"]
    assert {r["outcome"] for r in rows} == {"skipped"}
    assert standin.stats()["endpoints"]["batches.create"] == 1


KILLED_SUBMIT = """
import os, signal, sys
from catalog_assets import state
from catalog_assets.batch_mode import BatchPartition
from catalog_assets.generation import BatchProcessor
from catalog_assets.resources.local_coordination import LocalCoordinator
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.openai_images import OpenAIImageGenerator
from catalog_assets.resources.store import LocalImageStore

base_url, key, root, locks, partition = sys.argv[1:]
generator = OpenAIImageGenerator(api_key=key, base_url=base_url, size="256x256", generation_mode="batch")
store = LocalImageStore(root)
processor = BatchProcessor(generator=generator, fallback=OfflineCardGenerator(), store=store,
                           coordinator=LocalCoordinator(locks), run_id="killed")


def killed(batch):
    print(batch.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # after batches.create answered, before its id is recorded


BatchPartition(partition=partition, generator=generator, processor=processor, store=store,
               products=state.read_batch_products(store, partition), after_create=killed).advance()
"""


def test_a_kill_between_create_and_recording_the_id_makes_no_second_batch(
    pipeline: Pipeline, standin: StandInProcess
) -> None:
    (partition,) = catalog(pipeline, products(8))
    args = [standin.base_url, KEY, str(pipeline.store_dir), str(pipeline.root / "locks"), partition]
    done = subprocess.run([sys.executable, "-c", KILLED_SUBMIT, *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr
    batch_id = done.stdout.strip()
    record = job(pipeline, partition)
    assert record["status"] == "intent" and "batch_id" not in record and len(record["lines"]) == 8
    pipeline.generator = batch_generator(standin)
    rerun = pipeline.images(partition)  # finds the batch by its metadata instead of creating another
    assert rerun.success, failure(rerun)
    assert job(pipeline, partition)["batches"] == [batch_id]
    assert standin.stats()["endpoints"]["batches.create"] == 1
    if not materialized(rerun):  # still in flight at the rerun: the next run ingests it
        wait_terminal(standin, batch_id)
        assert materialized(pipeline.images(partition)) == 1
    stats = standin.stats()
    assert stats["endpoints"]["batches.create"] == 1 and stats["images_billed_batch"] == 8
    rows = pipeline.store.get_json(f"state/outcomes/{partition}.json")["results"]
    assert [(r["outcome"], r["attempts"]) for r in rows] == [("generated", 1)] * 8  # the found batch's round


def test_a_model_the_batch_api_refuses_ends_in_one_clear_message(
    pipeline: Pipeline, standin: StandInProcess
) -> None:
    standin.configure(batch_unsupported_models=["gpt-image-2"])
    (partition,) = catalog(pipeline, products(5))
    pipeline.generator = batch_generator(standin)
    assert pipeline.images(partition).success  # submitted; the Batch API validates it afterwards
    wait_terminal(standin, job(pipeline, partition)["batch_id"])
    for _ in range(2):  # the rerun does not send the same refused file again
        result = pipeline.images(partition)
        assert not result.success
        message = failure(result)
        assert "the Batch API refused image model 'gpt-image-2'" in message
        assert "CATALOG_GENERATION_MODE=sync" in message and "`model`" in message
    assert standin.stats()["endpoints"]["batches.create"] == 1
    pipeline.generator = batch_generator(standin, generation_mode="sync")  # the remedy it names
    result = pipeline.images(partition)
    assert result.success and materialized(result) == 1
    stats = standin.stats()
    assert (stats["images_billed_sync"], stats["images_billed_batch"]) == (5, 0)


def test_an_expired_batch_resubmits_its_unfinished_lines(pipeline: Pipeline, standin: StandInProcess) -> None:
    standin.configure(batch_expire_after_lines=4)
    (partition,) = catalog(pipeline, products(10))
    pipeline.generator = batch_generator(standin)
    assert pipeline.images(partition).success
    first = wait_terminal(standin, job(pipeline, partition)["batch_id"])
    assert first.status == "expired"
    standin.configure(batch_expire_after_lines=None)
    ingest = pipeline.images(partition)  # stores 4, resubmits the 6 the expiry left
    assert ingest.success and materialized(ingest) == 0
    record = job(pipeline, partition)
    assert record["batch_id"] != first.id and len(record["lines"]) == 6
    assert len(list(pipeline.store.list("images/"))) == 4
    wait_terminal(standin, record["batch_id"])
    assert materialized(pipeline.images(partition)) == 1
    rows = pipeline.store.get_json(f"state/outcomes/{partition}.json")["results"]
    assert {r["outcome"] for r in rows} == {"generated"}
    assert standin.stats()["images_billed_batch"] == 10


def test_the_poll_interval_grows_with_age() -> None:
    assert [poll_interval(age) for age in (0, 600, 3600, 86400)] == [30.0, 60.0, 360.0, 600.0]


class WorkerKilled(BaseException):
    """Not an `Exception`: nothing in the pipeline catches it, as nothing survives a SIGKILL."""


class CrashingStore(LocalImageStore):
    """The local store, dying after `images` image writes (a worker killed in the middle of an ingest)."""

    def __init__(self, root: Path, images: int) -> None:
        super().__init__(root)
        self.left = images

    def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
        if key.startswith("images/"):
            if self.left == 0:
                raise WorkerKilled(key)
            self.left -= 1
        return super().put(key, data, **kwargs)


def test_an_ingest_killed_half_way_is_finished_by_the_next_run(
    pipeline: Pipeline, standin: StandInProcess
) -> None:
    (partition,) = catalog(pipeline, products(10))
    pipeline.generator = batch_generator(standin)
    assert pipeline.images(partition).success
    batch_id = job(pipeline, partition)["batch_id"]
    wait_terminal(standin, batch_id)
    generator = pipeline.generator.get_client()
    store = CrashingStore(pipeline.store_dir, images=5)
    processor = BatchProcessor(generator=generator, fallback=OfflineCardGenerator(), store=store,
                               coordinator=pipeline.resources()["coordination"].get_client(), run_id="killed")  # fmt: skip
    ingest = BatchPartition(partition=partition, generator=generator, processor=processor, store=store,
                            products=state.read_batch_products(store, partition))  # fmt: skip
    with pytest.raises(WorkerKilled):
        ingest.advance()
    assert (
        len(list(pipeline.store.list("images/"))) == 5 and job(pipeline, partition)["status"] == "submitted"
    )
    again = pipeline.images(partition)  # the sensor's request after the restart
    assert again.success and materialized(again) == 1, failure(again)
    rows = pipeline.store.get_json(f"state/outcomes/{partition}.json")["results"]
    assert len(rows) == 10 and {r["outcome"] for r in rows} == {"generated"}
    stats = standin.stats()
    assert stats["endpoints"]["batches.create"] == 1 and stats["images_billed_batch"] == 10
    assert stats["images_billed_sync"] == 0


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "moderation_blocked", ErrorClass.CONTENT_POLICY),
        (400, "content_policy_violation", ErrorClass.CONTENT_POLICY),
        (500, "server_error", ErrorClass.TRANSIENT),
        (429, "rate_limit_exceeded", ErrorClass.RATE_LIMITED),
        (429, "insufficient_quota", ErrorClass.QUOTA_EXHAUSTED),
        (400, "invalid_value", ErrorClass.BAD_REQUEST),
    ],
)
def test_refused_lines_go_through_the_one_classifier(status: int, code: str, expected: ErrorClass) -> None:
    error = classify_line(
        status, {"message": "no", "type": "invalid_request_error", "param": None, "code": code}
    )
    assert error.error_class is expected and error.status_code == status


def test_the_budget_counts_submitted_lines(pipeline: Pipeline, standin: StandInProcess) -> None:
    (partition,) = catalog(pipeline, products(5))
    pipeline.generator = batch_generator(standin)
    assert pipeline.images(partition, {"max_images": 3}).success
    record = job(pipeline, partition)
    assert len(record["lines"]) == 3
    wait_terminal(standin, record["batch_id"])
    ingest = pipeline.images(partition, {"max_images": 3})  # stores 3, submits the other 2 in its own budget
    assert ingest.success and materialized(ingest) == 0
    assert len(job(pipeline, partition)["lines"]) == 2
    wait_terminal(standin, job(pipeline, partition)["batch_id"])
    assert materialized(pipeline.images(partition, {"max_images": 3})) == 1
    assert standin.stats()["images_billed_batch"] == 5


def test_a_cancelled_batch_resubmits_its_unprocessed_lines(
    pipeline: Pipeline, standin: StandInProcess
) -> None:
    standin.configure(batch_line_delay_s=0.2)
    (partition,) = catalog(pipeline, products(20))
    pipeline.generator = batch_generator(standin)
    assert pipeline.images(partition).success
    client, batch_id = sdk(standin), job(pipeline, partition)["batch_id"]
    deadline = time.monotonic() + 60
    while client.batches.retrieve(batch_id).request_counts.completed < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.batches.cancel(batch_id)
    cancelled = wait_terminal(standin, batch_id)
    assert cancelled.status == "cancelled" and cancelled.request_counts.completed < 20
    standin.configure(batch_line_delay_s=0.0)
    ingest = pipeline.images(partition)
    assert ingest.success and materialized(ingest) == 0
    assert len(job(pipeline, partition)["lines"]) == 20 - cancelled.request_counts.completed
    wait_terminal(standin, job(pipeline, partition)["batch_id"])
    assert materialized(pipeline.images(partition)) == 1
    rows = pipeline.store.get_json(f"state/outcomes/{partition}.json")["results"]
    assert len(rows) == 20 and {r["outcome"] for r in rows} == {"generated"}
    assert standin.stats()["images_billed_batch"] == 20


def test_batch_mode_with_the_s3_store_and_redis_coordination(
    pipeline: Pipeline, standin: StandInProcess, s3_bucket: str
) -> None:
    """The production forms: job records and images in S3 (moto over HTTP), the partition lock in Redis."""
    prefix = f"test-batch-mode-{uuid.uuid4().hex[:12]}"
    pipeline.generator = batch_generator(standin)
    pipeline.resources = lambda: {
        "image_generator": pipeline.generator,
        "store": S3ImageStoreResource(bucket=s3_bucket, prefix="shop"),
        "coordination": RedisCoordinationResource(redis_url=REDIS_URL, key_prefix=prefix),
    }
    store = pipeline.resources()["store"].get_client()
    try:
        standin.configure(batch_hold=True)  # in flight until released below
        (partition,) = catalog(pipeline, products(10))
        assert materialized(pipeline.images(partition)) == 0
        again = pipeline.images(partition)  # in flight: found in the S3 record, nothing submitted
        assert again.success and materialized(again) == 0
        batch_id = read_job(store, partition)["batch_id"]
        standin.configure(batch_hold=False)
        wait_terminal(standin, batch_id)
        (request,) = tick(pipeline).run_requests
        assert request.run_key == batch_id
        assert materialized(pipeline.images(request.partition_key)) == 1
        keys = {o.key for o in store.list("images/")}
        assert keys == {f"images/PROD-{i:06d}.jpg" for i in range(10)}
        stats = standin.stats()
        assert stats["endpoints"]["batches.create"] == 1 and stats["images_billed_batch"] == 10
    finally:
        delete_prefix(redis.Redis.from_url(REDIS_URL), prefix)


def test_the_sensor_requests_a_run_for_a_submission_that_died_before_recording_its_id() -> None:
    now = time.time()
    stale = {
        "partition": "batch-0003",
        "status": "intent",
        "content_hash": "ab" * 32,
        "intent_at_ts": now - 900,
    }
    fresh = {
        "partition": "batch-0004",
        "status": "intent",
        "content_hash": "cd" * 32,
        "intent_at_ts": now - 5,
    }
    done = {"partition": "batch-0005", "status": "done", "batch_id": "batch_x"}
    requests, polled, _ = batch_requests([stale, fresh, done], client=None, polled={}, now=now)
    assert [(r.partition_key, r.run_key, r.tags["catalog/batch"]) for r in requests] == [
        ("batch-0003", f"recover-batch-0003-{'ab' * 8}", "recover")
    ]
    assert polled == {}  # nothing was polled: an intent has no batch id, a finished job is left alone


KILLED_TICK = """
import sys
from dagster import DagsterInstance, build_sensor_context
from catalog_assets.batch_sensor import build_batch_images_sensor
from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets.resources.store import LocalImageStoreResource

base_url, key, root = sys.argv[1:]
sensor = build_batch_images_sensor()
generator = OpenAIImageGeneratorResource(api_key=key, base_url=base_url, size="256x256", generation_mode="batch",
                                         timeout_s=120.0)
resources = {"store": LocalImageStoreResource(root=root), "image_generator": generator}
with DagsterInstance.ephemeral() as instance, build_sensor_context(
    instance=instance, resources=resources, sensor_name=sensor.name
) as context:
    sensor(context)  # its first batches.retrieve hangs: the process is killed inside the tick
"""


def test_a_sensor_tick_killed_while_polling_loses_no_batch_and_bills_nothing_twice(
    pipeline: Pipeline, standin: StandInProcess
) -> None:
    partitions = catalog(pipeline, products(20), batch_size=10)
    assert partitions == ["batch-0000", "batch-0001"]
    pipeline.generator = batch_generator(standin)
    for partition in partitions:
        submitted = pipeline.images(partition)
        assert submitted.success and materialized(submitted) == 0, failure(submitted)
        wait_terminal(standin, job(pipeline, partition)["batch_id"])
    standin.configure(batch_api_faults={"hang": 1.0}, hang_s=120.0)
    tick_process = subprocess.Popen(
        [sys.executable, "-c", KILLED_TICK, standin.base_url, KEY, str(pipeline.store_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not standin.stats(products=False)["faults_injected"].get("batches.retrieve:hang"):
        assert tick_process.poll() is None, tick_process.stderr.read().decode() if tick_process.stderr else ""
        assert time.monotonic() < deadline, "the tick never polled a batch"
        time.sleep(0.05)
    tick_process.kill()  # SIGKILL inside the tick: its cursor and run requests are never committed
    assert tick_process.wait(timeout=30) == -signal.SIGKILL
    standin.configure(batch_api_faults={})

    # after the restart the daemon ticks again from the cursor it last committed (none)
    answer = tick(pipeline)
    requested = sorted((r.partition_key, r.run_key) for r in answer.run_requests)
    assert requested == [(p, job(pipeline, p)["batch_id"]) for p in partitions]
    for partition, _ in requested:
        ingest = pipeline.images(partition)
        assert ingest.success and materialized(ingest) == 1, failure(ingest)
    assert not getattr(tick(pipeline, answer.cursor), "run_requests", None)  # nothing left in flight
    for partition in partitions:  # and a rerun of every partition submits nothing
        rerun = pipeline.images(partition)
        assert rerun.success and materialized(rerun) == 1
    stats = standin.stats()
    assert stats["endpoints"]["batches.create"] == 2 and stats["images_billed_sync"] == 0
    assert stats["images_billed_batch"] == 20
    assert all(billed == {"sync": 0, "batch": 1} for billed in stats["billed_products"].values())
    assert len(stats["billed_products"]) == 20
    stored = {o.key for o in pipeline.store.list("images/")}
    assert stored >= {f"images/PROD-{i:06d}.jpg" for i in range(20)}
