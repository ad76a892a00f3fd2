"""The Dagster web UI in headless Chromium: `dagster dev` on an isolated instance, the asset graph, the
`product_images` partitions, one partition launched from the launch dialog and seen to succeed, then the
checks that judge the batches seen to pass; and a backfill of every batch launched from the partitions page,
seen to complete, after which the publish sensor republishes the linked catalog once."""

from __future__ import annotations

import contextlib
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.storage.partition_status_cache import AssetPartitionStatus
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from catalog_assets.automation import (
    IMAGE_MANIFEST,
    LAUNCHED_BY_TAG,
    PUBLISH_INTERVAL_ENV,
    PUBLISH_JOB_NAME,
    PUBLISH_SENSOR_NAME,
    generates_images,
)
from catalog_assets.partitions import product_batches
from catalog_assets_tests.dagster_projects import (
    MODULE,
    DagsterProject,
    free_port,
    make_project,
    tail,
    wait_for,
)

pytestmark = pytest.mark.browser

# Debian's chromium package, never a browser downloaded by Playwright.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
NUX_DISMISSED_KEY = "communityNux"  # the web UI's local-storage key for its first-visit dialog (1.13)
LOCATION = "catalog_assets.definitions"  # the code location name `dagster dev -m` gives the module
PRODUCTS, BATCH_SIZE = 20, 10
BATCHES = ["batch-0000", "batch-0001"]
PARTITION = "batch-0001"
UI_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 180_000  # queued → dequeued by the daemon → run worker → success
BACKFILL_TIMEOUT_MS = 300_000  # the backfill daemon's runs, queued and dequeued, then its status updated
PUBLISH_TIMEOUT_S = 300  # the sensor's tick after the last batch, then publish_job's steps and checks
#: ticks of the publish sensor after its run ended that must request nothing: publishing happened once
QUIET_TICKS = 2


@pytest.fixture(scope="module")
def catalog_project(tmp_path_factory) -> DagsterProject:
    """A project of 20 sample products whose `product_catalog` is materialized in batches of 10, so the two
    batch partitions exist before the UI opens. Made once per module: each test runs on its own copy."""
    project = make_project(tmp_path_factory.mktemp("web_ui") / "project", products=PRODUCTS)
    catalog = project.materialize_catalog(batch_size=BATCH_SIZE)
    assert catalog.returncode == 0, tail(catalog.stderr)
    return project


@contextlib.contextmanager
def _dagster_dev(project: DagsterProject) -> Iterator[str]:
    """`dagster dev` (webserver + daemon) over `project` on a free port; yields its base URL."""
    port = free_port()
    project.start("dagster", "dev", *MODULE, "--host", "127.0.0.1", "--port", str(port), log_name="dev")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/server_info"), timeout=180, what=f"dagster dev at {base}")
        yield base
    finally:
        project.stop_all()


@pytest.fixture
def dagster_dev(catalog_project, tmp_path) -> Iterator[tuple[DagsterProject, str]]:
    """`dagster dev` on a copy of the catalog project with its shipped settings."""
    project = catalog_project.copy_to(tmp_path / "project")
    with _dagster_dev(project) as base:
        yield project, base


