"""Benchmark: the main job on embedded defaults over the bundled catalog, then a rerun with nothing to do.

Prints wall time, images per second, CPU ms per image, mean JPEG bytes and Dagster overhead per partition
for each repetition, and the medians. Usage: python benchmarks/bench_pipeline.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RUNNER = Path(sys.executable).parent / "catalog-images"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(workdir: Path, catalog: Path, parallel: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REDIS_URL", "CATALOG_S3_BUCKET")}
    env["DAGSTER_HOME"] = str(workdir / "dagster_home")
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [str(RUNNER), "run", "--catalog", str(catalog), "--parallel", str(parallel)],
        cwd=workdir, env=env, capture_output=True, text=True,
    )
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return wall, cpu


def _partition_overhead(workdir: Path) -> float:
    """Median of (run wall time − the asset's own duration) over the product_images runs."""
    os.environ["DAGSTER_HOME"] = str(workdir / "dagster_home")
    from dagster import AssetKey, DagsterInstance, EventRecordsFilter
    from dagster._core.events import DagsterEventType

    overheads = []
    with DagsterInstance.get() as instance:
        records = instance.get_event_records(
            EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey("product_images")),
            limit=10_000,
        )
        for rec in records:
            mat = rec.asset_materialization
            stats = instance.get_run_stats(rec.run_id)
            if mat is None or not stats.start_time or not stats.end_time:
                continue
            overheads.append((stats.end_time - stats.start_time) - float(mat.metadata["duration_s"].value))
    return statistics.median(overheads) if overheads else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=str(PROJECT / "data" / "catalog.json"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    rows = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            workdir = Path(tmp)
            (workdir / "dagster_home").mkdir()
            wall, cpu = _run(workdir, Path(args.catalog).resolve(), args.parallel)
            manifest = json.loads((workdir / "data/store/manifests/latest.json").read_text())
            images = manifest["count"]
            mean_bytes = statistics.mean(r["bytes"] for r in manifest["rows"])
            overhead = _partition_overhead(workdir)
            re_wall, _ = _run(workdir, Path(args.catalog).resolve(), args.parallel)
            outcomes = [json.loads(p.read_text()) for p in (workdir / "data/store/state/outcomes").glob("*.json")]
            regenerated = sum(1 for o in outcomes for r in o["results"] if r["outcome"] != "skipped")
            row = {
                "images": images,
                "wall_s": wall,
                "images_per_s": images / wall,
                "cpu_ms_per_image": cpu * 1000 / images,
                "mean_jpeg_bytes": mean_bytes,
                "dagster_overhead_per_partition_s": overhead,
                "rerun_wall_s": re_wall,
                "rerun_regenerated": regenerated,
            }
            rows.append(row)
            print(f"run {i + 1}: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    print("median: " + ", ".join(f"{k}={statistics.median(r[k] for r in rows):.2f}" for k in rows[0]))


if __name__ == "__main__":
    main()
