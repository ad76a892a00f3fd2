"""The Dagster web UI in headless Chromium: `dagster dev` on an isolated instance, the asset graph, the
`product_images` partitions, one partition launched from the launch dialog and seen to succeed, then the
checks that judge the batches seen to pass."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterRunStatus
from dagster._core.storage.partition_status_cache import AssetPartitionStatus
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

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
LOCATION = "catalog_assets.definitions"  # the code location name `dagster dev -m` gives the module
PARTITION = "batch-0001"
UI_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 180_000  # queued → dequeued by the daemon → run worker → success


@pytest.fixture
def dagster_dev(tmp_path) -> Iterator[tuple[DagsterProject, str]]:
    """`dagster dev` (webserver + daemon) on a free port over a project whose catalog is materialized, so
    the batch partitions exist before the UI opens."""
    project = make_project(tmp_path / "project", products=20)
    catalog = project.materialize_catalog(batch_size=10)
    assert catalog.returncode == 0, tail(catalog.stderr)
    port = free_port()
    project.start("dagster", "dev", *MODULE, "--host", "127.0.0.1", "--port", str(port), log_name="dev")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/server_info"), timeout=180, what=f"dagster dev at {base}")
        yield project, base
    finally:
        project.stop_all()


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


def test_launch_one_partition_from_the_web_ui(dagster_dev, browser):
    project, base = dagster_dev
    (ARTIFACTS / "web_ui_failure.png").unlink(missing_ok=True)  # only this run's failure may leave one
    page = browser.new_page()
    # Dagster's first-visit newsletter dialog may cover anything at any moment: dismiss it whenever it shows
    page.add_locator_handler(
        page.get_by_text("Join the Dagster community"),
        lambda: page.get_by_role("button", name="Skip").click(),
    )
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
    expect(page.get_by_text("2 partitions")).to_be_visible()
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