@pytest.fixture
def dagster_dev_publishing(catalog_project, tmp_path) -> Iterator[tuple[DagsterProject, str]]:
    """`dagster dev` on a copy of the catalog project whose publish sensor ticks every 2 s (its documented
    `CATALOG_PUBLISH_SENSOR_INTERVAL_S`) instead of 30 s, so a test waits for the publish, not the interval."""
    project = catalog_project.copy_to(tmp_path / "project", env={PUBLISH_INTERVAL_ENV: "2"})
    with _dagster_dev(project) as base:
        yield project, base


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def browser(tmp_path) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile per test
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        # Dagster's first-visit "Join the Dagster community" dialog opens a second after the first page, over
        # whatever is on screen (even a launch dialog, then nothing can be clicked): the UI skips it when its
        # local-storage flag says it was dismissed
        context.add_init_script(f"window.localStorage.setItem('{NUX_DISMISSED_KEY}', JSON.stringify('1'))")
        context.set_default_timeout(UI_TIMEOUT_MS)
        expect.set_options(timeout=UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def _screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# screenshots of the web-UI test, rewritten on every run\n*\n")
    path = ARTIFACTS / f"web_ui_{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"web UI screenshot: {path}")
    return path


def _new_page(browser: BrowserContext) -> Page:
    page = browser.new_page()
    # should the first-visit dialog show all the same (another storage key after an upgrade), dismiss it
    page.add_locator_handler(
        page.get_by_text("Join the Dagster community"),
        lambda: page.get_by_role("button", name="Skip").click(),
    )
    return page


def test_launch_one_partition_from_the_web_ui(dagster_dev, browser):
    project, base = dagster_dev
    (ARTIFACTS / "web_ui_failure.png").unlink(missing_ok=True)  # only this run's failure may leave one
    page = _new_page(browser)
    try:
        _launch_and_watch(page, base)
    except Exception:
        _screenshot(page, "failure")
        print(tail(project.log("dev"), 80))
        raise

    # the UI told the truth: exactly that partition was materialized, by that run, into the store
    with project.instance() as instance:
        statuses = instance.get_status_by_partition(
            AssetKey("product_images"), ["batch-0000", PARTITION], product_batches
        )
        attempted = {key: status for key, status in statuses.items() if status is not None}
        assert attempted == {PARTITION: AssetPartitionStatus.MATERIALIZED}
        runs = [r for r in instance.get_runs() if r.tags.get("dagster/partition") == PARTITION]
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS]
    stored = sorted(p.name for p in (project.root / "data" / "store" / "images").glob("*.jpg"))
    assert stored == [f"PROD-0000{i}.jpg" for i in range(11, 21)]


