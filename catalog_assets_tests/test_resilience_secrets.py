"""Secrets never reach an output (DESIGN invariant 4): a full run through the real CLIs, with the OpenAI key, the
AWS secret access key and the Redis password set, leaves none of them in what the run printed, in the Dagster
instance on disk, in the S3 bucket, in Redis, in run config, tags or the event log, or in the resources the UI
shows.

Everything runs for real: `dagster asset materialize` and `catalog-images run` as subprocesses, the Images API
stand-in over HTTP (with transient faults, content-policy refusals and a rejected key), moto's S3 server, and a
private password-protected redis-server (plus a Redis that is down), so error paths write their messages too.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import redis
from dagster import Definitions, build_resources
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from catalog_assets.checks import ALL_CHECKS
from catalog_assets.definitions import ALL_ASSETS, resources_for_environment
from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets.resources.redis_coordination import RedisCoordinationResource
from catalog_assets.resources.s3_store import S3ImageStoreResource
from catalog_assets.standin import StandInConfig, StandInProcess, StandInServer
from catalog_assets.standin.protocol import masked
from catalog_assets_tests.dagster_projects import (
    BIN,
    MODULE,
    DagsterProject,
    free_port,
    make_project,
    tail,
)
from catalog_assets_tests.resilience_support import OwnRedis, own_redis_fixture
from catalog_assets_tests.s3_fixtures import DUMMY_ACCESS_KEY_ID, REGION, moto_client

pytestmark = pytest.mark.resilience

KEY = "sk-test-LEAKCHECK-7d1e9a"
AWS_SECRET = "aws-secret-LEAKCHECK-3b5c"
REDIS_PASSWORD = "redis-pw-LEAKCHECK-91f2"
SECRETS = (KEY, AWS_SECRET, REDIS_PASSWORD)
#: common to the three secrets: any fragment of one that still holds it is a leak too
MARKER = "LEAKCHECK"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


# --- what counts as a leak ------------------------------------------------------------------------------


def _base64_cores(raw: bytes) -> set[bytes]:
    """The base64 characters that encode `raw` alone, at each of the three alignments it can have inside a
    longer encoded value (e.g. `user:password` in a Basic auth header), standard and URL-safe alphabets."""
    cores = set()
    for pad in range(3):
        first = -(-pad * 8 // 6)  # the first character holding no bit of the bytes before `raw`
        end = (pad + len(raw)) * 8 // 6  # past the last character holding no bit of the bytes after it
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            cores.add(encode(b"\0" * pad + raw)[first:end])
    return cores


def leak_spellings(secret: str) -> set[bytes]:
    """The secret as it may turn up: raw, URL-encoded, base64 (any alignment), hex, and the API's masked echo."""
    raw = secret.encode()
    return {
        raw,
        quote(secret, safe="").encode(),
        quote_plus(secret).encode(),
        raw.hex().encode(),
        masked(secret).encode(),
        *_base64_cores(raw),
    }


LEAKS = {spelling for secret in SECRETS for spelling in leak_spellings(secret)} | {MARKER.encode()}


def leaks_in(data: bytes | str) -> list[str]:
    """Which leak spellings `data` contains (none is the only acceptable answer)."""
    blob = data.encode() if isinstance(data, str) else data
    return sorted(spelling.decode() for spelling in LEAKS if spelling in blob)


def assert_no_leak(where: str, data: bytes | str) -> None:
    found = leaks_in(data)
    assert not found, f"secret spelling(s) {found} found in {where}"


# --- services ---------------------------------------------------------------------------------------------


password_redis = own_redis_fixture(REDIS_PASSWORD)


@pytest.fixture(scope="module")
def standin() -> Iterator[StandInProcess]:
    # Its own process: it renders real 1024 px JPEGs while the pipeline processes run.
    with StandInProcess(["--api-key", KEY]) as process:
        yield process


# --- the CLI ----------------------------------------------------------------------------------------------


