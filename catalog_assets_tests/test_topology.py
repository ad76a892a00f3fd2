"""The production topology on one machine: a gRPC code server named in a workspace file, `dagster-webserver`
and `dagster-daemon` as separate processes on the PostgreSQL instance of deploy/dagster-production.yaml
(its queue, pool, retry and monitoring settings), with Redis, S3 (moto over HTTP) and the Images API
stand-in. A backfill of 10 batches survives a SIGKILLed daemon (restarted) and a SIGKILLed run worker (its
run retried once by run_retries, nothing paid twice), and ends with one publish by the publish sensor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import AssetKey, AssetPartitionStatus, DagsterInstance, DagsterRunStatus, RunsFilter

from catalog_assets.automation import generates_images
from catalog_assets.partitions import product_batches
from catalog_assets.standin import StandInConfig, StandInServer
from catalog_assets.standin.protocol import APIError
from catalog_assets.standin.server import StandInApp
from catalog_assets.standin.state import parse_client_request_id
from catalog_assets_tests.conftest import PROJECT
from catalog_assets_tests.dagster_projects import (
    BIN,
    PRODUCTION_INSTANCE,
    free_port,
    stop_process_group,
    tail,
    wait_for,
)
from catalog_assets_tests.pg_support import instance_env
from catalog_assets_tests.resilience_support import (
    API_KEY,
    BucketView,
    OwnRedis,
    assert_published_consistent,
    calls_by_product,
    cli_env,
)

pytestmark = pytest.mark.topology

BATCHES, BATCH_SIZE = 10, 20
VICTIM = "batch-0001"
#: calls of the victim batch let through before the rest are held (its worker dies with them in flight)
VICTIM_FREE_CALLS = 8
IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


class GatedStandInApp(StandInApp):
    """The stand-in, holding the calls of chosen products once `free` of them have gone through. Held calls
    wait before any image is made; `abandon()` ends them unanswered-for (503, no image: not paid), as an
    API ends requests whose client went away, and lets every later call through."""

    def __init__(self, config: StandInConfig) -> None:
        super().__init__(config)
        self.gated: set[str] = set()
        self.free = 0
        self.passed = 0
        self.held = 0
        self.abandoned = False

    def _generate(self, config, stats, headers, raw, request_id, call_key):  # type: ignore[no-untyped-def]
        parsed = parse_client_request_id(request_id)
        if parsed and parsed[0] in self.gated and not self.abandoned:
            with self.lock:
                hold = self.passed >= self.free
                self.passed += 1
                self.held += hold
            while hold and not self.abandoned and not self.stopping.is_set():
                time.sleep(0.05)
            if hold:
                raise APIError(503, "client went away", "server_error", "abandoned", outcome="abandoned")
        return super()._generate(config, stats, headers, raw, request_id, call_key)

    def abandon(self) -> None:
        self.abandoned = True


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The run worker's pid, from the code server's "Started process for run (pid: N)." engine event."""
    for entry in instance.all_logs(run_id):
        message = (entry.dagster_event.message if entry.dagster_event else None) or entry.user_message or ""
        if message.startswith("Started process for run (pid: "):
            return int(message.split("pid: ")[1].rstrip(").").strip())
    return None