def _launch_and_watch(page: Page, base: str) -> None:
    # the asset graph: the three groups, then the images group with product_images and its pool
    page.goto(f"{base}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in ("catalog", "images", "publish"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    page.goto(f"{base}/locations/{LOCATION}/asset-groups/images")
    node = page.get_by_text("product_images", exact=True).first
    expect(node).to_be_visible()
    # the images group holds product_images and image_reviews, both partitioned by batch
    expect(
        page.locator('a[href="/assets/product_images?view=partitions"]', has_text="partitions")
    ).to_have_text("2 partitions")
    _screenshot(page, "graph")
    node.click()
    expect(page.get_by_role("link", name=re.compile("image_api")).first).to_be_visible()  # its pool

    # product_images' partitions: both batches exist and are missing
    page.get_by_role("link", name="View in Asset Catalog").click()
    page.get_by_role("tab", name="Partitions").click()
    expect(page.get_by_text("Missing (2)")).to_be_visible()
    for key in ("batch-0000", PARTITION):
        expect(page.get_by_text(key, exact=True).first).to_be_visible()

    # the launch dialog: one chosen partition, launched as one run
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize product_images")).to_be_visible()
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_role("menuitem").filter(has_text=PARTITION).click()
    page.keyboard.press("Escape")  # close the partition picker, keep the dialog
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch 1 run").click()
    _watch_launched_run(page, base, tag=f"partition: {PARTITION}")
    _screenshot(page, "run")

    # back on the partitions page the batch is materialized, with the batch's figures
    page.goto(f"{base}/assets/product_images?view=partitions&partition={PARTITION}")
    expect(page.get_by_text("Materialized (1)")).to_be_visible()
    expect(page.get_by_text("Missing (1)")).to_be_visible()
    expect(page.get_by_text("count_generated")).to_be_visible()
    _screenshot(page, "partition")

    # The checks that judge the batches sit on image_manifest (catalog_assets/checks.py says why not on
    # product_images partitions): materialize it from the UI, its checks run in that run, and all pass.
    page.goto(f"{base}/assets/image_manifest")
    page.get_by_role("button", name=re.compile(r"Materialize$")).click()
    # only product_images ran above: the UI warns that image_reviews never did, and image_manifest reviews
    # what no image_reviews run has reviewed yet, so confirming is what a user does
    sure = page.get_by_role("dialog").filter(has_text="Are you sure?")
    expect(sure.get_by_text("image_reviews", exact=True)).to_be_visible()
    sure.get_by_role("button", name="Confirm").click()
    _watch_launched_run(page, base, tag="image_manifest")
    page.goto(f"{base}/assets/image_manifest?view=checks")
    names = _check_names("image_manifest")
    assert names, "no asset checks on image_manifest"
    expect(page.get_by_text(f"Checks ({len(names)})")).to_be_visible()
    for name in names:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(len(names))
    expect(page.get_by_text("Passed", exact=True).first).to_be_visible()  # the selected check's result
    _screenshot(page, "checks")


def _watch_launched_run(page: Page, base: str, tag: str) -> None:
    """From the "Launched run" toast to the run's page, until the run has succeeded."""
    launched = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    expect(launched).to_be_visible()
    run_prefix = launched.inner_text().split()[-1]
    page.goto(f"{base}/runs")
    page.get_by_role("link", name=run_prefix).first.click()
    expect(page).to_have_url(re.compile(rf"/runs/{run_prefix}"))
    expect(page.get_by_text(tag).first).to_be_visible()
    # the run page follows the run live: queued, started, then success
    expect(page.get_by_text("RUN_SUCCESS")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()


def _check_names(asset: str) -> list[str]:
    from catalog_assets.definitions import defs

    keys = defs.resolve_asset_graph().asset_check_keys
    return sorted(key.name for key in keys if key.asset_key == AssetKey(asset))


def test_backfill_from_the_web_ui_republishes_the_linked_catalog(dagster_dev_publishing, browser):
    project, base = dagster_dev_publishing
    (ARTIFACTS / "web_ui_backfill_failure.png").unlink(missing_ok=True)
    products = [row["id"] for row in json.loads((project.root / "data" / "catalog.json").read_text())]
    assert len(products) == PRODUCTS
    page = _new_page(browser)
    with project.instance() as instance:
        try:
            backfill_id = _launch_backfill_of_every_batch(page, base)
            publish = _wait_for_the_publish(instance)
            _show_published(page, base)
        except Exception:
            _screenshot(page, "backfill_failure")
            print(tail(project.log("dev"), 80))
            raise

        # the backfill: one run per batch, all of them its own and successful
        assert instance.get_backfill(backfill_id).status.value == "COMPLETED_SUCCESS"
        images_runs = [run for run in instance.get_runs() if generates_images(run)]
        assert sorted(run.tags["dagster/partition"] for run in images_runs) == BATCHES
        assert {run.tags.get("dagster/backfill") for run in images_runs} == {backfill_id}
        assert {run.status for run in images_runs} == {DagsterRunStatus.SUCCESS}

        # published once, by the sensor, after the last batch: one publish run, one tick that requested it,
        # one manifest materialization (and none of the ticks since asked for another)
        assert publish.status == DagsterRunStatus.SUCCESS
        assert publish.tags.get(LAUNCHED_BY_TAG) == PUBLISH_SENSOR_NAME
        assert [run.run_id for run in instance.get_runs(RunsFilter(job_name=PUBLISH_JOB_NAME))] == [
            publish.run_id
        ]
        last_batch_end = max(instance.get_run_record_by_id(run.run_id).end_time for run in images_runs)
        assert instance.get_run_record_by_id(publish.run_id).create_timestamp.timestamp() >= last_batch_end
        requesting = [tick for tick in _publish_sensor_ticks(instance) if tick.run_ids]
        assert [tick.run_ids for tick in requesting] == [[publish.run_id]]
        manifests = instance.fetch_materializations(IMAGE_MANIFEST, limit=10).records
        assert [record.run_id for record in manifests] == [publish.run_id]

    # the store: the manifest covers every product, the linked catalog lists every product in catalog order
    # with the URL of its stored image (the local store's URLs are keys relative to its root), and the report
    # is the publish run's, counting every product
    store = project.root / "data" / "store"
    rows = {
        row["product_id"]: row
        for row in json.loads((store / "manifests" / "latest.json").read_text())["rows"]
    }
    assert sorted(rows) == sorted(products)
    linked = json.loads((store / "catalog" / "linked_catalog.json").read_text())
    assert [product["id"] for product in linked] == products
    for product in linked:
        url = product["image"]["url"]
        assert url == rows[product["id"]]["key"], product["id"]
        assert (store / url).is_file(), f"{product['id']}: {url} is not stored"
    report = (store / "reports" / "generation_report.md").read_text()
    assert f"**Run**: `{publish.run_id}`" in report
    assert f"**Progress**: 100.0% ({PRODUCTS}/{PRODUCTS})" in report


def _launch_backfill_of_every_batch(page: Page, base: str) -> str:
    """From product_images' partitions page, a backfill of all its partitions; watched on the backfill page
    until it has succeeded. Returns the backfill's id."""
    page.goto(f"{base}/assets/product_images?view=partitions")
    expect(page.get_by_text(f"Missing ({len(BATCHES)})")).to_be_visible()
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize product_images")).to_be_visible()
    dialog.get_by_role("button", name="All", exact=True).click()
    expect(dialog.get_by_text(f"{len(BATCHES)} partitions", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch backfill").click()
    created = page.get_by_text(re.compile(r"Created backfill [a-z]{8}"))
    expect(created).to_be_visible()
    backfill_id = created.inner_text().split()[-1]

    # the backfill page follows it live: every batch targeted, then all of them succeeded
    page.goto(f"{base}/runs/b/{backfill_id}")
    for key in BATCHES:
        expect(page.get_by_text(key, exact=True).first).to_be_visible()
    status = page.get_by_text("Status", exact=True).first.locator("xpath=..")
    expect(status).to_contain_text("Succeeded", timeout=BACKFILL_TIMEOUT_MS)
    expect(page.get_by_text("100% completed")).to_be_visible()
    # asset, partitions targeted, in progress, succeeded, failed
    progress = re.sub(r"\s+", " ", page.locator("body").inner_text())
    assert f"product_images 100% completed {len(BATCHES)} 0 {len(BATCHES)} 0" in progress, progress
    _screenshot(page, "backfill")
    return backfill_id


def _wait_for_the_publish(instance: DagsterInstance) -> DagsterRun:
    """The publish run the sensor launches once generation has settled, once it has ended, and then
    `QUIET_TICKS` more ticks of the sensor, so a second publish would have been requested by then."""

    def ended() -> list[DagsterRun]:
        runs = instance.get_runs(RunsFilter(job_name=PUBLISH_JOB_NAME))
        return [run for run in runs if run.is_finished]

    publish = wait_for(ended, timeout=PUBLISH_TIMEOUT_S, interval=1, what="the publish run to end")[-1]
    end = instance.get_run_record_by_id(publish.run_id).end_time
    wait_for(
        lambda: len(_publish_sensor_ticks(instance, after=end)) >= QUIET_TICKS,
        timeout=120,
        what=f"{QUIET_TICKS} ticks of {PUBLISH_SENSOR_NAME} after its run",
    )
    return publish


def _publish_sensor_ticks(instance: DagsterInstance, after: float | None = None) -> list:
    (state,) = [s for s in instance.all_instigator_state() if s.name == PUBLISH_SENSOR_NAME]
    return list(instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after))


def _show_published(page: Page, base: str) -> None:
    """The published state in the UI: the runs list holds the backfill and one publish run, launched by the
    sensor; linked_catalog's latest materialization counts every product with an image URL."""
    page.goto(f"{base}/runs")
    expect(page.get_by_text(PUBLISH_SENSOR_NAME).first).to_be_visible()
    expect(page.get_by_text("Backfill", exact=True).first).to_be_visible()
    _screenshot(page, "backfill_runs")
    page.goto(f"{base}/assets/linked_catalog")
    for name, value in (("products", PRODUCTS), ("with_image_url", PRODUCTS), ("without_image", 0)):
        row = page.get_by_role("row").filter(has=page.get_by_text(name, exact=True))
        expect(row.get_by_role("cell").last).to_have_text(str(value))
    _screenshot(page, "backfill_published")
