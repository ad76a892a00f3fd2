"""Support for the resilience suite: real services the tests can hurt on cue, and the checks run after.

- `FaultProxy`: a loopback proxy in front of moto's S3 server that can hold one chosen request at a chosen
  stage (before its body, half-way through it, with the whole body read, or after S3 stored it but before
  answering), answer 500s or answer slowly for a while. A held request is never forwarded afterwards: the
  client that sent it is dead by then, and S3 would not store a body it did not receive in full.
- `HoldingStandIn`: the Images API stand-in in this process, able to hold generation calls before or after
  it makes the image, so a test can kill a run with calls in flight.
- `OwnRedis`: a private redis-server on a free port that a test may kill and restart.
- `CliRun` / `start_cli`: `dagster asset materialize` in its own process group, killed as a whole.
- `BucketView` with `assert_store_intact` and `assert_published_consistent`: what the bucket holds, read
  behind the pipeline's back (straight from moto), checked against the store's invariants: nothing partial,
  nothing corrupt, nothing dangling.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

import pyarrow.parquet as pq
import pytest
import redis
from PIL import Image

from catalog_assets.standin import StandInConfig, StandInServer
from catalog_assets.standin.server import StandInApp
from catalog_assets_tests.conftest import env_without_secrets
from catalog_assets_tests.dagster_projects import BIN, MODULE, free_port, tail, wait_for
from catalog_assets_tests.s3_fixtures import (
    DUMMY_ACCESS_KEY_ID,
    DUMMY_SECRET_ACCESS_KEY,
    REGION,
    ForwardingProxy,
    ProxyHandler,
    matches_checksums,
    moto_client,
)

#: the key the stand-in accepts; recognisable, so a leak would be easy to spot in a log
API_KEY = "sk-resilience-suite-7c1e0d"
PUBLISH = "image_manifest,linked_catalog,generation_report"

__all__ = [
    "API_KEY",
    "BIN",
    "PUBLISH",
    "BucketView",
    "CliRun",
    "Exchange",
    "FaultProxy",
    "Hold",
    "HoldingStandIn",
    "OwnRedis",
    "own_redis_fixture",
    "Stage",
    "assert_published_consistent",
    "assert_store_intact",
    "calls_by_product",
    "cli_env",
    "paid_calls_after_success",
    "run_config",
    "start_cli",
    "tail",
    "wait_for",
]


# --- the Dagster CLI in a process group ---------------------------------------------------------------


@dataclass
class CliRun:
    """One `dagster ...` process, in its own process group so that a kill takes its step processes too."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not finish in {timeout:.0f}s:\n{tail(self.log())}"
            ) from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole group (the CLI and any step process it spawned) and wait until none is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

        def group_gone() -> bool:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for(group_gone, timeout=10, interval=0.02, what=f"{self.name}'s processes to exit")


def start_cli(
    root: Path,
    env: Mapping[str, str],
    name: str,
    select: str,
    *,
    partition: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> CliRun:
    """`dagster asset materialize -m catalog_assets.definitions --select ...` as a user types it, started in
    `root` (the project dir holding data/catalog.json) with its output in `<root>/<name>.log`."""
    args = [str(BIN / "dagster"), "asset", "materialize", *MODULE, "--select", select]
    if partition:
        args += ["--partition", partition]
    if config:
        args += ["--config-json", json.dumps(config)]
    log_path = root / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            args,
            cwd=root,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a kill of the group is a kill of the whole run
        )
    return CliRun(name, proc, log_path)


