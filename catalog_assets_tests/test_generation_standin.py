"""`product_images` against the Images API stand-in, through the real `openai` SDK over HTTP: the earlier
attempt's fault mix, content policy, bad key, empty quota, hangs, retired models, budgets and secrecy."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, EnvVar

from catalog_assets.cards import OFFLINE_MODEL
from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets.standin import EARLIER_ATTEMPT_FAULTS, StandInProcess
from catalog_assets.standin.protocol import masked
from catalog_assets_tests.conftest import Pipeline, write_catalog
from catalog_assets_tests.support import generated_catalog, standin_fixtures

KEY = "sk-test-standin-5b7e21d0"
MADE = {"generated", "refined", "fallback"}
# The fault tests are about what happens to calls, not pixels: small images keep 500 products quick.
SMALL = "256x256"


standin_process, standin = standin_fixtures(KEY)


def openai_generator(standin: StandInProcess, **settings: Any) -> OpenAIImageGeneratorResource:
    defaults = {"api_key": KEY, "base_url": standin.base_url, "timeout_s": 5.0, "images_per_minute": None}
    return OpenAIImageGeneratorResource(**{**defaults, **settings})


def failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            return event.step_failure_data.error.message
    return ""


def outcomes(pipeline: Pipeline, partition: str = "batch-0000") -> dict[str, dict[str, Any]]:
    data = pipeline.store.get_json(f"state/outcomes/{partition}.json", default={}) or {}
    return {row["product_id"]: row for row in data.get("results", [])}


def manifest(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    return {row["product_id"]: row for row in pipeline.store.get_json("manifests/latest.json")["rows"]}


def calls_by_product(standin: StandInProcess) -> dict[str, list[dict[str, Any]]]:
    return {pid: p["calls"] for pid, p in standin.stats()["products"].items()}


def stored_images(pipeline: Pipeline) -> set[str]:
    return {o.key for o in pipeline.store.list("images/")}


def small_catalog(pipeline: Pipeline, count: int) -> None:
    products = [
        {"id": f"PROD-{n:06d}", "name": f"Ceramic Mug No. {n}", "category": "Kitchen"} for n in range(count)
    ]
    assert pipeline.catalog(write_catalog(pipeline.root / "catalog.json", products)).success


# --- the earlier attempt's failures, at scale ------------------------------------------------------------


def test_the_earlier_attempts_fault_mix_over_500_products(pipeline: Pipeline, standin) -> None:
    """22% of first attempts fail (42% rate limit, 31% moderation, 18% hang, 9% 500): all 500 end with an
    image, none is lost, no product costs more than 4 calls, and none is called again once it succeeded."""
    standin.configure(
        faults=dict(EARLIER_ATTEMPT_FAULTS),
        first_attempt_only=True,
        latency_s=0.02,
        hang_s=3.0,
        fault_retry_after_s=0.05,
        seed=7,
    )
    catalog = generated_catalog(pipeline.root / "catalog.json", 500)
    assert pipeline.catalog(catalog, batch_size=100).success
    partitions = pipeline.partitions()
    assert len(partitions) == 5
    pipeline.generator = openai_generator(standin, timeout_s=1.0, size=SMALL)
    config = {"backoff_base_s": 0.05}

    failed = [p for p in partitions if not pipeline.images(p, config).success]
    for _ in range(2):  # a partition may fail (e.g. the breaker); at most two reruns of the failed ones
        failed = [p for p in failed if not pipeline.images(p, config).success]
    assert not failed
    assert pipeline.publish().success

    ids = {f"PROD-{n:06d}" for n in range(1, 501)}
    rows = manifest(pipeline)
    assert set(rows) == ids  # none lost
    assert {row["source"] for row in rows.values()} <= MADE
    final = {pid: row for p in partitions for pid, row in outcomes(pipeline, p).items()}
    assert set(final) == ids and not [r for r in final.values() if r["outcome"] == "failed"]
    assert stored_images(pipeline) == {f"images/{pid}.jpg" for pid in ids}

    stats = standin.stats()
    assert stats["unattributed"] == 0
    assert set(stats["faults_injected"]) == {"rate_limit", "moderation_blocked", "hang", "server_error"}
    first_failed = sum(stats["faults_injected"].values())
    assert 0.16 * 500 <= first_failed <= 0.28 * 500  # the mix really was ~22% of first attempts
    calls = calls_by_product(standin)
    assert set(calls) == ids
    for pid, product_calls in calls.items():
        assert len(product_calls) <= 4, (pid, product_calls)
        ok = [c for c in product_calls if c["status"] == 200]
        assert len(ok) == 1, (pid, product_calls)  # paid once
        assert all(c["t_start"] <= ok[0]["t_end"] for c in product_calls), (pid, product_calls)
        # a first call refused by moderation is refined; everything else ends generated
        expected = "refined" if product_calls[0]["outcome"] == "moderation_blocked" else "generated"
        assert rows[pid]["source"] == expected, (pid, product_calls)


# --- content policy ---------------------------------------------------------------------------------------


def test_content_policy_refusals_are_refined_then_fall_back(pipeline: Pipeline, standin) -> None:
    # Words the stand-in always refuses: "knife", "kids" and the brand "Acme" are gone from the refined
    # prompt; "zebra" is part of what the product is, so the refined prompt is refused too.
    standin.configure(moderation_words=["knife", "kids", "acme", "zebra"])
    products = [
        {"id": "P-KNIFE", "name": "Chef Knife Block", "category": "Kitchen"},
        {"id": "P-KIDS", "name": "Kids Rain Boots", "category": "Shoes", "attributes": {"color": "Yellow"}},
        {"id": "P-BRAND", "name": "Water Bottle", "brand": "Acme", "category": "Sports"},
        {"id": "P-ZEBRA", "name": "Zebra Print Cushion", "category": "Home"},
        {"id": "P-PLAIN", "name": "Ceramic Mug", "category": "Kitchen"},
    ]
    assert pipeline.catalog(write_catalog(pipeline.root / "catalog.json", products)).success
    pipeline.generator = openai_generator(standin, size=SMALL)
    result = pipeline.images("batch-0000")
    assert result.success, failure(result)
    assert pipeline.publish().success

    expected = {"P-KNIFE": "refined", "P-KIDS": "refined", "P-BRAND": "refined", "P-ZEBRA": "fallback"}
    expected["P-PLAIN"] = "generated"
    assert {pid: row["outcome"] for pid, row in outcomes(pipeline).items()} == expected
    rows = manifest(pipeline)
    assert {pid: row["source"] for pid, row in rows.items()} == expected
    assert rows["P-ZEBRA"]["model"] == OFFLINE_MODEL  # the offline card is stored
    assert "images/P-ZEBRA.jpg" in stored_images(pipeline)
    calls = calls_by_product(standin)
    assert [c["outcome"] for c in calls["P-ZEBRA"]] == ["moderation_blocked", "moderation_blocked"]
    for pid in ("P-KNIFE", "P-KIDS", "P-BRAND"):
        assert [c["outcome"] for c in calls[pid]] == ["moderation_blocked", "ok"]
    assert [c["outcome"] for c in calls["P-PLAIN"]] == ["ok"]
    report = pipeline.store.get("reports/generation_report.md").decode()
    assert "**Fallback images (offline product card)**: 1" in report
    assert "**Refined prompts (after a content-policy refusal)**: 3" in report


# --- configuration and account failures -------------------------------------------------------------------


def test_an_invalid_key_fails_the_run_fast_after_one_call(pipeline: Pipeline, standin) -> None:
    small_catalog(pipeline, 40)
    pipeline.generator = openai_generator(standin, api_key="sk-test-WRONG-0000aaaa")
    started = time.monotonic()
    result = pipeline.images("batch-0000")
    elapsed = time.monotonic() - started
    assert not result.success
    assert elapsed < 5.0
    assert "OPENAI_API_KEY" in failure(result)
    assert standin.stats()["requests"] == 1  # the first-call gate: one call, not one per worker
    assert not stored_images(pipeline)


def test_an_exhausted_quota_stops_the_run_after_one_call(pipeline: Pipeline, standin) -> None:
    # A key this process has not used yet: its run's first call goes alone (a key that answered lately
    # skips that gate and risks one call per worker, as in the next test).
    standin.configure(api_key=None, faults={"insufficient_quota": 1.0})
    small_catalog(pipeline, 40)
    pipeline.generator = openai_generator(standin, api_key="sk-test-empty-quota-77e1")
    result = pipeline.images("batch-0000")
    assert not result.success
    assert "quota exhausted" in failure(result) and "billing" in failure(result)
    assert standin.stats()["requests"] == 1
    assert {row["error_class"] for row in outcomes(pipeline).values()} == {"quota_exhausted"}
    assert len(outcomes(pipeline)) == 40 and not stored_images(pipeline)


def test_a_quota_running_out_mid_run_stops_without_a_retry_storm(pipeline: Pipeline, standin) -> None:
    workers = 8
    standin.configure(latency_s=0.1)
    small_catalog(pipeline, 100)
    pipeline.generator = openai_generator(standin, concurrency=workers, size=SMALL)

    def exhaust_after(images: int) -> None:
        deadline = time.monotonic() + 30
        while standin.stats(products=False)["images"] < images and time.monotonic() < deadline:
            time.sleep(0.01)
        standin.configure(faults={"insufficient_quota": 1.0})

    flipper = threading.Thread(target=exhaust_after, args=(25,))
    flipper.start()
    result = pipeline.images("batch-0000")
    flipper.join()
    assert not result.success
    assert "quota exhausted" in failure(result)

    calls = [c for product in calls_by_product(standin).values() for c in product]
    refused = [c for c in calls if c["outcome"] == "insufficient_quota"]
    assert refused
    first_refusal = min(c["t_start"] for c in refused)
    # From the first refusal on: the calls other workers had already started, then nothing
    assert len([c for c in calls if c["t_start"] >= first_refusal]) <= workers
    per_product = {}
    for pid, product in calls_by_product(standin).items():
        per_product[pid] = sum(1 for c in product if c["outcome"] == "insufficient_quota")
    assert max(per_product.values()) == 1  # never retried
    # what was made before stays stored; the rest is recorded as failed, none lost
    final = outcomes(pipeline)
    assert len(final) == 100
    made = {pid for pid, row in final.items() if row["outcome"] == "generated"}
    assert len(made) == sum(1 for c in calls if c["status"] == 200)
    assert stored_images(pipeline) == {f"images/{pid}.jpg" for pid in made}
    assert {row["error_class"] for pid, row in final.items() if pid not in made} == {"quota_exhausted"}


def test_a_hung_request_is_abandoned_at_the_timeout_and_retried(pipeline: Pipeline, standin) -> None:
    timeout = 0.5
    standin.configure(faults={"hang": 1.0}, first_attempt_only=True, hang_s=5.0)
    small_catalog(pipeline, 3)
    pipeline.generator = openai_generator(standin, timeout_s=timeout, size=SMALL)
    result = pipeline.images("batch-0000", {"backoff_base_s": 0.05})
    assert result.success, failure(result)
    assert {row["outcome"] for row in outcomes(pipeline).values()} == {"generated"}
    assert standin.stats()["faults_injected"] == {"hang": 3}
    for pid, calls in calls_by_product(standin).items():
        assert [c["status"] for c in calls] == [None, 200], pid  # the first is still held by the stand-in
        # abandoned at the timeout (the stand-in would have held it 5 s), then retried after a short backoff
        assert timeout <= calls[1]["t_start"] - calls[0]["t_start"] < timeout + 1.0, (pid, calls)
    assert sum(row["calls_total"] for row in outcomes(pipeline).values()) == 6


@pytest.mark.parametrize("model", ["dall-e-3", "gpt-image-1"])
def test_a_retired_model_is_rejected_before_any_call(pipeline: Pipeline, standin, model: str) -> None:
    small_catalog(pipeline, 5)
    pipeline.generator = openai_generator(standin, model=model)
    result = pipeline.images("batch-0000")
    assert not result.success
    assert model in failure(result) and "gpt-image-2" in failure(result)
    assert standin.stats()["requests"] == 0


# --- budget ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "limit", "named"),
    [
        ({"max_images": 5}, 5, "max_images=5"),
        ({"max_cost_usd": 0.1}, 2, "max_cost_usd=0.10"),  # 0.042 per image (gpt-image-2, medium, 1024²)
    ],
)
def test_the_budget_stops_before_it_is_exceeded(pipeline: Pipeline, standin, config, limit, named) -> None:
    standin.configure(latency_s=0.05)
    small_catalog(pipeline, 20)
    pipeline.generator = openai_generator(standin, concurrency=8)
    result = pipeline.images("batch-0000", config)
    assert not result.success
    assert named in failure(result) and "stopping before more calls" in failure(result)
    assert standin.stats()["requests"] <= limit
    assert len(stored_images(pipeline)) == standin.stats()["images"] <= limit
    assert {row["error_class"] for row in outcomes(pipeline).values() if row["outcome"] == "failed"} == {
        "budget"
    }


def test_a_cost_limit_without_a_known_price_fails_clearly(pipeline: Pipeline, standin) -> None:
    small_catalog(pipeline, 5)
    pipeline.generator = openai_generator(standin, model="gpt-image-2.5-sunburst", quality="xhigh")
    result = pipeline.images("batch-0000", {"max_cost_usd": 1.0})
    assert not result.success
    assert "no price estimate" in failure(result) and "max_cost_usd" in failure(result)
    assert standin.stats()["requests"] == 0


# --- secrets --------------------------------------------------------------------------------------------


def test_the_api_key_never_reaches_any_output(workdir: Path, standin, monkeypatch, capfd, caplog) -> None:
    secret = "sk-test-SECRET-4f9c2e"
    leaks = (secret, "SECRET-4f9c2e", masked(secret))
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    # Failures of every kind, so error messages (which may quote the server) reach logs and metadata.
    standin.configure(
        api_key=secret,
        faults=dict(EARLIER_ATTEMPT_FAULTS),
        first_attempt_only=True,
        hang_s=2.0,
        fault_retry_after_s=0.05,
        moderation_words=["zebra"],
    )
    home = workdir / "dagster_home"
    with DagsterInstance.local_temp(str(home)) as instance:  # event log, runs and compute logs on disk
        pipeline = Pipeline(workdir, instance)
        products = [{"id": f"PROD-{n:06d}", "name": f"Zebra Mug {n}"} for n in range(5)]
        products += [{"id": f"PROD-{n:06d}", "name": f"Tea Cup {n}"} for n in range(5, 40)]
        assert pipeline.catalog(write_catalog(workdir / "catalog.json", products), batch_size=20).success
        pipeline.generator = OpenAIImageGeneratorResource(
            api_key=EnvVar("OPENAI_API_KEY"),
            base_url=standin.base_url,
            timeout_s=1.0,
            images_per_minute=None,
            size=SMALL,
        )
        assert pipeline.images("batch-0000", {"backoff_base_s": 0.05}).success
        # The account now rejects the key: the real API echoes part of it in its 401 message.
        standin.configure(api_key="sk-test-another-key-000")
        rejected = pipeline.images("batch-0001")
        assert not rejected.success and "OPENAI_API_KEY" in failure(rejected)
        assert pipeline.publish().success
        runs = instance.get_runs()
        assert len(runs) == 4  # catalog, two batches, publish
    out, err = capfd.readouterr()
    assert out or err  # the console logger wrote something we can check
    for text in (out, err, caplog.text):
        for leak in leaks:
            assert leak not in text
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert any(p.is_relative_to(home) for p in files) and any(p.suffix == ".jpg" for p in files)
    for path in files:
        data = path.read_bytes()
        for leak in leaks:
            assert leak.encode() not in data, f"{leak!r} found in {path}"
