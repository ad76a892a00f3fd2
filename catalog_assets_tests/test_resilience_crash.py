"""Crash anywhere: a run SIGKILLed at any point of its life loses nothing, pays for nothing twice beyond the
calls it had out, and leaves no partial object, manifest or link behind.

Each case kills `dagster asset materialize` (its whole process group) at one point of a partition run or of
the publish run, chosen by holding one request where it is: the stand-in holds generation calls (before or
after making the image), the S3 proxy holds one PUT before its body, half-way through it, with all of it
received, or after S3 stored it but before answering. Then one run materializes the partition again and
publishes (`product_images` then the publish assets, in Dagster's order), and:

- the products paid twice (two successful calls at the stand-in) are exactly those whose call was in flight
  at the kill, or had come back but whose image was not yet stored;
- every object in the bucket carries the sha256 of its bytes, and every image and thumbnail decodes fully;
- every manifest row names an object that exists with its sha256, and every linked URL maps to one.

All services are real: moto's S3 server behind the proxy, the stand-in over HTTP, Redis (own server) for two
cases, file locks (released by the kernel when the process dies) for the others.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from catalog_assets.resources.redis_coordination import RedisCoordinator
from catalog_assets.standin import StandInConfig
from catalog_assets_tests.conftest import SAMPLE_CATALOG
from catalog_assets_tests.resilience_support import (
    API_KEY,
    PUBLISH,
    BucketView,
    CliRun,
    FaultProxy,
    HoldingStandIn,
    OwnRedis,
    Stage,
    assert_published_consistent,
    assert_store_intact,
    calls_by_product,
    cli_env,
    run_config,
    start_cli,
    tail,
    wait_for,
)

pytestmark = pytest.mark.resilience

PRODUCTS = 12
PARTITION = "batch-0000"
#: small images and a high rate limit: the cases are about when a run dies, not about pixels or pacing
GENERATOR = {"size": "512x512", "timeout_s": 20.0, "images_per_minute": 6000, "concurrency": 4}
#: a dead run's Redis locks expire this fast, so the rerun does not wait the production 30 s (and yet a
#: live run on a busy machine renews them in time: its heartbeat beats every third of it)
REDIS_TTL_S = 3.0
_SUMMARY = re.compile(r"batch-\d{4}: (\d+) made, (\d+) already stored, (\d+) API calls")


@dataclass(frozen=True)
class CrashPoint:
    id: str
    what: str
    run: Literal["images", "publish"] = "images"
    #: (method, path pattern, nth match, stage) of the S3 request the proxy holds
    s3_hold: tuple[str, str, int, Stage] | None = None
    #: the stand-in holds generation calls here; the kill comes when `calls_held` of them wait
    api_hold: Literal["before", "after"] | None = None
    calls_held: int = 0
    redis: bool = False
    #: the multiprocess executor (a run's config may ask for it): the step is a child of the CLI process
    multiprocess: bool = False


POINTS = [
    CrashPoint(
        "api-calls-in-flight",
        "4 generation calls in flight (step in a child process)",
        api_hold="before",
        calls_held=4,
        multiprocess=True,
    ),
    CrashPoint(
        "api-done-answer-withheld",
        "4 images made by the API, their answers not yet received",
        api_hold="after",
        calls_held=4,
    ),
    CrashPoint(
        "generated-before-upload",
        "the first thumbnail PUT fully received by S3's door, not stored",
        s3_hold=("PUT", r"/thumbnails/", 1, "body"),
    ),
    CrashPoint(
        "between-thumbnail-and-image",
        "the first image PUT (its thumbnail stored), before its body",
        s3_hold=("PUT", r"/images/", 1, "headers"),
    ),
    CrashPoint(
        "mid-image-upload",
        "half of the first image PUT's body sent",
        s3_hold=("PUT", r"/images/", 1, "partial"),
    ),
    CrashPoint(
        "image-stored-unacknowledged",
        "the third image stored by S3, its answer withheld",
        s3_hold=("PUT", r"/images/", 3, "response"),
    ),
    CrashPoint(
        "after-some-images-stored",
        "the seventh image PUT, six stored",
        s3_hold=("PUT", r"/images/", 7, "headers"),
    ),
    CrashPoint(
        "writing-outcomes",
        "half of the batch's outcomes record sent (every image stored)",
        s3_hold=("PUT", r"/state/outcomes/", 1, "partial"),
    ),
    CrashPoint(
        "redis-api-calls-in-flight",
        "4 generation calls in flight, Redis holding the partition lock and claims",
        api_hold="before",
        calls_held=4,
        redis=True,
    ),
    CrashPoint(
        "redis-mid-image-upload",
        "half of the fourth image PUT's body sent, Redis holding the locks",
        s3_hold=("PUT", r"/images/", 4, "partial"),
        redis=True,
    ),
    CrashPoint(
        "publish-writing-manifest",
        "the timestamped manifest PUT of the publish run",
        run="publish",
        s3_hold=("PUT", r"/manifests/manifest-[^/]+\.json$", 1, "headers"),
    ),
    CrashPoint(
        "publish-mid-latest-manifest",
        "half of manifests/latest.json sent",
        run="publish",
        s3_hold=("PUT", r"/manifests/latest\.json$", 1, "partial"),
    ),
    CrashPoint(
        "publish-writing-linked-catalog",
        "half of catalog/linked_catalog.json sent",
        run="publish",
        s3_hold=("PUT", r"/catalog/linked_catalog\.json$", 1, "partial"),
    ),
    CrashPoint(
        "publish-writing-report",
        "the report PUT, everything else published",
        run="publish",
        s3_hold=("PUT", r"/reports/generation_report\.md$", 1, "body"),
    ),
]


# --- the services and a prepared project, once per module ----------------------------------------------


@dataclass
class World:
    moto: str
    standin: HoldingStandIn
    redis: OwnRedis
    template: Path  # project dir with product_catalog materialized (data/catalog.json, DAGSTER_HOME)
    catalog_bucket: str  # state after product_catalog
    done_bucket: str  # state after product_catalog and a complete batch-0000
    products: list[str]


@pytest.fixture(scope="module")
def world(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    standin = HoldingStandIn(StandInConfig(api_key=API_KEY, latency_s=0.1, latency_jitter_s=0.05))
    standin.start()
    redis_server = OwnRedis(tmp_path_factory.mktemp("crash-redis"))
    redis_server.start()
    base = tmp_path_factory.mktemp("crash")
    template = base / "template"
    (template / "data").mkdir(parents=True)
    (template / "dagster_home").mkdir()
    rows = json.loads(SAMPLE_CATALOG.read_text())[:PRODUCTS]
    (template / "data" / "catalog.json").write_text(json.dumps(rows))
    suffix = uuid.uuid4().hex[:10]
    catalog_bucket = BucketView(moto_endpoint, f"crash-catalog-{suffix}").create().bucket
    done_bucket = BucketView(moto_endpoint, f"crash-done-{suffix}").create().bucket

    def env_for(bucket: str, root: Path) -> dict[str, str]:
        return cli_env(
            root / "dagster_home", bucket=bucket, s3_endpoint=moto_endpoint, openai_base_url=standin.base_url
        )

    catalog = start_cli(
        template,
        env_for(catalog_bucket, template),
        "catalog",
        "product_catalog",
        config=run_config("catalog", catalog={"batch_size": PRODUCTS}),
    )
    assert catalog.wait() == 0, tail(catalog.log())
    # The completed batch, for the publish cases: made once here on a copy, then copied per case.
    done = base / "done"
    shutil.copytree(template, done)
    BucketView(moto_endpoint, done_bucket).copy_from(catalog_bucket)
    batch = start_cli(
        done,
        env_for(done_bucket, done),
        "images",
        "product_images",
        partition=PARTITION,
        config=run_config("images", generator=GENERATOR),
    )
    assert batch.wait() == 0, tail(batch.log())
    try:
        yield World(
            moto_endpoint,
            standin,
            redis_server,
            template,
            catalog_bucket,
            done_bucket,
            [r["id"] for r in rows],
        )
    finally:
        standin.app.release()
        standin.stop()
        redis_server.kill()


@dataclass
class Case:
    root: Path
    env: dict[str, str]
    view: BucketView
    proxy: FaultProxy
    images_config: dict
    publish_config: dict
    redis_prefix: str
    runs: list[CliRun]

    def start(self, name: str, kind: Literal["images", "publish"], *, multiprocess: bool = False) -> CliRun:
        """The run that is killed: the partition's, or the publish run."""
        if kind == "publish":
            run = start_cli(self.root, self.env, name, PUBLISH, config=self.publish_config)
        else:
            config = dict(self.images_config)
            if multiprocess:
                config["execution"] = {"config": {"multiprocess": {}}}
            run = start_cli(self.root, self.env, name, "product_images", partition=PARTITION, config=config)
        self.runs.append(run)
        return run

    def rerun(self) -> CliRun:
        """The partition again, then the publish assets, in one run (Dagster orders them; one CLI start-up
        instead of two keeps the module within its time budget)."""
        run = start_cli(
            self.root,
            self.env,
            "rerun",
            f"product_images,{PUBLISH}",
            partition=PARTITION,
            config=self.images_config,
        )
        self.runs.append(run)
        assert run.wait() == 0, f"the rerun failed:\n{tail(run.log())}"
        return run


