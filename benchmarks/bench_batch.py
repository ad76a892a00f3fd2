"""Benchmark: batch mode end to end — the bundled catalog through `catalog-images run --mode batch` against the
OpenAI API stand-in (a separate process, over HTTP) — plus the ingest of one 100-image output file measured
alone in a fresh process.

Prints, per repetition and as medians:
- requests made to the API in the full run: uploads (files.create), batch creates, polls (batches.retrieve,
  batches.list), downloads (files.content), and the wall time;
- the cost ratio batch ÷ sync: the report's estimated cost over the synchronous price of the billed images;
- for one partition of 100 products at --ingest-size: the output file's size, the ingest process's peak RSS
  above its baseline while it streams and stores the file (VmHWM after clear_refs), and ingest images/s.

Usage: python benchmarks/bench_batch.py [--repeat 3] [--catalog data/catalog.json] [--products N]
       [--size 256x256] [--ingest-size 1024x1024] [--parallel 2] [--poll-interval 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(PROJECT))

from catalog_assets.costs import price_per_image  # noqa: E402 - after the path is set
from catalog_assets.standin import StandInProcess  # noqa: E402

KEY = "sk-bench-batch"

# One partition's Batch API round trip in a fresh process: submit, wait, then the ingest alone, measured.
INGEST = r"""
import json, sys, time
from catalog_assets import state
from catalog_assets.batch_mode import TERMINAL, BatchPartition, read_job
from catalog_assets.generation import BatchProcessor
from catalog_assets.resources.local_coordination import LocalCoordinator
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.openai_images import OpenAIImageGenerator
from catalog_assets.resources.store import LocalImageStore

base_url, key, root, size, partition = sys.argv[1:]
generator = OpenAIImageGenerator(api_key=key, base_url=base_url, size=size, generation_mode="batch",
                                 timeout_s=600.0)
store = LocalImageStore(root)


def step():
    processor = BatchProcessor(generator=generator, fallback=OfflineCardGenerator(), store=store,
                               coordinator=LocalCoordinator(root + "/locks"), run_id="bench")
    products = state.read_batch_products(store, partition)
    return BatchPartition(partition=partition, generator=generator, processor=processor, store=store,
                          products=products).advance()


def status(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    return 0


submitted = step()
client = generator.client()
while client.batches.retrieve(submitted.batch_id).status not in TERMINAL:
    time.sleep(0.2)
batch = client.batches.retrieve(submitted.batch_id)
size_bytes = client.files.retrieve(batch.output_file_id).bytes
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM: the peak from here on is the ingest's
baseline = status("VmRSS")
start = time.perf_counter()
done = step()
seconds = time.perf_counter() - start
print(json.dumps({"action": done.action, "images": len(done.results), "seconds": seconds,
                  "baseline": baseline, "peak": status("VmHWM"), "file_bytes": size_bytes}))
"""


def _project(root: Path, catalog: Path, products: int | None) -> Path:
    (root / "data").mkdir(parents=True)
    rows = json.loads(catalog.read_text(encoding="utf-8"))
    (root / "data" / "catalog.json").write_text(json.dumps(rows[:products] if products else rows))
    (root / "home").mkdir()
    shutil.copyfile(PROJECT / "dagster.yaml", root / "home" / "dagster.yaml")
    return root


def _env(root: Path, standin: StandInProcess, size: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATALOG_", "OPENAI_", "AWS_"))}
    env.pop("REDIS_URL", None)
    env.update(
        DAGSTER_HOME=str(root / "home"),
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=standin.base_url,
        CATALOG_IMAGE_SIZE=size,
        PYTHONPATH=str(PROJECT),
    )
    return env


def full_run(args: argparse.Namespace, standin: StandInProcess) -> dict[str, Any]:
    standin.reset(config=True)
    standin.configure(batch_delay_s=0.05, batch_line_delay_s=0.0)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = _project(Path(tmp), Path(args.catalog), args.products)
        command = [str(BIN / "catalog-images"), "run", "--mode", "batch", "--parallel", str(args.parallel),
                   "--poll-interval", str(args.poll_interval)]  # fmt: skip
        start = time.monotonic()
        done = subprocess.run(command, cwd=root, env=_env(root, standin, args.size), capture_output=True,
                              text=True)  # fmt: skip
        wall = time.monotonic() - start
        if done.returncode != 0:
            sys.exit(f"catalog-images run failed ({done.returncode}):\n{done.stderr[-4000:]}")
        report = (root / "data" / "store" / "reports" / "generation_report.md").read_text(encoding="utf-8")
    stats = standin.stats(products=False)
    calls = stats["endpoints"]
    cost = re.search(r"\*\*Estimated cost\*\*: \$([\d.,]+)", report)
    billed = stats["images_billed_batch"]
    sync = billed * (price_per_image("gpt-image-2", "medium", args.size) or 0.0)
    return {
        "wall_s": wall,
        "uploads": calls.get("files.create", 0),
        "creates": calls.get("batches.create", 0),
        "polls": calls.get("batches.retrieve", 0) + calls.get("batches.list", 0),
        "downloads": calls.get("files.content", 0),
        "requests": sum(calls.get(k, 0) for k in calls if k.startswith(("files.", "batches."))),
        "billed_batch": billed,
        "billed_sync": stats["images_billed_sync"],
        "cost_ratio": float(cost[1].replace(",", "")) / sync if cost and sync else float("nan"),
    }


def ingest_run(args: argparse.Namespace, standin: StandInProcess) -> dict[str, Any]:
    standin.reset(config=True)
    standin.configure(batch_delay_s=0.05, batch_line_delay_s=0.0)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = _project(Path(tmp), Path(args.catalog), 100)
        env = _env(root, standin, args.ingest_size)
        store = root / "data" / "store"
        # the catalog step writes the partition's products to the store
        catalog = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "catalog_assets.definitions", "--select",
             "product_catalog"], cwd=root, env={**env, "CATALOG_STORE_DIR": str(store)}, capture_output=True,
            text=True,
        )  # fmt: skip
        if catalog.returncode != 0:
            sys.exit(f"product_catalog failed:\n{catalog.stderr[-3000:]}")
        done = subprocess.run(
            [sys.executable, "-c", INGEST, standin.base_url, KEY, str(store), args.ingest_size, "batch-0000"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"the ingest failed:\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["action"] == "complete" and figures["images"] == 100, figures
    return {
        "file_mb": figures["file_bytes"] / 1e6,
        "peak_rss_mb": figures["peak"] / 1e6,
        "peak_above_baseline_mb": (figures["peak"] - figures["baseline"]) / 1e6,
        "ingest_images_per_s": figures["images"] / figures["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--catalog", default=str(PROJECT / "data" / "catalog.json"))
    parser.add_argument("--products", type=int, default=None, help="only the first N products")
    parser.add_argument("--size", default="256x256", help="image size of the full run")
    parser.add_argument("--ingest-size", default="1024x1024", help="image size of the 100-image ingest")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with StandInProcess(["--api-key", KEY]) as standin:
        for n in range(args.repeat):
            row = {**full_run(args, standin), **ingest_run(args, standin)}
            rows.append(row)
            print(f"run {n + 1}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)
    print(f"medians of {len(rows)} run(s):")
    for key in rows[0]:
        print(f"  {key:24} {_fmt(statistics.median(r[key] for r in rows))}")


def _fmt(value: float) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
