"""`catalog-images search` and `search-image` as a user types them (subprocesses), on a linked catalog an
offline pipeline run published: a product's own name finds it first, a stored card finds its product, and
every query that cannot be used is one line on stderr with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from catalog_assets.embeddings import HASHING_MODEL
from catalog_assets_tests.conftest import env_without_secrets, write_catalog

BIN = Path(sys.executable).parent
PRODUCTS = 30


def _cli(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "catalog-images"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def _env(store: Path) -> dict:
    env = env_without_secrets()
    env.pop("OPENAI_BASE_URL", None)
    env["CATALOG_STORE_DIR"] = str(store)
    return env


@pytest.fixture
def published(pipeline, sample_products) -> tuple[Path, list[dict]]:
    products = sample_products[:PRODUCTS]
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", products), batch_size=10).success
    assert all(pipeline.images(p).success for p in pipeline.partitions())
    assert pipeline.publish().success
    return pipeline.store_dir, json.loads(pipeline.store.get("catalog/linked_catalog.json"))


def _rows(stdout: str) -> list[list[str]]:
    return [line.split("  ") for line in stdout.splitlines() if line[:2].strip().isdigit()]


def test_search_finds_products_by_their_own_name_and_by_their_stored_image(published, tmp_path) -> None:
    store, linked = published
    env = _env(store)
    product = next(p for p in linked if p["id"] == "PROD-000007")
    found = _cli(["search", product["name"], "--top", "3"], env, tmp_path)
    assert found.returncode == 0, found.stderr[-2000:]
    rows = _rows(found.stdout)
    assert len(rows) == 3
    rank, pid, score, name, url = rows[0]
    assert (rank.strip(), pid, name, url) == ("1", product["id"], product["name"], product["image"]["url"])
    assert float(rows[0][2]) >= float(rows[1][2]) >= float(rows[2][2])

    photo = store / product["image"]["key"]
    by_image = _cli(["search-image", str(photo), "--top", "5"], env, tmp_path)
    assert by_image.returncode == 0, by_image.stderr[-2000:]
    assert by_image.stdout.startswith("query image: Photo showing the text")
    assert product["id"] in [row[1] for row in _rows(by_image.stdout)]
    assert {p["image"]["embedding_model"] for p in linked} == {HASHING_MODEL}


def test_queries_that_cannot_be_used_are_one_line_and_exit_2(tmp_path) -> None:
    store = tmp_path / "empty-store"
    store.mkdir()
    env = _env(store)
    (tmp_path / "notes.jpg").write_text("not a picture\n")
    (tmp_path / "empty.png").write_bytes(b"")
    with (tmp_path / "huge.jpg").open("wb") as huge:
        huge.truncate(50_000_000)  # 50 MB (sparse): refused by its size, never read
    cases = {
        "notes.jpg": "not an image Pillow can read",
        "empty.png": "the file is empty (0 bytes)",
        "huge.jpg": "larger than the",
        "missing.jpg": "no such file",
    }
    for name, expected in cases.items():
        result = _cli(["search-image", str(tmp_path / name)], env, tmp_path)
        assert result.returncode == 2, (name, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (name, lines)
        assert result.stdout == ""
    nothing = _cli(["search", "blue hand soap"], env, tmp_path)
    assert nothing.returncode == 2
    (line,) = nothing.stderr.strip().splitlines()
    assert "no linked catalog in the store" in line and "catalog-images run" in line
    blank = _cli(["search", "   "], env, tmp_path)
    assert blank.returncode == 2
    assert blank.stderr.strip().splitlines() == ["error: the search text is empty"]