@pytest.fixture
def case(world: World, tmp_path: Path, point: CrashPoint) -> Iterator[Case]:
    root = tmp_path / "project"
    shutil.copytree(world.template, root, ignore=shutil.ignore_patterns("*.log"))
    view = BucketView(world.moto, f"crash-{point.id[:30]}-{uuid.uuid4().hex[:8]}").create()
    view.copy_from(world.done_bucket if point.run == "publish" else world.catalog_bucket)
    proxy = FaultProxy(world.moto)
    env = cli_env(
        root / "dagster_home",
        bucket=view.bucket,
        s3_endpoint=proxy.endpoint,
        openai_base_url=world.standin.base_url,
        redis_url=world.redis.url if point.redis else None,
    )
    redis_prefix = f"crash-{uuid.uuid4().hex[:12]}"
    coordination = (
        {"key_prefix": redis_prefix, "lock_ttl_s": REDIS_TTL_S, "product_claim_ttl_s": REDIS_TTL_S}
        if point.redis
        else None
    )
    world.standin.app.release()
    world.standin.reset()
    made = Case(
        root,
        env,
        view,
        proxy,
        run_config("images", generator=GENERATOR, coordination=coordination),
        run_config("publish", generator=GENERATOR),
        redis_prefix,
        [],
    )
    yield made
    for run in made.runs:  # a failed assertion must not leave a run behind for the next case
        if run.alive():
            run.kill()
    proxy.close()
    world.standin.app.release()