@dataclass
class Command:
    """One CLI process of the run, its output going to files (several run at once: pipes could fill up)."""

    name: str
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        """Everything it printed so far (stdout, then stderr)."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def finish(self, timeout: float = 240) -> tuple[int, str]:
        """Exit code and everything it printed; a command still running after `timeout` is killed."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(
                f"{self.name} did not finish in {timeout:.0f}s:\n{tail(self.output())}"
            ) from None
        return code, self.output()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start(project: DagsterProject, name: str, args: list[str], env: dict[str, str] | None = None) -> Command:
    out, err = project.root / f"{name}.out", project.root / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(BIN / args[0]), *args[1:]],
            cwd=project.root,
            env=env or project.env,
            stdout=stdout,
            stderr=stderr,
        )
    return Command(name, proc, out, err)


def materialize(select: str, partition: str | None = None, config: dict | None = None) -> list[str]:
    args = ["dagster", "asset", "materialize", *MODULE, "--select", select]
    if partition:
        args += ["--partition", partition]
    return args + (["--config-json", json.dumps(config)] if config else [])


def images_config(**config: object) -> dict:
    return {"ops": {"product_images": {"config": config}}}


def secret_env(
    project: DagsterProject, *, moto_endpoint: str, bucket: str, redis_url: str, base_url: str
) -> dict:
    """The project's environment with every production setting, the three secrets among them."""
    env = {k: v for k, v in project.env.items() if not k.startswith("AWS_")}
    env.update(
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=base_url,
        CATALOG_IMAGES_PER_MINUTE="600",
        CATALOG_S3_BUCKET=bucket,
        AWS_ACCESS_KEY_ID=DUMMY_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=AWS_SECRET,  # moto accepts any pair; botocore signs every request with it
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_CONFIG_FILE=str(project.root / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(project.root / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        REDIS_URL=redis_url,
    )
    return env


# --- where the secrets could end up ---------------------------------------------------------------------


def bucket_contents(endpoint: str, bucket: str) -> Iterable[tuple[str, bytes]]:
    """(what, bytes) for every object's body and its head (user metadata and headers)."""
    s3 = moto_client(endpoint)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key = item["Key"]
            yield f"s3://{bucket}/{key}", s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            head = s3.head_object(Bucket=bucket, Key=key)
            head.pop("Body", None)
            yield f"head of s3://{bucket}/{key}", repr(head).encode()


def redis_contents(client: redis.Redis) -> Iterable[tuple[str, bytes]]:
    """(key, value) for every key, read by type (DUMP would LZF-compress long values out of sight)."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = repr(client.hgetall(key))
        elif kind == "list":
            value = repr(client.lrange(key, 0, -1))
        elif kind == "set":
            value = repr(client.smembers(key))
        elif kind == "zset":
            value = repr(client.zrange(key, 0, -1, withscores=True))
        else:
            value = kind
        yield key.decode(errors="replace"), key + (value if isinstance(value, bytes) else str(value).encode())


# --- the tests ------------------------------------------------------------------------------------------


def test_a_full_run_with_faults_leaves_no_secret_anywhere(
    tmp_path: Path, moto_endpoint: str, password_redis: OwnRedis, standin: StandInProcess
) -> None:
    project = make_project(tmp_path / "project", products=12)
    bucket = f"catalog-secrets-{uuid.uuid4().hex[:10]}"
    moto_client(moto_endpoint).create_bucket(Bucket=bucket)
    env = secret_env(
        project,
        moto_endpoint=moto_endpoint,
        bucket=bucket,
        redis_url=password_redis.url,
        base_url=standin.base_url,
    )
    project.env = env
    standin.reset(config=True)
    # First attempts fail now and then (500, 429 with retry-after), brand and product words are refused:
    # retries, a refined prompt and offline fallbacks all write their messages to logs and metadata.
    standin.configure(
        faults={"server_error": 0.3, "rate_limit": 0.2},
        first_attempt_only=True,
        fault_retry_after_s=0.05,
        moderation_words=["persil", "bissell", "monitor"],
    )
    outputs: dict[str, str] = {}

    def done(command: Command, expect_success: bool) -> str:
        code, output = command.finish()
        outputs[command.name] = output
        assert (code == 0) is expect_success, f"{command.name} exited {code}:\n{tail(output)}"
        return output

    catalog = start(
        project,
        "catalog",
        materialize(
            "product_catalog",
            config={"ops": {"product_catalog": {"config": {"batch_size": 6}}}, **IN_PROCESS},
        ),
    )
    done(catalog, True)

    # At once: one batch generated (step subprocess: compute logs), the other attempted with a key the API
    # rejects (its 401 echoes part of the key) and, separately, with Redis down (the URL holds the password).
    rejecting = StandInServer(StandInConfig(api_key="sk-test-another-account-0000"))
    rejecting.start()
    dead_port = free_port()
    try:
        generated = start(
            project,
            "batch-0000",
            materialize("product_images", "batch-0000", images_config(backoff_base_s=0.05)),
        )
        rejected = start(
            project,
            "rejected-key",
            materialize("product_images", "batch-0001", {**images_config(backoff_base_s=0.05), **IN_PROCESS}),
            {**env, "OPENAI_BASE_URL": rejecting.base_url},
        )
        redis_down = start(
            project,
            "redis-down",
            materialize("product_images", "batch-0001", IN_PROCESS),
            {**env, "REDIS_URL": f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{dead_port}/0"},
        )
        done(generated, True)
        assert "OPENAI_API_KEY" in done(rejected, False)
        assert f"REDIS_URL=redis://:***@127.0.0.1:{dead_port}/0" in done(redis_down, False)
        assert rejecting.stats()["by_status"] == {"401": 1}, "the rejected key cost exactly one call"
    finally:
        rejecting.stop()

    # The whole pipeline, as a user runs it: catalog again, every batch (batch-0000 is skipped), publish.
    full = start(
        project,
        "catalog-images-run",
        ["catalog-images", "run", "--parallel", "2", "--images-config", json.dumps({"backoff_base_s": 0.05})],
    )
    # batch-0000 is complete already: planned as up to date, it gets no run
    output = done(full, True)
    assert "1 batch up to date" in output and "1/1 batches done, 0 failed" in output, output[-3000:]

    # The error paths really ran: the faults were injected and retried, and refusals fell back.
    stats = standin.stats()
    assert {"server_error", "rate_limit"} <= set(stats["faults_injected"]), stats["faults_injected"]
    assert stats["by_outcome"]["moderation_blocked"] >= 3
    s3 = moto_client(moto_endpoint)
    report = s3.get_object(Bucket=bucket, Key="reports/generation_report.md")["Body"].read().decode()
    fallbacks = re.search(r"\*\*Fallback images \(offline product card\)\*\*: (\d+)", report)
    assert fallbacks and int(fallbacks[1]) >= 1, "a refused product fell back to the offline card"

    # 1. Everything the commands printed.
    for name, output in outputs.items():
        assert_no_leak(f"the output of {name}", output)
    # 2. Every file of the project, the Dagster instance included: SQLite run and event-log storage (and its
    #    WAL), compute logs, schedule storage. Read as bytes: a leak inside a binary page counts too.
    files = [path for path in project.root.rglob("*") if path.is_file()]
    home = project.home
    assert any(p.suffix == ".db" and p.is_relative_to(home) for p in files), "no SQLite storage written"
    assert any(p.suffix == ".err" and "compute_logs" in p.parts for p in files), "no compute logs written"
    for path in files:
        assert_no_leak(str(path), path.read_bytes())
    # 3. Every object in the bucket and its head (user metadata, headers).
    objects = list(bucket_contents(moto_endpoint, bucket))
    keys = {what for what, _ in objects}
    for expected in (
        "manifests/latest.json",
        "catalog/linked_catalog.json",
        "reports/generation_report.md",
        "state/outcomes/batch-0001.json",
        "images/PROD-000001.jpg",
    ):
        assert f"s3://{bucket}/{expected}" in keys
    for what, data in objects:
        assert_no_leak(what, data)
    # 4. What the runs left in Redis (locks, limiter, breaker and its events).
    entries = list(redis_contents(password_redis.client()))
    assert entries, "the runs coordinated through Redis"
    for key, data in entries:
        assert_no_leak(f"Redis key {key}", data)
    # 5. Run config, tags and the event log (asset metadata, failures, logs) through the instance's API.
    with project.instance() as instance:
        runs = instance.get_runs()
        assert (
            len(runs) >= 7
        )  # catalog, three batch runs, catalog again, the one batch not up to date, publish
        materialized = set()
        for run in runs:
            assert_no_leak(f"run config of {run.run_id}", json.dumps(run.run_config, default=str))
            assert_no_leak(f"tags of {run.run_id}", json.dumps(dict(run.tags)))
            for entry in instance.all_logs(run.run_id):
                assert_no_leak(f"an event of run {run.run_id}", serialize_value(entry))
                if entry.dagster_event is not None and entry.dagster_event.is_step_materialization:
                    materialization = entry.dagster_event.step_materialization_data.materialization
                    materialized.add(materialization.asset_key.to_user_string())
                    assert_no_leak(
                        f"metadata of {materialization.asset_key}", serialize_value(materialization)
                    )
        assert materialized >= {key.to_user_string() for asset in ALL_ASSETS for key in asset.keys}


def test_the_resources_and_their_ui_view_show_no_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the UI shows of the resources (the repository snapshot the code server sends the webserver), and
    the reprs of the resources, initialized with the env resolved as in a run, and of their clients."""
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "CATALOG_S3_BUCKET": "catalog-secrets",
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:9/0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    resources = resources_for_environment(env)
    assert isinstance(resources["image_generator"], OpenAIImageGeneratorResource)
    assert isinstance(resources["store"], S3ImageStoreResource)
    assert isinstance(resources["coordination"], RedisCoordinationResource)

    shown: dict[str, str] = {name: repr(r) + str(r) for name, r in resources.items()}
    with build_resources(resources) as live:  # EnvVar values resolved, as when a run starts
        # The secrets are really inside, just never shown.
        assert live.image_generator.api_key == KEY
        assert live.coordination.redis_url == env["REDIS_URL"]
        store = live.store.get_client()
        assert store._client._request_signer._credentials.secret_key == AWS_SECRET
        for name in resources:
            resource = getattr(live, name)
            client = store if name == "store" else resource.get_client()
            shown[f"{name} (initialized)"] = repr(resource) + str(resource)
            shown[f"{name} client"] = repr(client) + str(client)

    defs = Definitions(assets=ALL_ASSETS, asset_checks=ALL_CHECKS, resources=resources)
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "OPENAI_API_KEY" in snapshot and "REDIS_URL" in snapshot  # the UI names the env vars instead
    shown["repository snapshot"] = snapshot
    for where, text in shown.items():
        assert_no_leak(where, text)


def test_the_leak_check_finds_every_spelling() -> None:
    """The check itself: each spelling of a secret, embedded in other text, is caught."""
    for secret in SECRETS:
        for prefix in ("", "u", "us", "user:"):
            embedded = f"Authorization: Basic {base64.b64encode(f'{prefix}{secret}'.encode()).decode()}"
            assert leaks_in(embedded), (secret, prefix)
        assert leaks_in(f"https://example.test/?key={quote_plus(secret)}&x=1")
        assert leaks_in(f"echo {masked(secret)}")
    assert not leaks_in("sk-test-another-account-0000 redis://:***@127.0.0.1:6379/0")
