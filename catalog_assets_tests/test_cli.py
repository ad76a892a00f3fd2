"""The Dagster CLI and the project's runner, as subprocesses, the way a user types them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from catalog_assets_tests.conftest import SAMPLE_CATALOG, env_without_secrets

BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path, env: dict, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def project_dir(tmp_path) -> tuple[Path, dict]:
    (tmp_path / "data").mkdir()
    products = json.loads(SAMPLE_CATALOG.read_text())[:30]
    (tmp_path / "data" / "catalog.json").write_text(json.dumps(products))
    env = env_without_secrets()
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    (tmp_path / "dagster_home").mkdir()
    return tmp_path, env


def test_dagster_cli_materializes_one_partition(project_dir):
    cwd, env = project_dir
    base = [str(BIN / "dagster"), "asset", "materialize", "-m", "catalog_assets.definitions"]
    catalog = _run(
        base
        + [
            "--select",
            "product_catalog",
            "--config-json",
            json.dumps({"ops": {"product_catalog": {"config": {"batch_size": 10}}}}),
        ],
        cwd,
        env,
    )
    assert catalog.returncode == 0, catalog.stderr[-3000:]
    images = _run(base + ["--select", "product_images", "--partition", "batch-0002"], cwd, env)
    assert images.returncode == 0, images.stderr[-3000:]
    stored = sorted(p.name for p in (cwd / "data" / "store" / "images").iterdir())
    assert stored == [f"PROD-0000{i}.jpg" for i in range(21, 31)]
    assert "batch-0002: 10/10 products" in images.stderr
    unknown = _run(base + ["--select", "product_images", "--partition", "batch-0099"], cwd, env)
    assert unknown.returncode != 0
    assert "batch-0099" in unknown.stderr


def test_runner_runs_everything_and_records_runs_in_the_instance(project_dir):
    cwd, env = project_dir
    result = _run([str(BIN / "catalog-images"), "run", "--parallel", "2"], cwd, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1/1 batches done" in result.stderr
    assert (cwd / "data" / "store" / "catalog" / "linked_catalog.json").exists()
    assert (cwd / "data" / "store" / "reports" / "generation_report.md").exists()
    # the runs are in the instance under DAGSTER_HOME, where `dagster dev` will show them
    listing = _run([str(BIN / "dagster"), "run", "list", "--limit", "10"], cwd, env)
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert listing.stdout.count("Run: ") == 3  # catalog, one batch, publish


def test_runner_reports_a_bad_catalog_in_one_line(project_dir):
    cwd, env = project_dir
    (cwd / "bad.json").write_text("{not json")
    result = _run([str(BIN / "catalog-images"), "run", "--catalog", "bad.json"], cwd, env)
    assert result.returncode == 2
    assert "bad.json: expected a JSON array of product objects" in result.stderr
    assert not (cwd / "data" / "store").exists()
