"""`catalog-images dry-run` as a user types it: what a full run would call and cost, per batch, from the
catalog and the store, with the stand-in counting that no call is made."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.review_commands import reject
from catalog_assets.standin import StandInServer
from catalog_assets_tests.conftest import Pipeline, env_without_secrets, write_catalog
from catalog_assets_tests.support import standin_server_fixtures

CLI = Path(sys.executable).parent / "catalog-images"
KEY = "sk-test-dryrun-31c4a9"


server, standin = standin_server_fixtures(api_key=KEY)


@pytest.fixture
def catalog(pipeline: Pipeline) -> Path:
    """250 products (three batches of at most 100) and two rows the loader quarantines."""
    products = [{"id": f"PROD-{n:06d}", "name": f"Ceramic Mug No. {n}"} for n in range(250)]
    products += [{"id": "../escape", "name": "x"}, {"id": "NO-NAME"}]
    return write_catalog(pipeline.root / "catalog.json", products)


def dry_run(
    pipeline: Pipeline, standin: StandInServer, *args: str, key: str | None = KEY, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **env_without_secrets(),
        "DAGSTER_HOME": os.environ["DAGSTER_HOME"],
        "CATALOG_STORE_DIR": str(pipeline.store_dir),
        "OPENAI_BASE_URL": standin.base_url,
        **({"OPENAI_API_KEY": key} if key else {}),
        **env,
    }
    return subprocess.run(
        [str(CLI), "dry-run", *args],
        cwd=pipeline.root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def table(output: str) -> dict[str, list[str]]:
    """The plan's table: first cell -> the other cells."""
    rows = [line.split() for line in output.splitlines()]
    return {row[0]: row[1:] for row in rows if row and re.fullmatch(r"batch-\d{4}|total", row[0])}


def test_a_dry_run_before_any_run_plans_every_product(pipeline: Pipeline, standin, catalog: Path) -> None:
    done = dry_run(pipeline, standin, "--catalog", str(catalog))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "no API call was made" in out
    assert "model gpt-image-2, 1024x1024, quality medium; $0.042 per image" in out
    assert "250 products in 3 batches (2 of 252 rows quarantined" in out
    # batch | products | stored | to generate | est. calls | est. cost
    assert table(out) == {
        "batch-0000": ["100", "0", "100", "100", "$4.20"],
        "batch-0001": ["100", "0", "100", "100", "$4.20"],
        "batch-0002": ["50", "0", "50", "50", "$2.10"],
        "total": ["250", "0", "250", "250", "$10.50"],
    }
    assert "about 250 API calls (at most 1,000 with every retry), estimated cost $10.50" in out
    assert standin.stats()["requests"] == 0
    assert not pipeline.store_dir.exists() or not list(pipeline.store.list("images/"))


def test_a_dry_run_counts_what_is_stored_with_the_same_fingerprint(
    pipeline: Pipeline, standin, catalog: Path
) -> None:
    assert pipeline.catalog(catalog).success
    pipeline.generator = OpenAIImageGeneratorResource(
        api_key=KEY, base_url=standin.base_url, images_per_minute=None
    )
    assert pipeline.images("batch-0001").success
    calls = standin.stats()["requests"]
    assert calls == 100

    done = dry_run(pipeline, standin, "--catalog", str(catalog))
    assert done.returncode == 0, done.stderr
    plan = table(done.stdout)
    assert plan["batch-0001"] == ["100", "100", "0", "0", "$0.00"]
    assert plan["total"] == ["250", "100", "150", "150", "$6.30"]
    assert standin.stats()["requests"] == calls  # the dry run made none

    only = dry_run(pipeline, standin, "--catalog", str(catalog), "--partitions", "batch-0002")
    assert list(table(only.stdout)) == ["batch-0002", "total"]

    # Another model changes every fingerprint: the stored images would all be made again.
    other = dry_run(pipeline, standin, "--catalog", str(catalog), CATALOG_IMAGE_MODEL="gpt-image-2.5-flare")
    assert other.returncode == 0, other.stderr
    assert table(other.stdout)["batch-0001"] == ["100", "0", "100", "100", "$4.20"]
    assert "100 stored images were made from another prompt, model, size or quality" in other.stdout
    assert standin.stats()["requests"] == calls


def test_a_dry_run_with_a_retired_model_says_the_run_would_stop(
    pipeline: Pipeline, standin, catalog: Path
) -> None:
    done = dry_run(pipeline, standin, "--catalog", str(catalog), CATALOG_IMAGE_MODEL="dall-e-3")
    assert done.returncode == 2
    assert "A run would stop before any call" in done.stderr and "gpt-image-2" in done.stderr
    assert "no price estimate" in done.stderr
    assert standin.stats()["requests"] == 0


def test_a_dry_run_without_a_key_plans_the_offline_renderer(pipeline: Pipeline, standin, catalog) -> None:
    done = dry_run(pipeline, standin, "--catalog", str(catalog), key=None)
    assert done.returncode == 0, done.stderr
    assert "offline renderer" in done.stdout
    assert table(done.stdout)["total"] == ["250", "0", "250", "0", "$0.00"]
    assert "render 250 offline product cards" in done.stdout


