"""A bad key costs one call for a whole `catalog-images run` or set of worker processes, on a loaded
machine: the first call's verdict is shared through the coordinator (file lock + verdict file on one
machine, Redis keys across machines), and every other caller fails at once with the same message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog_assets import state
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.standin import StandInProcess
from catalog_assets_tests.conftest import env_without_secrets
from catalog_assets_tests.resilience_support import OwnRedis

pytestmark = pytest.mark.resilience

BIN = Path(sys.executable).parent
KEY = "sk-test-gate-0a7d3e"
WRONG = "sk-test-WRONG-gate-5c1f"
BATCHES = 4


@pytest.fixture(scope="module")
def standin_process() -> Iterator[StandInProcess]:
    with StandInProcess(["--api-key", KEY, "--latency", "0.2"]) as process:
        yield process


@pytest.fixture
def standin(standin_process: StandInProcess) -> StandInProcess:
    standin_process.reset()
    return standin_process


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """One busy process per core for the duration of the test: the processes under test run late."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    with OwnRedis(tmp_path) as server:  # its own server: the runner uses the default key prefix
        yield server


def project(root: Path, standin: StandInProcess, products: int, **env: str) -> dict[str, str]:
    """A project directory with its catalog and instance; the environment a user's shell would have."""
    (root / "data").mkdir(parents=True)
    rows = [{"id": f"LAMP-{n:04d}", "name": f"Reading Lamp {n}", "category": "Home"} for n in range(products)]
    (root / "data" / "catalog.json").write_text(json.dumps(rows))
    (root / "dagster_home").mkdir()
    return {
        **env_without_secrets(),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "CATALOG_STORE_DIR": str(root / "store"),
        "OPENAI_API_KEY": WRONG,
        "OPENAI_BASE_URL": standin.base_url,
        **env,
    }


def run(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / args[0]), *args[1:]],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def assert_every_batch_stopped_by_the_key(root: Path) -> None:
    store = LocalImageStore(root / "store")
    for n in range(BATCHES):
        outcomes = state.read_outcomes(store, f"batch-{n:04d}")
        assert outcomes and {row["error_class"] for row in outcomes.values()} == {"configuration"}
        assert {row["message"] for row in outcomes.values()} <= {
            "not finished: run stopped (the API rejected the key (401 invalid_api_key): set a valid key in "
            "OPENAI_API_KEY)",
            "the API rejected the key (401 invalid_api_key): set a valid key in OPENAI_API_KEY",
        }
    assert not list(store.list("images/"))


@pytest.mark.parametrize("backend", ["local", "redis"])
def test_a_wrong_key_costs_one_call_for_a_whole_catalog_images_run(
    tmp_path: Path, standin: StandInProcess, request: pytest.FixtureRequest, backend: str
) -> None:
    # Without Redis the runner takes the batches one after another; with it, four processes at once, on a
    # loaded machine (a sequential run has no race for the load to widen).
    redis_env = {}
    if backend == "redis":
        redis_env = {"REDIS_URL": request.getfixturevalue("own_redis").url}
        request.getfixturevalue("cpu_load")
    env = project(tmp_path, standin, 100 * BATCHES, **redis_env)
    proc = run(tmp_path, env, "catalog-images", "run", "--parallel", str(BATCHES))
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output[-3000:]
    assert standin.stats()["requests"] == 1, output[-3000:]
    assert f"{BATCHES} batch partitions to materialize" in output
    failed = [line for line in output.splitlines() if " INFO batch batch-" in line and " FAILED (" in line]
    assert len(failed) == BATCHES and all("OPENAI_API_KEY" in line for line in failed), output[-3000:]
    assert_every_batch_stopped_by_the_key(tmp_path)


def test_a_wrong_key_costs_one_call_for_worker_processes_started_together(
    tmp_path: Path, standin: StandInProcess, cpu_load: None
) -> None:
    """Four `dagster asset materialize` processes on one machine, embedded coordination (no Redis)."""
    env = project(tmp_path, standin, 10 * BATCHES)
    catalog = {"ops": {"product_catalog": {"config": {"batch_size": 10}}}}
    module = ["-m", "catalog_assets.definitions"]
    prepared = run(
        tmp_path, env, "dagster", "asset", "materialize", *module, "--select", "product_catalog",
        "--config-json", json.dumps(catalog),
    )  # fmt: skip
    output, _ = prepared.communicate(timeout=300)
    assert prepared.returncode == 0, output[-3000:]
    workers = [
        run(
            tmp_path,
            env,
            "dagster",
            "asset",
            "materialize",
            *module,
            "--select",
            "product_images",
            "--partition",
            f"batch-{n:04d}",
        )  # fmt: skip
        for n in range(BATCHES)
    ]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode != 0, output[-3000:]
        assert "set a valid key in OPENAI_API_KEY" in output, output[-3000:]
    assert standin.stats()["requests"] == 1
    assert_every_batch_stopped_by_the_key(tmp_path)