# --- the cases ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS, ids=[p.id for p in POINTS])
def test_a_run_killed_anywhere_loses_nothing_and_pays_only_for_calls_in_flight(
    point: CrashPoint, case: Case, world: World
) -> None:
    standin = world.standin
    hold = (
        case.proxy.hold(*point.s3_hold[:2], nth=point.s3_hold[2], stage=point.s3_hold[3])
        if point.s3_hold
        else None
    )
    if point.api_hold:
        # the key's first call goes alone while every other worker waits for its verdict: it passes, the
        # calls after it are the ones caught in flight
        standin.app.hold(point.api_hold, let_through=1)
    killed = case.start("killed", point.run, multiprocess=point.multiprocess)

    def at_the_point() -> bool:
        assert killed.alive(), f"the run ended before {point.what}:\n{tail(killed.log())}"
        return hold.arrived.is_set() if hold else standin.app.held >= point.calls_held

    wait_for(at_the_point, timeout=120, interval=0.01, what=point.what)
    if point.redis:
        lock_holder = RedisCoordinator(world.redis.url, key_prefix=case.redis_prefix).lock_holder
        assert lock_holder(f"partition:{PARTITION}") is not None, "the run holds its partition in Redis"
    killed.kill()
    # Requests the dead run had sent in full still reach S3: let them land before looking at the bucket.
    wait_for(case.proxy.quiet, timeout=30, interval=0.02, what="requests in transit to settle")
    at_kill = standin.stats()
    stored_at_kill = {
        key.removeprefix("images/").removesuffix(".jpg") for key in case.view.list_keys("images/")
    }
    # The held calls now end as the API would end them: the image is made (and paid), nobody reads it.
    case.proxy.release()
    standin.app.release()
    wait_for(
        lambda: standin.stats(products=False)["in_flight"] == 0,
        timeout=30,
        interval=0.02,
        what="the held calls to end",
    )
    assert "RUN_SUCCESS" not in killed.log()

    calls = calls_by_product(at_kill)
    in_flight = {pid for pid, cs in calls.items() if any(c["t_end"] is None for c in cs)}
    made_unstored = {
        pid for pid, cs in calls.items() if any(c["status"] == 200 for c in cs) and pid not in stored_at_kill
    }
    rerun = case.rerun()

    final = standin.stats()
    final_calls = calls_by_product(final)
    paid = {pid: sum(c["status"] == 200 for c in cs) for pid, cs in final_calls.items()}
    called_after_kill = {
        pid for pid, cs in final_calls.items() if any(c["seq"] > at_kill["requests"] for c in cs)
    }
    twice = {pid for pid, n in paid.items() if n > 1}
    summary = _SUMMARY.search(rerun.log())
    assert summary, tail(rerun.log())
    made, skipped, api_calls = map(int, summary.groups())
    print(
        f"{point.id}: killed at {point.what}; {at_kill['requests']} calls before the kill, "
        f"{len(in_flight)} in flight, {len(made_unstored - in_flight)} made but unstored, "
        f"{len(stored_at_kill)} images stored; the rerun made {made}, skipped {skipped} with {api_calls} "
        f"calls; paid twice: {', '.join(sorted(twice)) or 'none'}"
    )

    if point.run == "publish":
        assert final["requests"] == 0, "publishing, and a rerun of a complete batch, never call the API"
    else:
        assert twice == in_flight | made_unstored, "paid twice beyond the calls in flight at the kill"
        assert max(paid.values()) <= 2
        assert set(paid) == set(world.products), "every product was paid for"
        assert not called_after_kill & stored_at_kill, "a product stored before the kill was called again"
    assert (made, skipped) == (PRODUCTS - len(stored_at_kill), len(stored_at_kill))
    assert api_calls == final["requests"] - at_kill["requests"] == len(called_after_kill)

    counts = assert_store_intact(case.view)
    assert counts["images"] == counts["thumbnails"] == PRODUCTS
    url_base = f"{case.proxy.endpoint}/{case.view.bucket}/"
    assert_published_consistent(case.view, world.products, url_base)
    outcomes = case.view.json(f"state/outcomes/{PARTITION}.json")["results"]
    assert {r["product_id"]: r["outcome"] for r in outcomes} == {
        pid: "skipped" if pid in stored_at_kill else "generated" for pid in world.products
    }