class Topology:
    """The separate processes of a deployment, each in its own process group with a log file."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [str(BIN / args[0]), *args[1:]],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            stop_process_group(proc, grace_s=15)
        self.procs.clear()


LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""


def _graphql(port: int, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    assert "errors" not in answer, answer
    return answer["data"]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.timeout(1800)  # a dozen Dagster processes start on a shared 2-core machine
def test_backfill_survives_a_killed_daemon_and_worker_and_is_published_once(
    tmp_path, pg_database, moto_endpoint
):
    root = tmp_path
    (root / "data").mkdir()
    generated = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "scripts" / "generate_catalog.py"),
            "--count",
            str(BATCHES * BATCH_SIZE),
        ]
        + ["--out", str(root / "data" / "catalog.json")],
        capture_output=True,
        text=True,
    )
    assert generated.returncode == 0, generated.stderr
    products = [p["id"] for p in json.loads((root / "data" / "catalog.json").read_text())]
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(PRODUCTION_INSTANCE.read_text())

    bucket = f"topology-{os.getpid()}-{int(time.time())}"
    view = BucketView(moto_endpoint, bucket).create()
    redis_server = OwnRedis(root)
    redis_server.start()
    standin = StandInServer(StandInConfig(api_key=API_KEY, latency_s=0.4, latency_jitter_s=0.2))
    standin.app = app = GatedStandInApp(standin.app.config)
    base_url = standin.start()

    code_port, web_port = free_port(), free_port()
    env = cli_env(
        home, bucket=bucket, s3_endpoint=moto_endpoint, openai_base_url=base_url, redis_url=redis_server.url
    )
    env.update(
        **instance_env(pg_database),
        CATALOG_PUBLISH_SENSOR_INTERVAL_S="2",
    )
    workspace = root / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        f"  - grpc_server: {{host: localhost, port: {code_port}, location_name: catalog_assets}}\n"
    )
    topology = Topology(root, env)
    saved_env = os.environ.copy()
    os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_")})
    instance = DagsterInstance.get()
    try:
        code_server = topology.start(
            "code-server",
            "dagster",
            "code-server",
            "start",
            "-m",
            "catalog_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(code_port),
        )
        wait_for(
            lambda: (
                "Started Dagster code server" in topology.log("code-server") or code_server.poll() is not None
            ),
            timeout=180,
            what="the code server",
        )
        assert code_server.poll() is None, tail(topology.log("code-server"))
        topology.start(
            "webserver", "dagster-webserver", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(web_port)
        )
        topology.start("daemon", "dagster-daemon", "run", "-w", str(workspace))
        wait_for(
            lambda: _answers(f"http://127.0.0.1:{web_port}/server_info"), timeout=180, what="the webserver"
        )

        # the catalog: 10 batches of 20, registered as partitions
        catalog = topology.run(
            "dagster",
            "asset",
            "materialize",
            "-m",
            "catalog_assets.definitions",
            "--select",
            "product_catalog",
            "--config-json",
            json.dumps({"ops": {"product_catalog": {"config": {"batch_size": BATCH_SIZE}}}}),
        )
        assert catalog.returncode == 0, tail(catalog.stderr)
        partitions = sorted(instance.get_dynamic_partitions("product_batches"))
        assert partitions == [f"batch-{i:04d}" for i in range(BATCHES)]
        assignment = view.json("state/batch_assignment.json")["assignment"]
        app.gated = {pid for pid, batch in assignment.items() if f"batch-{batch:04d}" == VICTIM}
        app.free = VICTIM_FREE_CALLS
        assert len(app.gated) == BATCH_SIZE

        # the backfill the UI launches for a selection of partitions: an asset backfill, driven by the daemon
        launched = _graphql(
            web_port,
            LAUNCH_BACKFILL,
            {"params": {"assetSelection": [{"path": ["product_images"]}], "partitionNames": partitions}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def images_runs(statuses=None):
            runs = instance.get_runs(RunsFilter(statuses=statuses or []))
            return [r for r in runs if generates_images(r)]

        # the daemon dies mid-backfill (SIGKILL) and comes back
        wait_for(
            lambda: len(images_runs([DagsterRunStatus.STARTED])) >= 2,
            timeout=300,
            what="two backfill runs to start",
        )
        topology.kill("daemon")
        wait_for(
            lambda: instance.fetch_materializations(AssetKey("product_images"), limit=1).records,
            timeout=300,
            what="a batch to finish while the daemon is down",
        )
        topology.start("daemon", "dagster-daemon", "run", "-w", str(workspace))

        # the victim's run worker dies with calls in flight and some of its products stored
        victim_run = wait_for(
            lambda: next(
                (
                    r
                    for r in images_runs([DagsterRunStatus.STARTED])
                    if r.tags.get("dagster/partition") == VICTIM
                ),
                None,
            ),
            timeout=300,
            what=f"the run of {VICTIM} to start",
        )
        wait_for(
            lambda: (
                app.held >= 1
                and len([k for k in view.list_keys("images/") if k[7:-4] in app.gated]) >= VICTIM_FREE_CALLS
            ),
            timeout=300,
            what=f"{VICTIM}'s first images stored and the rest in flight",
        )
        stored_before_kill = {k[7:-4] for k in view.list_keys("images/")} & app.gated
        worker = _worker_pid(instance, victim_run.run_id)
        assert worker is not None
        tree = _descendants(worker)
        for pid in tree:
            os.kill(pid, signal.SIGKILL)
        app.abandon()

        # every batch materialized, the victim through exactly one retry of its run
        def backfill_done():
            if images_runs(IN_PROGRESS):
                return False
            statuses = instance.get_status_by_partition(
                AssetKey("product_images"), partitions, product_batches
            )
            return statuses and all(s == AssetPartitionStatus.MATERIALIZED for s in statuses.values())

        wait_for(backfill_done, timeout=600, interval=1, what="every batch to be materialized")
        wait_for(
            lambda: instance.get_backfill(backfill_id).status.value == "COMPLETED_SUCCESS",
            timeout=120,
            what="the backfill to complete",
        )
        dead = instance.get_run_by_id(victim_run.run_id)
        assert dead.status == DagsterRunStatus.FAILURE
        retries = instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": victim_run.run_id}))
        assert len(retries) == 1, [r.run_id for r in retries]
        assert retries[0].status == DagsterRunStatus.SUCCESS
        assert retries[0].tags.get("dagster/partition") == VICTIM
        # the other nine batches ran once each, none retried
        others = [r for r in images_runs() if r.run_id not in (dead.run_id, retries[0].run_id)]
        assert sorted(r.tags["dagster/partition"] for r in others) == [p for p in partitions if p != VICTIM]
        assert all(r.status == DagsterRunStatus.SUCCESS for r in others)

        # nobody paid twice: one successful call per product at the stand-in
        paid = {
            pid: sum(c["status"] == 200 for c in calls)
            for pid, calls in calls_by_product(standin.stats()).items()
        }
        assert set(paid) == set(products)
        assert {pid: n for pid, n in paid.items() if n != 1} == {}
        assert len(stored_before_kill) >= VICTIM_FREE_CALLS

        # published once, by the sensor, after the last batch
        def publish_runs():
            return instance.get_runs(RunsFilter(job_name="publish_job"))

        published = wait_for(
            lambda: [r for r in publish_runs() if r.status == DagsterRunStatus.SUCCESS],
            timeout=300,
            what="the publish run",
        )
        assert published[0].tags["catalog-images/launched-by"] == "catalog_publish_sensor"
        last_batch_end = max(instance.get_run_record_by_id(r.run_id).end_time for r in images_runs())
        assert (
            instance.get_run_record_by_id(published[0].run_id).create_timestamp.timestamp() >= last_batch_end
        )
        time.sleep(10)  # five more sensor intervals: no second publish
        assert len(publish_runs()) == 1
        assert_published_consistent(view, products, f"{moto_endpoint}/{bucket}/")
    finally:
        topology.stop_all()
        instance.dispose()
        os.environ.clear()
        os.environ.update(saved_env)
        standin.stop()
        redis_server.stop()