def cli_env(
    home: Path,
    *,
    bucket: str,
    s3_endpoint: str,
    openai_base_url: str,
    redis_url: str | None = None,
) -> dict[str, str]:
    """The environment of a run: S3 (through `s3_endpoint`), the stand-in, and Redis when given; nothing
    inherited from the test process that could select another store, key or Redis."""
    env = {
        k: v
        for k, v in env_without_secrets().items()
        if not k.startswith(("AWS_", "CATALOG_", "OPENAI_")) and k != "REDIS_URL"
    }
    env.update(
        DAGSTER_HOME=str(home),
        CATALOG_S3_BUCKET=bucket,
        AWS_ENDPOINT_URL=s3_endpoint,
        AWS_ACCESS_KEY_ID=DUMMY_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=DUMMY_SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=openai_base_url,
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def run_config(
    select: Literal["catalog", "images", "publish"],
    *,
    in_process: bool = True,
    generator: Mapping[str, Any] | None = None,
    coordination: Mapping[str, Any] | None = None,
    images: Mapping[str, Any] | None = None,
    catalog: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run config for one kind of run, overriding resources the way an operator does (`--config-json`).

    Secrets stay `{"env": ...}` references; only the resources the selected assets use are configured."""
    config: dict[str, Any] = {"resources": {}}
    # the definitions' default, said out loud: the process that holds the locks is the CLI's; or a process
    # per step, as a run's config may ask
    config["execution"] = {"config": {"in_process": {}} if in_process else {"multiprocess": {}}}
    if select in ("images", "publish"):
        config["resources"]["image_generator"] = {
            "config": {"api_key": {"env": "OPENAI_API_KEY"}, **(generator or {})}
        }
    if select in ("catalog", "images") and coordination is not None:
        config["resources"]["coordination"] = {"config": {"redis_url": {"env": "REDIS_URL"}, **coordination}}
    if select == "images" and images:
        config["ops"] = {"product_images": {"config": dict(images)}}
    if select == "catalog" and catalog:
        config["ops"] = {"product_catalog": {"config": dict(catalog)}}
    if not config["resources"]:
        del config["resources"]
    return config


# --- S3: a proxy in front of moto that holds, fails or slows requests ---------------------------------

Stage = Literal["headers", "partial", "body", "response"]


@dataclass
class Hold:
    """Hold the `nth` request matching `method` and `pattern` (searched in the path) at `stage`:
    `headers` before reading its body, `partial` with half its body read, `body` with all of it read but
    nothing forwarded, `response` after S3 stored it but before the client is answered."""

    method: str
    pattern: re.Pattern[str]
    nth: int
    stage: Stage
    matched: int = 0
    path: str | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@dataclass
class Exchange:
    """One request through the proxy and what became of it."""

    method: str
    path: str
    started: float
    status: int | None = None  # what the client was answered; None while open, or when dropped
    fate: str = "open"  # open | forwarded | held | dropped | injected-error | failed-upstream


class FaultProxy(ForwardingProxy):
    """A loopback proxy in front of moto's S3 server, for holds and fault windows (see `Hold`)."""

    def __init__(self, upstream: str) -> None:
        self.exchanges: list[Exchange] = []
        self._holds: list[Hold] = []
        self._error: tuple[int, str] | None = None
        self._error_until = 0.0
        self._delay_s = 0.0
        self._slow_until = 0.0
        self.errors_answered = 0
        self.responses_delayed = 0
        super().__init__(upstream)

    def serve(self, handler: ProxyHandler) -> None:
        path = handler.path.partition("?")[0]
        exchange = Exchange(handler.command, path, time.monotonic())
        with self._lock:
            self.exchanges.append(exchange)
            hold = self._match_hold(handler.command, path)
        try:
            self._serve(handler, exchange, hold)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            handler.close_connection = True  # the client died (killed) while we talked to it
        finally:
            if exchange.fate == "open":
                exchange.fate = "failed-upstream"

    def _serve(self, handler: ProxyHandler, exchange: Exchange, hold: Hold | None) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        if hold is not None and hold.stage == "headers":
            return self._hold(handler, exchange, hold)
        if hold is not None and hold.stage == "partial":
            handler.rfile.read(length // 2)
            return self._hold(handler, exchange, hold)
        body = handler.rfile.read(length)
        if len(body) < length:
            # The client died mid-body: S3 stores nothing it did not receive in full.
            exchange.fate, handler.close_connection = "dropped", True
            return None
        if hold is not None and hold.stage == "body":
            return self._hold(handler, exchange, hold)
        if handler.command == "PUT" and not matches_checksums(handler.headers, body):
            exchange.status, exchange.fate = 400, "injected-error"
            return handler.reply_error(400, "BadDigest", _injected(400))
        error, delay = self._fault_now()
        if error is not None:
            exchange.status, exchange.fate = error[0], "injected-error"
            return handler.reply_error(error[0], error[1], _injected(error[0]))
        status, headers, data, length_header = handler.forward(body)
        if hold is not None and hold.stage == "response":
            exchange.status = status  # what S3 did; the client never hears it
            return self._hold(handler, exchange, hold)
        if delay:
            # A slow S3: the answer comes late (the request is already done upstream).
            time.sleep(delay)
        exchange.status, exchange.fate = status, "forwarded"
        return handler.reply(status, headers, data, length_header)

    @staticmethod
    def _hold(handler: ProxyHandler, exchange: Exchange, hold: Hold) -> None:
        exchange.fate = "held"
        hold.path = exchange.path
        hold.arrived.set()
        hold.released.wait(300)
        handler.close_connection = True  # dropped without an answer: the client is gone by now

    # -- arming -----------------------------------------------------------------------------------------

    def hold(self, method: str, pattern: str, *, nth: int = 1, stage: Stage = "headers") -> Hold:
        hold = Hold(method, re.compile(pattern), nth, stage)
        with self._lock:
            self._holds.append(hold)
        return hold

    def fail_for(self, seconds: float, status: int = 500, code: str = "InternalError") -> None:
        """Answer every request with `status`/`code` (without forwarding it) for the next `seconds`."""
        with self._lock:
            self._error, self._error_until = (status, code), time.monotonic() + seconds

    def slow_for(self, seconds: float, delay_s: float) -> None:
        """Answer every request `delay_s` late for the next `seconds`."""
        with self._lock:
            self._delay_s, self._slow_until = delay_s, time.monotonic() + seconds

    def release(self) -> None:
        """Let every held request go (they are dropped, never forwarded) and disarm the holds."""
        with self._lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.released.set()

    def _match_hold(self, method: str, path: str) -> Hold | None:
        for hold in self._holds:
            if hold.method == method and hold.pattern.search(path):
                hold.matched += 1
                if hold.matched == hold.nth:
                    return hold
        return None

    def _fault_now(self) -> tuple[tuple[int, str] | None, float]:
        with self._lock:
            now = time.monotonic()
            error = self._error if now < self._error_until else None
            delay = self._delay_s if now < self._slow_until else 0.0
            if error is not None:
                self.errors_answered += 1
            elif delay:
                self.responses_delayed += 1
        return error, delay

    # -- reading ----------------------------------------------------------------------------------------

    def quiet(self, settled_s: float = 0.25) -> bool:
        """No request is being forwarded or answered (held ones do not count), and none arrived for
        `settled_s`: what a killed client had already sent has landed."""
        with self._lock:
            if any(e.fate == "open" for e in self.exchanges):
                return False
            last = max((e.started for e in self.exchanges), default=-math.inf)
        return time.monotonic() - last >= settled_s

    def close(self) -> None:
        self.release()
        super().close()


def _injected(status: int) -> str:
    return f"injected by the test proxy ({status})"


# --- the stand-in, holding calls on cue ---------------------------------------------------------------


class HoldingStandInApp(StandInApp):
    """The stand-in's request handling with a gate: `hold("before")` keeps arriving generation calls
    waiting before the image is made (a call in flight), `hold("after")` after it is made (the API has done
    the work, the answer is withheld). The call records stay the stand-in's own."""

    def __init__(self, config: StandInConfig) -> None:
        super().__init__(config)
        self._gate = threading.Event()
        self._gate.set()
        self._stage: str | None = None
        self._let_through = 0
        self.held = 0

    def hold(self, stage: Literal["before", "after"], *, let_through: int = 0) -> None:
        """`let_through`: the next N generation calls pass unheld (e.g. the first call of a key, which the
        other workers wait for)."""
        self._let_through = let_through
        self._stage = stage
        self._gate.clear()

    def release(self) -> None:
        self._stage = None
        self._gate.set()

    def _generate(self, config, stats, headers, raw, request_id, call_key):  # type: ignore[no-untyped-def]
        with self.lock:
            stage = self._stage
            if stage and self._let_through > 0:
                self._let_through, stage = self._let_through - 1, None
        if stage == "before":
            self._wait_at_gate()
        answer = super()._generate(config, stats, headers, raw, request_id, call_key)
        if stage == "after":
            self._wait_at_gate()
        return answer

    def _wait_at_gate(self) -> None:
        with self.lock:
            self.held += 1
        try:
            while not self._gate.wait(0.05) and not self.stopping.is_set():
                pass
        finally:
            with self.lock:
                self.held -= 1


class HoldingStandIn(StandInServer):
    """`StandInServer` whose app is a `HoldingStandInApp` (`.app.hold(...)`, `.app.release()`)."""

    app: HoldingStandInApp

    def __init__(self, config: StandInConfig | None = None) -> None:
        super().__init__(config)
        self.app = HoldingStandInApp(self.app.config)

    def __enter__(self) -> HoldingStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.app.release()  # held calls end, so the server's threads can stop
        self.stop()


def calls_by_product(stats: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each product's generation calls at the stand-in, oldest first (`status` 200: an image was made)."""
    return {
        pid: sorted(product["calls"], key=lambda c: c["seq"]) for pid, product in stats["products"].items()
    }


def paid_calls_after_success(stats: Mapping[str, Any]) -> dict[str, int]:
    """Per product, the calls made after its first successful (paid) call: each one is a duplicate."""
    duplicates = {}
    for pid, calls in calls_by_product(stats).items():
        first_ok = next((i for i, c in enumerate(calls) if c["status"] == 200), None)
        if first_ok is not None and len(calls) > first_ok + 1:
            duplicates[pid] = len(calls) - first_ok - 1
    return duplicates


# --- Redis that a test may kill ---------------------------------------------------------------------------


class OwnRedis:
    """A private redis-server on a free port (never the shared one), without persistence: a restart loses
    every key, as a Redis without AOF/RDB does. With `password`, it requires it (`--requirepass`)."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        auth = f":{quote(password, safe='')}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=0.5)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (.ci/run installs it)")
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--daemonize", "no", "--dir", str(self.workdir), *auth],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        wait_for(lambda: self._answers(client), timeout=10, interval=0.02, what="redis-server to answer")
        client.close()

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def __enter__(self) -> OwnRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    stop = kill

    def restart(self, down_s: float) -> None:
        """SIGKILL, stay down `down_s` (the outage), start again on the same port, empty."""
        self.kill()
        time.sleep(down_s)  # the length of the outage is the fault itself, not a wait for a condition
        self.start()
        self.restarts += 1


def own_redis_fixture(password: str | None = None) -> Callable[..., Any]:
    """A module-scoped fixture: a private `OwnRedis` (requiring `password` when given) for one module's tests.
    In a test module: `password_redis = own_redis_fixture(REDIS_PASSWORD)`."""

    @pytest.fixture(scope="module")
    def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
        server = OwnRedis(tmp_path_factory.mktemp("redis"), password=password)
        server.start()
        yield server
        server.stop()

    return own_redis


# --- what the bucket holds --------------------------------------------------------------------------------


class BucketView:
    """The bucket read straight from moto, behind the pipeline's back (no proxy, no store class)."""

    def __init__(self, endpoint: str, bucket: str) -> None:
        self.endpoint, self.bucket = endpoint, bucket
        self.client = moto_client(endpoint)

    def create(self) -> BucketView:
        self.client.create_bucket(Bucket=self.bucket)
        return self

    def list_keys(self, prefix: str = "") -> list[str]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", ())]
        return sorted(found)

    def read(self, key: str) -> tuple[bytes, dict[str, str]]:
        response = self.client.get_object(Bucket=self.bucket, Key=key)
        return response["Body"].read(), dict(response.get("Metadata") or {})

    def json(self, key: str) -> Any:
        return json.loads(self.read(key)[0])

    def copy_from(self, source: str) -> None:
        """Every object of bucket `source`, with its metadata and content type (a prepared state)."""
        for key in BucketView(self.endpoint, source).list_keys():
            self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": source, "Key": key},
                MetadataDirective="COPY",
            )


def assert_store_intact(view: BucketView) -> dict[str, int]:
    """No partial or corrupt object: every object carries the sha256 of its bytes (the store writes it with
    each one), every image and thumbnail decodes completely as a JPEG, every JSON document parses."""
    counts = {"objects": 0, "images": 0, "thumbnails": 0}
    for key in view.list_keys():
        data, metadata = view.read(key)
        counts["objects"] += 1
        assert metadata.get("sha256") == hashlib.sha256(data).hexdigest(), f"{key}: sha256 metadata ≠ bytes"
        if key.startswith(("images/", "thumbnails/")):
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "JPEG", f"{key} is {image.format}, not a JPEG"
                image.load()  # a truncated stream fails here
            counts["images" if key.startswith("images/") else "thumbnails"] += 1
        elif key.endswith(".json"):
            json.loads(data)
    return counts


def assert_published_consistent(
    view: BucketView, product_ids: Iterable[str], url_base: str
) -> dict[str, Any]:
    """The manifest and the linked catalog agree with the store, and every product has its image.

    Every row of every manifest ever written names an object that exists with the row's sha256 and size,
    and a thumbnail that exists; the latest manifest covers every product; every linked URL is
    `url_base` + an existing key whose sha256 is the one linked. Returns the latest manifest's rows."""
    products = set(product_ids)
    keys = set(view.list_keys())
    sha_of: dict[str, str] = {}

    def stored_sha(key: str) -> str:
        if key not in sha_of:
            sha_of[key] = view.read(key)[1]["sha256"]
        return sha_of[key]

    manifests = [k for k in keys if k.startswith("manifests/") and k.endswith(".json")]
    assert "manifests/latest.json" in manifests, "no manifests/latest.json"
    for name in manifests:
        for row in view.json(name)["rows"]:
            assert row["key"] in keys, f"{name}: {row['product_id']} names {row['key']}, which is not stored"
            assert row["thumbnail_key"] in keys, f"{name}: {row['product_id']}'s thumbnail is not stored"
            assert stored_sha(row["key"]) == row["sha256"], f"{name}: {row['key']} has another sha256"
    latest = {row["product_id"]: row for row in view.json("manifests/latest.json")["rows"]}
    assert set(latest) == products, f"products without a manifest row: {sorted(products - set(latest))}"

    linked = view.json("catalog/linked_catalog.json")
    assert {p["id"] for p in linked} == products
    for product in linked:
        url = product["image"]["url"]
        assert url and url.startswith(url_base), f"{product['id']}: {url!r} is not a URL of the store"
        key = unquote(url[len(url_base) :])
        assert key in keys, f"{product['id']}: linked {url} maps to {key}, which is not stored"
        assert stored_sha(key) == product["image"]["sha256"] == latest[product["id"]]["sha256"]
    parquet = pq.read_table(io.BytesIO(view.read("catalog/linked_catalog.parquet")[0])).to_pylist()
    assert {r["id"]: r["image_url"] for r in parquet} == {p["id"]: p["image"]["url"] for p in linked}
    return latest
