"""The repository stands on its own: nothing in it reads a folder beside the clone, every package the code
imports is declared where it is needed (product or test extra), and `make run` installs the product only."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from catalog_assets_tests.conftest import PROJECT

CODE_DIRS = ("catalog_assets", "catalog_assets_tests", "scripts", "benchmarks", "deploy", ".ci")
CODE_FILES = ("Makefile", "pyproject.toml", "dagster.yaml", "workspace.yaml")
CODE_SUFFIXES = {".py", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".sh", ".lua", ""}
#: how a path to a folder beside the clone gets written: a relative step up into a sibling folder, a path joined with a sibling folder name, that folder's data/, or a step
#: up out of the project root (`PROJECT.parent`, `parents[1].parent`, `PROJECT / ".."`)
OUTSIDE = re.compile(
    r"""\.\./shared|["']shared["']|\bshared/(data|DESIGN|STYLE|NOTES)"""
    r"""|\.parents\[\d\]\.parent\b|\bPROJECT(_ROOT)?\.parent\b|\bPROJECT(_ROOT)?\s*/\s*["']\.\.["']"""
)
#: product dependencies that no module imports, and why they are still the product's
USED_WITHOUT_IMPORT = {
    "dagster-webserver": "serves `dagster dev`, the UI of `make dev`",
    "dagster-postgres": "the run/event storage that the production dagster.yaml names",
}


def code_files() -> list[Path]:
    found = [PROJECT / name for name in CODE_FILES if (PROJECT / name).is_file()]
    for folder in CODE_DIRS:
        for path in sorted((PROJECT / folder).rglob("*")):
            if path.is_file() and path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts:
                found.append(path)
    return found


def test_no_file_points_at_a_folder_beside_the_repo() -> None:
    this = Path(__file__).resolve()
    assert len(code_files()) > 50, "the scan found too few files: CODE_DIRS no longer match the tree"
    offenders = [
        f"{path.relative_to(PROJECT)}:{number}: {line.strip()}"
        for path in code_files()
        if path.resolve() != this
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, "a clone has nothing beside it; put what tests need in the repo:\n" + "\n".join(
        offenders
    )


def test_the_sample_catalog_is_a_file_of_the_repo() -> None:
    from catalog_assets_tests.conftest import SAMPLE_CATALOG

    assert SAMPLE_CATALOG.resolve().is_relative_to(PROJECT.resolve())
    assert SAMPLE_CATALOG.is_file()


# --- declared dependencies ---------------------------------------------------------------------------------


def imported_distributions(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Distribution name -> the files that import it, for every absolute import in `folders` that is not the
    standard library or the project itself."""
    first_party = {"catalog_assets", "catalog_assets_tests"}
    by_module = packages_distributions()
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((PROJECT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top in first_party or top == "__future__":
                        continue
                    distributions = by_module.get(top)
                    assert distributions, f"{path.relative_to(PROJECT)} imports {top}, which is not installed"
                    for name in distributions:
                        found.setdefault(canonicalize_name(name), set()).add(str(path.relative_to(PROJECT)))
    return found


@pytest.fixture(scope="module")
def project_table() -> dict:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_every_package_the_product_imports_is_a_dependency(project_table: dict) -> None:
    imported = imported_distributions(("catalog_assets",))
    missing = {
        name: sorted(files)
        for name, files in imported.items()
        if name not in names(project_table["dependencies"])
    }
    assert not missing, f"imported by the package but not in [project] dependencies: {missing}"


def test_no_product_dependency_is_there_for_the_tests_only(project_table: dict) -> None:
    imported = imported_distributions(("catalog_assets",))
    unused = names(project_table["dependencies"]) - set(imported) - set(USED_WITHOUT_IMPORT)
    assert not unused, (
        f"[project] dependencies the package never imports (test-only? move to the test extra): {unused}"
    )


def test_every_package_the_tests_import_is_declared(project_table: dict) -> None:
    declared = names(project_table["dependencies"]) | names(project_table["optional-dependencies"]["test"])
    imported = imported_distributions(("catalog_assets_tests", "benchmarks", "scripts"))
    missing = {name: sorted(files) for name, files in imported.items() if name not in declared}
    assert not missing, f"imported by tests, benchmarks or scripts but declared nowhere: {missing}"


def test_ruff_is_pinned_to_one_release(project_table: dict) -> None:
    ruff = [Requirement(r) for r in project_table["optional-dependencies"]["test"]]
    ruff = [r for r in ruff if canonicalize_name(r.name) == "ruff"]
    assert len(ruff) == 1 and re.fullmatch(r"==\d+\.\d+\.\d+", str(ruff[0].specifier)), (
        f"`make lint` must mean one ruff release everywhere: {[str(r) for r in ruff]}"
    )


# --- what `make` installs ----------------------------------------------------------------------------------


def make_dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands `make <target>` would run on a machine without a venv (nothing is run)."""
    result = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}", f"DAGSTER_HOME={tmp_path / 'home'}"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [
        line for line in result.stdout.splitlines() if "pip install" in line and "--upgrade pip" not in line
    ]


@pytest.mark.parametrize("target", ["run", "dev"])
def test_the_main_commands_install_the_product_only(tmp_path: Path, target: str) -> None:
    installs = make_dry_run(target, tmp_path)
    assert installs and all(line.endswith(" -e .") for line in installs), installs


@pytest.mark.parametrize("target", ["test", "test-fast", "lint"])
def test_test_and_lint_install_the_test_extra(tmp_path: Path, target: str) -> None:
    installs = make_dry_run(target, tmp_path)
    assert any(line.endswith(" -e '.[test]'") for line in installs), installs
