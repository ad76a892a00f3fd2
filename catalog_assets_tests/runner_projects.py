"""Project directories for the runner's tests: a generated catalog (no file outside the repo), the shipped
dagster.yaml in an isolated DAGSTER_HOME, and `catalog-images run` started as a user starts it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from dagster import DagsterRun, DagsterRunStatus, RunsFilter

from catalog_assets_tests.conftest import env_without_secrets
from catalog_assets_tests.dagster_projects import BIN, SHIPPED_INSTANCE, DagsterProject

CATEGORIES = [
    ("Home & Kitchen", "Cookware", "Lodge"),
    ("Sports", "Camping", "Coleman"),
    ("Toys", "Puzzles", "Ravensburger"),
]


def products(count: int) -> list[dict]:
    """`count` plain, valid products PROD-000001..."""
    rows = []
    for i in range(1, count + 1):
        category, subcategory, brand = CATEGORIES[i % len(CATEGORIES)]
        rows.append(
            {
                "id": f"PROD-{i:06d}",
                "name": f"{brand} {subcategory} item {i}",
                "description": f"A {subcategory.lower()} product, number {i} of the test catalog.",
                "category": category,
                "subcategory": subcategory,
                "brand": brand,
                "price": round(5 + i * 1.25, 2),
                "attributes": {"color": ["red", "green", "blue"][i % 3]},
            }
        )
    return rows


def runner_project(root: Path, count: int, env: dict[str, str] | None = None) -> DagsterProject:
    """A project dir with `count` generated products in data/catalog.json and the shipped instance."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "catalog.json").write_text(json.dumps(products(count)))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copyfile(SHIPPED_INSTANCE, home / "dagster.yaml")
    full_env = {
        k: v
        for k, v in env_without_secrets().items()
        if not k.startswith(("CATALOG_", "OPENAI_", "AWS_")) and k != "REDIS_URL"
    }
    full_env["DAGSTER_HOME"] = str(home)
    full_env.update(env or {})
    return DagsterProject(root=root, home=home, env=full_env)


def start_runner(project: DagsterProject, *args: str, log_name: str = "runner") -> subprocess.Popen:
    """`catalog-images run ...` in its own process group (a terminal's job), output in `<log_name>.log`."""
    log = (project.root / f"{log_name}.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "catalog-images"), "run", *args],
        cwd=project.root,
        env=project.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_signals,
    )
    log.close()
    return proc


def _default_signals() -> None:
    # a test runner in the background ignores SIGINT, and children inherit that
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def runs_of(instance, job_name: str, statuses: list[DagsterRunStatus] | None = None) -> list[DagsterRun]:
    return list(instance.get_runs(RunsFilter(job_name=job_name, statuses=statuses or [])))