def test_a_dry_run_of_a_missing_catalog_fails_clearly(pipeline: Pipeline, standin) -> None:
    done = dry_run(pipeline, standin, "--catalog", "nowhere.json")
    assert done.returncode == 2
    assert "nowhere.json: catalog file not found" in done.stderr


def shuffled_attribute_products(count: int) -> list[dict]:
    """Products whose attribute dicts are in no sorted order (as a hand-edited file has them), a nested
    value included: the run reads its key-sorted batch file, the dry run the catalog file as written."""
    return [
        {
            "id": f"PROD-{n:06d}",
            "name": f"Desk Lamp No. {n}",
            "category": "Home",
            "attributes": {
                "wattage": f"{n % 9 + 3} W",
                "color": "Brass",
                "bulb": "E27",
                "dimensions": {"width": '27"', "height": "40 cm"},
                "arm": "adjustable",
            },
        }
        for n in range(count)
    ]


def test_a_dry_run_right_after_a_run_plans_nothing_whatever_the_attribute_order(
    pipeline: Pipeline, standin
) -> None:
    catalog = write_catalog(pipeline.root / "catalog.json", shuffled_attribute_products(30))
    assert pipeline.catalog(catalog).success
    assert pipeline.images("batch-0000").success  # the offline renderer, as the dry run without a key plans

    done = dry_run(pipeline, standin, "--catalog", str(catalog), key=None)
    assert done.returncode == 0, done.stderr
    assert table(done.stdout)["total"] == ["30", "30", "0", "0", "$0.00"]
    assert "stored images were made from another prompt" not in done.stdout
    assert "Nothing to generate" in done.stdout


def test_a_dry_run_prices_images_the_seed_store_holds_at_zero(
    pipeline: Pipeline, standin, s3_bucket: str
) -> None:
    """Moving the embedded store to S3: what `data/store` holds with the current fingerprint is copied by the
    run without a call, so the dry run plans it as copies at $0, not as images to generate."""
    pipeline.store_dir = pipeline.root / "data" / "store"  # the seed store a run imports from by default
    pipeline.store = LocalImageStore(pipeline.store_dir)
    catalog = write_catalog(pipeline.root / "catalog.json", shuffled_attribute_products(12))
    assert pipeline.catalog(catalog).success
    pipeline.generator = OpenAIImageGeneratorResource(
        api_key=KEY, base_url=standin.base_url, images_per_minute=None
    )
    assert pipeline.images("batch-0000").success
    calls = standin.stats()["requests"]
    assert calls == 12

    done = dry_run(pipeline, standin, "--catalog", str(catalog), CATALOG_S3_BUCKET=s3_bucket)
    assert done.returncode == 0, done.stderr
    assert f"Store: s3://{s3_bucket}" in done.stdout
    # batch | products | stored | to copy | to generate | est. calls | est. cost
    assert table(done.stdout)["total"] == ["12", "0", "12", "0", "0", "$0.00"]
    assert "12 images are copied from the seed store" in done.stdout
    assert standin.stats()["requests"] == calls


def test_a_dry_run_prices_the_retakes_of_rejected_images(pipeline: Pipeline, standin) -> None:
    """A stored image rejected (here by a person) is generated again by the next run: the dry run counts it
    to generate and prices it; once its retakes are used up it gets the offline card, at no cost."""
    catalog = write_catalog(pipeline.root / "catalog.json", shuffled_attribute_products(12))
    assert pipeline.catalog(catalog).success
    pipeline.generator = OpenAIImageGeneratorResource(
        api_key=KEY, base_url=standin.base_url, images_per_minute=None
    )
    assert pipeline.images("batch-0000").success
    first, second = sorted(p["id"] for p in shuffled_attribute_products(12))[:2]
    reject(pipeline.store, first, "shows two bottles")
    reject(pipeline.store, second, "the label is garbled")

    planned = dry_run(pipeline, standin, "--catalog", str(catalog))
    assert planned.returncode == 0, planned.stderr
    # batch | products | stored | to generate | est. calls | est. cost
    assert table(planned.stdout)["total"] == ["12", "10", "2", "2", "$0.08"]
    assert (
        "2 stored images were rejected (in review or by `catalog-images reject`): retaken" in planned.stdout
    )

    calls = standin.stats()["requests"]
    assert pipeline.images("batch-0000").success  # the run the dry run priced: 2 retakes, 2 calls
    assert standin.stats()["requests"] == calls + 2
    reject(pipeline.store, first, "still two bottles")  # its one retake (max_retakes=1) is used up
    after = dry_run(pipeline, standin, "--catalog", str(catalog))
    assert table(after.stdout)["total"] == ["12", "12", "0", "0", "$0.00"]
    assert "1 stored image was rejected with its retakes used up: replaced by the offline card" in (
        after.stdout
    )
    assert standin.stats()["requests"] == calls + 2
