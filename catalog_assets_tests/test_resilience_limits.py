"""Limits a user can rely on: `max_cost_usd` and `max_images` hold for every run even with retries and other
runs going on at once, and an exhausted quota stops every process sharing the account at once.

Every run is a `dagster asset materialize` process (the real CLI and definitions) against the Images API
stand-in over HTTP, coordinated through a private password-protected redis-server. What was paid is counted
at the stand-in: its per-call records (every 200 is an image the account pays for) times the price table's
price, never what the pipeline believes it spent.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType, RunsFilter

from catalog_assets import state
from catalog_assets.costs import price_per_image
from catalog_assets.generation import image_key
from catalog_assets.resources.openai_images import DEFAULT_MODEL, OpenAIImageGenerator
from catalog_assets.resources.redis_coordination import RedisCoordinator
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.standin import StandInProcess
from catalog_assets_tests.conftest import PROJECT
from catalog_assets_tests.dagster_projects import DagsterProject, make_project, tail, wait_for
from catalog_assets_tests.resilience_support import OwnRedis, own_redis_fixture, run_config
from catalog_assets_tests.support import standin_fixtures
from catalog_assets_tests.test_resilience_secrets import Command, materialize, start

pytestmark = pytest.mark.resilience

KEY = "sk-test-limits-2c81f0"
REDIS_PASSWORD = "redis-pw-limits-5e07"
SIZE, QUALITY = "512x512", "medium"  # small images: these tests are about calls and money, not pixels
PRICE = price_per_image(DEFAULT_MODEL, QUALITY, SIZE)
BATCH_SIZE = 30
PARTITIONS = [f"batch-{n:04d}" for n in range(4)]
WORKERS = 4  # products generated at once in each run (`concurrency`)


@dataclass
class Project:
    """A copy of the prepared project (catalog materialized) with its own store, instance and key prefix."""

    cli: DagsterProject
    prefix: str
    commands: list[Command]

    @property
    def store(self) -> LocalImageStore:
        return LocalImageStore(self.cli.root / "store")

    def partition_of(self) -> dict[str, str]:
        """product id -> its batch partition."""
        return {row["id"]: p for p in PARTITIONS for row in state.read_batch_products(self.store, p) or []}

    def coordinator(self) -> RedisCoordinator:
        return RedisCoordinator(self.cli.env["REDIS_URL"], key_prefix=self.prefix)

    def run_config(
        self, images: dict[str, Any], coordination: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # Resource settings go in as run config, as an operator overrides them; the secrets stay env references.
        return run_config(
            "images",
            generator={
                "size": SIZE,
                "quality": QUALITY,
                "timeout_s": 10.0,
                "images_per_minute": 3000,  # shared through Redis, well above what these runs need
            },
            coordination={"key_prefix": self.prefix, **(coordination or {})},
            images={"concurrency": WORKERS, "backoff_base_s": 0.05, **images},
        )

    def start(self, partition: str, config: dict[str, Any]) -> Command:
        command = start(self.cli, partition, materialize("product_images", partition, config))
        self.commands.append(command)
        return command


password_redis = own_redis_fixture(REDIS_PASSWORD)
standin_process, standin = standin_fixtures(KEY)


@pytest.fixture(scope="module")
def template(
    tmp_path_factory: pytest.TempPathFactory, password_redis: OwnRedis, standin_process: StandInProcess
) -> DagsterProject:
    """`product_catalog` materialized once (4 batches of 30 bundled products), copied for each test."""
    root = tmp_path_factory.mktemp("limits") / "template"
    project = make_project(root, products=0)
    rows = json.loads((PROJECT / "data" / "catalog.json").read_text())[: BATCH_SIZE * len(PARTITIONS)]
    (root / "data" / "catalog.json").write_text(json.dumps(rows))
    project.env.update(
        CATALOG_STORE_DIR=str(root / "store"),
        REDIS_URL=password_redis.url,
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=standin_process.base_url,
    )
    config = {
        "ops": {"product_catalog": {"config": {"batch_size": BATCH_SIZE}}},
        "execution": {"config": {"in_process": {}}},
    }
    result = project.materialize("product_catalog", config=config)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    return project


@pytest.fixture
def project(template: DagsterProject, tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    shutil.copytree(template.root, root)
    env = {
        **template.env,
        "DAGSTER_HOME": str(root / "dagster_home"),
        "CATALOG_STORE_DIR": str(root / "store"),
    }
    cli = DagsterProject(root=root, home=root / "dagster_home", env=env)
    made = Project(cli, prefix=f"limits-{uuid.uuid4().hex[:10]}", commands=[])
    yield made
    for command in made.commands:  # a failed assertion must not leave a run calling behind the next test
        command.stop()


# --- what the stand-in saw ------------------------------------------------------------------------------


def calls_by_partition(standin: StandInProcess, project: Project) -> dict[str, list[dict[str, Any]]]:
    """Every generation request per partition, oldest first (times: seconds since the stand-in's reset)."""
    partition_of = project.partition_of()
    calls: dict[str, list[dict[str, Any]]] = {p: [] for p in PARTITIONS}
    for pid, product in standin.stats()["products"].items():
        calls[partition_of[pid]] += [{**call, "product": pid} for call in product["calls"]]
    return {p: sorted(c, key=lambda call: call["t_start"]) for p, c in calls.items()}


def paid(calls: list[dict[str, Any]]) -> int:
    """Images the account pays for: every call the API answered with an image."""
    return sum(1 for call in calls if call["status"] == 200)


def stored(project: Project, partition: str) -> set[str]:
    rows = state.read_batch_products(project.store, partition) or []
    return {row["id"] for row in rows if project.store.head(image_key(row["id"])) is not None}


def step_failure(output: str) -> str:
    """The message the run failed with, as the CLI printed it under its STEP_FAILURE event."""
    found = re.findall(r"^dagster\._core\.definitions\.events\.Failure: (.*)$", output, re.MULTILINE)
    return found[-1] if found else ""


# --- budgets --------------------------------------------------------------------------------------------

#: partition -> product_images config; with $0.042 an image, 0.30 allows 7 images and 0.20 allows 4
LIMITS: dict[str, dict[str, Any]] = {
    "batch-0000": {"max_cost_usd": 0.30},
    "batch-0001": {"max_cost_usd": 0.20},
    "batch-0002": {"max_images": 5},
    "batch-0003": {"max_images": 3},
}


def allowed_images(limit: dict[str, Any]) -> int:
    if "max_images" in limit:
        return limit["max_images"]
    return int(limit["max_cost_usd"] / PRICE + 1e-9)


def test_cost_and_image_limits_hold_across_retries_and_concurrent_runs(
    project: Project, standin: StandInProcess
) -> None:
    assert PRICE == 0.042  # gpt-image-2, medium: what LIMITS is worked out with
    # Any call may fail (not only first attempts): 500s and 429s are retried, refusals refined, so products
    # take several calls while other products' calls are in flight, in four runs at once.
    standin.configure(
        latency_s=0.15,
        latency_jitter_s=0.1,
        faults={"server_error": 0.2, "rate_limit": 0.15, "moderation_blocked": 0.05},
        fault_retry_after_s=0.05,
        seed=3,
    )
    # A short cool-down: an unlucky streak of 500s may open the breaker, which is not what is tested here.
    runs = {
        p: project.start(p, project.run_config(limit, coordination={"breaker_cooldown_s": 1.0}))
        for p, limit in LIMITS.items()
    }
    outputs = {p: run.finish() for p, run in runs.items()}

    calls = calls_by_partition(standin, project)
    stats = standin.stats(products=False)
    summary = {p: f"{paid(c)} paid of {len(c)} calls" for p, c in calls.items()}
    print(f"faults injected {stats['faults_injected']}; {summary}")
    assert stats["unattributed"] == 0
    assert {"server_error", "rate_limit"} & set(stats["faults_injected"]), "no transient fault was injected"
    retried = {p: len(c) - len({call["product"] for call in c}) for p, c in calls.items()}
    assert sum(retried.values()) > 0, "no call was retried, so retries were not tested"
    for partition, limit in LIMITS.items():
        code, output = outputs[partition]
        message = step_failure(output)
        spent = paid(calls[partition]) * PRICE
        assert code != 0, f"{partition} should have stopped at its limit:\n{tail(output)}"
        if "max_cost_usd" in limit:
            assert spent <= limit["max_cost_usd"] + 1e-9, f"{partition} spent ${spent:.3f} > {limit}"
            assert f"max_cost_usd={limit['max_cost_usd']:.2f} would be exceeded" in message, tail(output)
        else:
            assert paid(calls[partition]) <= limit["max_images"], (
                f"{partition}: {summary[partition]}, {limit}"
            )
            assert f"max_images={limit['max_images']} reached" in message, tail(output)
        assert "stopping before more calls" in message
        # Nothing paid for was lost: every image the API made is stored.
        assert len(stored(project, partition)) >= paid(calls[partition])
        failed = state.read_outcomes(project.store, partition)
        assert "budget" in {row["error_class"] for row in failed.values() if row["outcome"] == "failed"}


def test_a_run_stops_at_its_limit_not_before(project: Project, standin: StandInProcess) -> None:
    """A limit stops a run once the paid images reach it, not while calls that may still fail hold the rest:
    a run told "max_images=3 reached" has 3 images. Every first attempt fails here (and every retry
    succeeds), so the calls in flight when the last reservation is taken all fail and are retried."""
    limits = {"batch-0000": {"max_images": 3}, "batch-0001": {"max_cost_usd": 0.13}}  # 3 images each
    standin.configure(latency_s=0.2, faults={"server_error": 1.0}, first_attempt_only=True)
    # The breaker is not what is tested: the runs' first attempts all fail at once.
    coordination = {"breaker_failure_threshold": 100}
    runs = {p: project.start(p, project.run_config(limit, coordination)) for p, limit in limits.items()}
    outputs = {p: run.finish() for p, run in runs.items()}

    calls = calls_by_partition(standin, project)
    for partition, limit in limits.items():
        message = step_failure(outputs[partition][1])
        print(
            f"{partition} {limit}: {paid(calls[partition])} paid of {len(calls[partition])} calls; {message!r}"
        )
    for partition, limit in limits.items():
        code, output = outputs[partition]
        images = paid(calls[partition])
        assert code != 0 and "stopping before more calls" in step_failure(output), tail(output)
        assert images == allowed_images(limit), (
            f"{partition} stopped with {images} of the {allowed_images(limit)} images {limit} allows: "
            f"{step_failure(output)!r}"
        )


def test_a_call_abandoned_at_the_timeout_counts_against_the_budget(
    project: Project, standin: StandInProcess
) -> None:
    """A call the client gives up on at `timeout_s` is still finished, and billed, by the API (the stand-in
    does the same: it renders the image and records a 200 after the client left). The budget must count
    such calls as spent, or retries after timeouts spend past `max_cost_usd`."""
    limit = {"max_cost_usd": 0.42}  # 10 images
    # Half the calls answer after the client's 0.5 s timeout.
    standin.configure(latency_s=0.5, latency_jitter_s=0.4, seed=5)
    config = project.run_config(limit, coordination={"breaker_cooldown_s": 0.5})
    config["resources"]["image_generator"]["config"]["timeout_s"] = 0.5
    code, output = project.start("batch-0000", config).finish()

    calls = calls_by_partition(standin, project)["batch-0000"]
    abandoned = sum(1 for call in calls if call["status"] == 200 and call["t_end"] - call["t_start"] > 0.5)
    spent = paid(calls) * PRICE
    print(
        f"{len(calls)} calls, {paid(calls)} paid (${spent:.3f}), {abandoned} of them after the client's timeout"
    )
    assert code != 0 and "max_cost_usd=0.42 would be exceeded" in step_failure(output), tail(output)
    assert spent <= limit["max_cost_usd"] + 1e-9, (
        f"spent ${spent:.3f} against max_cost_usd={limit['max_cost_usd']}: {abandoned} images were paid "
        "for calls abandoned at the timeout, which the budget released as unspent"
    )


# --- quota exhaustion across processes -----------------------------------------------------------------


def test_an_exhausted_quota_stops_every_process_and_keeps_new_runs_from_calling(
    project: Project, standin: StandInProcess
) -> None:
    cooldown = 120.0  # the breaker stays open for the whole test
    # Slow images: each run is busy for about 15 s, so all three are surely calling when the quota runs out.
    standin.configure(latency_s=2.0)
    config = project.run_config({}, coordination={"breaker_cooldown_s": cooldown})
    working = PARTITIONS[:3]
    runs = {p: project.start(p, config) for p in working}

    def all_calling() -> bool:
        calls = calls_by_partition(standin, project)
        assert all(run.proc.poll() is None for run in runs.values()), "a run ended before the quota ran out"
        return all(paid(calls[p]) >= 1 for p in working)

    wait_for(all_calling, timeout=120, interval=0.1, what="all three runs to have an image")
    standin.configure(faults={"insufficient_quota": 1.0})
    # Read after the switch: a call that began before it returned may still have been answered 200.
    flipped_at = standin.stats(products=False)["uptime_s"]
    outputs = {p: run.finish() for p, run in runs.items()}

    calls = calls_by_partition(standin, project)
    every = sorted((c for p in working for c in calls[p]), key=lambda c: c["t_start"])
    refused = [c for c in every if c["outcome"] == "insufficient_quota"]
    first_refusal = min(c["t_end"] for c in refused)
    after_flip = [c for c in every if c["t_start"] >= flipped_at]
    print(
        f"quota out at {flipped_at:.2f}s: {len(refused)} calls refused, {len(after_flip)} calls after it "
        f"(first refusal {first_refusal:.2f}s, last call {every[-1]['t_start']:.2f}s); "
        + ", ".join(f"{p}: {paid(calls[p])} paid of {len(calls[p])}" for p in working)
    )
    for partition, (code, output) in outputs.items():
        assert code != 0, tail(output)
        message = step_failure(output)
        assert "API quota exhausted" in message and "insufficient_quota" in message, tail(output)
        # Nothing paid for was lost, and every other product is recorded as stopped by the quota.
        assert stored(project, partition) == {c["product"] for c in calls[partition] if c["status"] == 200}
        outcomes = state.read_outcomes(project.store, partition)
        assert {row["error_class"] for row in outcomes.values() if row["outcome"] == "failed"} == {
            "quota_exhausted"
        }
    # Only what was in flight or already past the breaker got out: at most one call per worker per process,
    # each refused once (never retried), and none once the breaker had opened.
    assert refused and len(after_flip) <= len(working) * WORKERS, after_flip
    assert all(c["outcome"] == "insufficient_quota" for c in after_flip)
    assert max(sum(1 for c in refused if c["product"] == pid) for pid in {c["product"] for c in refused}) == 1
    on_the_wire = 1.0  # a call let through just before the breaker opened may still be on its way
    assert not [c for c in every if c["t_start"] > first_refusal + on_the_wire], "a process kept calling"

    # The breaker is open in Redis for everyone, opened once, by the quota.
    coordinator = project.coordinator()
    bucket = OpenAIImageGenerator(api_key=KEY, base_url=standin.base_url).rate_limit_bucket()
    breaker = coordinator.breaker_state(bucket)
    assert breaker.state == "open" and "insufficient_quota" in (breaker.reason or ""), breaker
    events = coordinator.breaker_events(bucket)
    assert [(e.from_state, e.to_state) for e in events] == [("closed", "open")], events

    # A run started now fails at once, with the quota named, without a single call.
    requests_before = standin.stats(products=False)["requests"]
    late = project.start(PARTITIONS[3], config)
    code, output = late.finish()
    assert code != 0 and "API quota exhausted" in step_failure(output), tail(output)
    assert standin.stats(products=False)["requests"] == requests_before
    assert coordinator.breaker_state(bucket).state == "open"
    with project.cli.instance() as instance:
        (run,) = instance.get_runs(RunsFilter(tags={"dagster/partition": PARTITIONS[3]}))
        started = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
        failed = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        took = failed[-1].timestamp - started[-1].timestamp
    assert took < 5.0, f"the late run's step took {took:.1f}s to give up"
