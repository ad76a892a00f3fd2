"""Every image-API call is accounted for, even after a crash: the report counts what the stand-in counted.

A `catalog-images run` is SIGKILLed (its whole process group) with generation calls in flight at the
stand-in; the held calls then end as the API ends them (the image made and billed, nobody reading it). A
plain rerun completes the catalog and publishes. The report's call counts, failed calls by class, paid
calls and the products it lists as paid more than once must equal the stand-in's own records; its advice
follows the window-429 evidence (the fault 429s here are isolated: no "lower images_per_minute").

Also the call record's two live forms (a file per run, a Redis list) and its copy into S3, over real
connections. Real services: the stand-in over HTTP with the `openai` SDK, moto's S3 server, Redis.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from catalog_assets import call_ledger
from catalog_assets.resources.s3_store import S3ImageStoreResource
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.standin import StandInConfig
from catalog_assets_tests.dagster_projects import DagsterProject, tail, wait_for
from catalog_assets_tests.resilience_support import HoldingStandIn, calls_by_product
from catalog_assets_tests.runner_projects import runner_project, start_runner

pytestmark = pytest.mark.resilience

API_KEY = "sk-call-record-3b9f"
BATCHES = 3
PER_BATCH = 4
HELD = 3  # calls in flight at the kill (the key's first call passes alone before them)


@pytest.fixture
def standin() -> Iterator[HoldingStandIn]:
    # isolated fault 429s and 500s: the window itself (no stand-in limit) is never exhausted
    config = StandInConfig(
        api_key=API_KEY,
        latency_s=0.05,
        # a limit far above the run's pace: its headers show the window has room
        images_per_minute=6000,
        faults={"rate_limit": 0.2, "server_error": 0.15},
        seed=7,
    )
    with HoldingStandIn(config) as server:
        yield server


@pytest.fixture
def project(tmp_path, standin) -> DagsterProject:
    project = runner_project(
        tmp_path / "project",
        BATCHES * PER_BATCH,
        env={
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": standin.base_url,
            "CATALOG_IMAGES_PER_MINUTE": "6000",
        },
    )
    catalog = project.materialize_catalog(batch_size=PER_BATCH)
    assert catalog.returncode == 0, tail(catalog.stderr)
    return project


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _item(report: str, name: str) -> str:
    match = re.search(rf"^- \*\*{re.escape(name)}\*\*: (.*)$", report, re.M)
    assert match, f"no {name!r} in the report"
    return match.group(1)


def _error_rows(report: str) -> dict[str, int]:
    section = report.split("## Error Analysis", 1)[1].split("\n## ", 1)[0]
    table = section.split("Failed calls by class", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = int(cells[1])
    return rows


def _paid_twice_rows(report: str) -> dict[str, str]:
    section = report.split("Products paid more than once for the same prompt", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in section.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[3]
    return rows


def test_after_a_sigkill_the_report_counts_every_call_the_stand_in_counted(project, standin):
    standin.app.hold("before", let_through=1)
    runner = start_runner(project, log_name="killed")
    try:
        wait_for(
            lambda: standin.app.held >= HELD or runner.poll() is not None,
            timeout=240,
            interval=0.02,
            what=f"{HELD} generation calls in flight",
        )
        assert runner.poll() is None, tail(project.log("killed"))
    finally:
        _kill_group(runner)
    at_kill = standin.stats()
    standin.app.release()
    wait_for(
        lambda: standin.stats(products=False)["in_flight"] == 0,
        timeout=30,
        interval=0.02,
        what="the held calls to end",
    )
    live = project.root / "data" / "state" / "locks" / "calls"
    [killed_record] = live.glob("*.jsonl")  # the killed run's calls outlived it, in the coordinator

    rerun = start_runner(project, log_name="rerun")
    try:
        rerun.wait(400)
    except subprocess.TimeoutExpired:
        _kill_group(rerun)
        raise AssertionError(f"the rerun hung:\n{tail(project.log('rerun'))}") from None
    assert rerun.returncode == 0, tail(project.log("rerun"))

    final = standin.stats()
    # At the kill, calls with no end at the stand-in had no answer the run could record: counted as made
    # and possibly billed. Every other call's answer is in the record as the stand-in gave it.
    open_at_kill = {c["seq"] for cs in calls_by_product(at_kill).values() for c in cs if c["t_end"] is None}
    assert len(open_at_kill) >= HELD
    calls = calls_by_product(final)
    answered = [c for cs in calls.values() for c in cs if c["seq"] not in open_at_kill]
    paid = {pid: sum(c["status"] == 200 or c["seq"] in open_at_kill for c in cs) for pid, cs in calls.items()}
    twice = {pid for pid, n in paid.items() if n > 1}
    billed_twice = {pid for pid, cs in calls.items() if sum(c["status"] == 200 for c in cs) > 1}
    assert billed_twice and billed_twice <= twice
    by_status = Counter(c["status"] for c in answered)
    assert by_status[429] and by_status[500], "the fault mix produced errors"

    report = (project.root / "data" / "store" / "reports" / "generation_report.md").read_text()
    assert _item(report, "Image API calls").split(" ")[0] == f"{final['requests']:,}"
    assert _item(report, "Calls in the call record") == (
        f"{final['requests']:,}: {len(answered):,} answered, {len(open_at_kill)} with no answer (in flight "
        "when their run ended)"
    )
    paid_line = "Paid calls (an image came back, or no answer did: the API may have made it)"
    assert int(_item(report, paid_line).replace(",", "")) == sum(paid.values())
    assert _error_rows(report) == {
        "Rate limiting": by_status[429],
        "Network timeouts / transient": by_status[500],
    }
    assert f"0 of the exhausted window (0.0% of calls); {by_status[429]} isolated" in report
    listed = _paid_twice_rows(report)
    assert set(listed) == twice
    assert all("in flight when its run" in r or "never stored" in r for r in listed.values()), listed
    assert int(_item(report, "Products paid more than once")) == len(twice)
    recommendations = report.split("## Next Steps / Recommendations", 1)[1]
    assert "images_per_minute" not in recommendations, "isolated 429s are no evidence of a too-high rate"
    assert "paid twice because a run ended with their calls in flight" in recommendations

    # the report copied the dead run's record into the store and dropped the live one
    assert not list(live.glob("*.jsonl"))
    stored = project.root / "data" / "store" / "state" / "calls" / killed_record.name
    assert stored.exists()


# --- the live record's forms, and its copy into S3 ------------------------------------------------------


def _entries(record: call_ledger.CallRecorder) -> None:
    a = record.started("PROD-000001", 1, fingerprint="fp1", model="gpt-image-2", price_usd=0.01)
    record.ended(a, error_class="rate_limited", status=429, billed=call_ledger.NOT_BILLED, rate="isolated")
    b = record.started("PROD-000001", 2, fingerprint="fp1", model="gpt-image-2", price_usd=0.01)
    record.ended(b, error_class=None, status=200, billed=call_ledger.BILLED)
    record.started("PROD-000002", 1, fingerprint="fp2", model="gpt-image-2", price_usd=0.01)  # no answer


@pytest.fixture
def redis_log() -> Iterator[call_ledger.RedisCallLog]:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    log = call_ledger.RedisCallLog(client, f"test-call-record-{uuid.uuid4().hex[:10]}")
    try:
        yield log
    finally:
        for key in client.scan_iter(f"{log.prefix}:*"):
            client.delete(key)


@pytest.mark.parametrize("form", ["file-and-local-store", "redis-and-s3"])
def test_a_live_record_is_counted_then_copied_into_the_store_when_its_run_is_over(
    form, tmp_path, redis_log, s3_bucket
):
    log: call_ledger.CallLog
    if form == "redis-and-s3":
        log, store = redis_log, S3ImageStoreResource(bucket=s3_bucket, prefix="shop").get_client()
    else:
        log, store = (
            call_ledger.FileCallLog(tmp_path / "locks" / "calls"),
            LocalImageStore(tmp_path / "store"),
        )
    _entries(call_ledger.CallRecorder(log, "run-dead", "batch-0000"))
    going = call_ledger.CallRecorder(log, "run-going", "batch-0001")
    going.started("PROD-000005", 1, fingerprint="fp5", model="gpt-image-2", price_usd=0.01)
    finished = call_ledger.CallRecorder(log, "run-done", "batch-0000")
    finished.ended(
        finished.started("PROD-000002", 1, fingerprint="fp2", model="gpt-image-2", price_usd=0.01),
        error_class=None,
        status=200,
        billed=call_ledger.BILLED,
    )
    assert finished.flush(store)
    assert sorted(log.runs()) == ["run-dead", "run-going"]

    records, over = call_ledger.collect(store, log, lambda run_id: run_id != "run-going")
    summary = call_ledger.summarize(records, over)
    assert summary.total == 5
    assert summary.answered == 3
    assert (summary.unanswered(over=True), summary.unanswered(over=False)) == (1, 1)
    assert summary.errors == {"rate_limited": 1}
    assert summary.rate_limited == {"isolated": 1} and summary.window_429s == 0
    assert summary.paid == 4  # two images, two calls with no answer
    assert summary.cost_usd == pytest.approx(0.04)
    [twice] = summary.paid_twice()
    assert (twice.product, twice.paid_calls) == ("PROD-000002", 2)
    assert twice.reasons == ("in flight when its run run-dead ended (killed or stopped)",)
    # the dead run's record moved into the store; the running one stays live, counted as it stands
    assert log.runs() == ["run-going"]
    assert sorted(o.key for o in store.list(call_ledger.STORE_PREFIX)) == [
        call_ledger.store_key("run-dead"),
        call_ledger.store_key("run-done"),
    ]
    again, _ = call_ledger.collect(store, log, lambda run_id: run_id != "run-going")
    assert call_ledger.summarize(again).total == 5, "a record counted once, wherever it is"
