"""Benchmark: the main job on embedded defaults over the bundled catalog, then a rerun with nothing to do.

Prints, per format and width, the mean bytes and encode ms per image of the delivery variants (on offline
cards of the catalog and on stand-in API images); then, with variants on and off, wall time, images per
second, CPU ms per image, mean JPEG bytes, Dagster overhead per partition and the time the image reviews
and the alt text and vectors take (the review steps' seconds over the parallel workers, and linked_catalog's
own figure) for each repetition, and the medians. Usage: python benchmarks/bench_pipeline.py [--repeat 3] [--count 500] [--variants both|on|off]
`--reruns-only`: one full run, then the rerun of the complete catalog `--repeat` times and its median
(`--project DIR`: rerun a project a full run completed instead).
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


def encode_figures(products: list[dict], samples: int) -> None:
    """Mean bytes and encode ms (wall, and CPU of the whole process: encoders may use threads) per image for
    each variant format and width."""
    from catalog_assets import variants
    from catalog_assets.cards import render_product_card
    from catalog_assets.prompts import build_prompt
    from catalog_assets.standin.render import render_picture

    step = max(1, len(products) // samples)
    picked = products[::step][:samples]
    sets = {
        "offline card": [render_product_card(p) for p in picked],
        "stand-in API image": [render_picture(build_prompt(p), 1024, 1024) for p in picked],
    }
    print(f"variant encoding, {len(picked)} images each (resize from 1024 px included):")
    for label, images in sets.items():
        for fmt in variants.CONTENT_TYPES:
            for width in (320, 640, 1024):
                sizes, walls, cpus = [], [], []
                for image in images:
                    t0, c0 = time.perf_counter(), time.process_time()
                    data = variants.encode(variants.resized(image, width), fmt)
                    walls.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
                    sizes.append(len(data))
                print(
                    f"  {label:18s} {fmt:4s} {width:4d} px: mean {statistics.mean(sizes) / 1000:6.1f} kB, "
                    f"encode {statistics.mean(walls) * 1000:6.1f} ms wall, "
                    f"{statistics.mean(cpus) * 1000:6.1f} ms CPU per image",
                    flush=True,
                )


def _run(
    workdir: Path, catalog: Path, parallel: int, images_config: str | None = None
) -> tuple[float, float]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REDIS_URL", "CATALOG_S3_BUCKET")
    }
    env["DAGSTER_HOME"] = str(workdir / "dagster_home")
    cpu0, t0 = _children_cpu(), time.perf_counter()
    command = [str(RUNNER), "run", "--catalog", str(catalog), "--parallel", str(parallel)]
    if images_config:
        command += ["--images-config", images_config]
    proc = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
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


def _review_and_embedding_seconds(workdir: Path) -> tuple[float, float]:
    """(seconds of every image_reviews step, summed over the batch runs; seconds linked_catalog spent on
    alt text and vectors, from its materialization's `search_fields_seconds`)."""
    os.environ["DAGSTER_HOME"] = str(workdir / "dagster_home")
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

    reviews = 0.0
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(
            RunsFilter(job_name="product_images_job", statuses=[DagsterRunStatus.SUCCESS])
        )
        for run in runs:
            for step in instance.get_run_step_stats(run.run_id):
                if step.step_key == "image_reviews" and step.start_time and step.end_time:
                    reviews += step.end_time - step.start_time
        latest = instance.get_latest_materialization_event(AssetKey("linked_catalog"))
        meta = latest.asset_materialization.metadata if latest and latest.asset_materialization else {}
        search = meta.get("search_fields_seconds")
    return reviews, float(getattr(search, "value", search) or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=str(PROJECT / "data" / "catalog.json"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--count", type=int, default=None, help="only the catalog's first N products")
    parser.add_argument("--variants", choices=("both", "on", "off"), default="both")
    parser.add_argument("--encode-samples", type=int, default=20, help="images per encode figure (0: none)")
    parser.add_argument(
        "--reruns-only",
        action="store_true",
        help="one full run, then --repeat reruns of the complete catalog (the rerun figure alone)",
    )
    parser.add_argument(
        "--project",
        default=None,
        help="with --reruns-only: a project dir a full run completed (data/store, dagster_home) instead of a new one",
    )
    args = parser.parse_args()
    products = json.loads(Path(args.catalog).read_text())
    if args.reruns_only and args.project:
        _rerun_figures(Path(args.project), Path(args.catalog).resolve(), args, warm_up=True)
        return
    if args.reruns_only:
        catalog = Path(args.catalog).resolve()
        with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
            if args.count:
                catalog = Path(tmp) / "catalog.json"
                catalog.write_text(json.dumps(products[: args.count]))
            _bench_reruns(catalog, args)
        return
    if args.encode_samples:
        encode_figures(products, args.encode_samples)
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        catalog = Path(args.catalog).resolve()
        if args.count:
            catalog = Path(tmp) / "catalog.json"
            catalog.write_text(json.dumps(products[: args.count]))
        modes = ("on", "off") if args.variants == "both" else (args.variants,)
        medians = {
            mode: _bench(catalog, args, None if mode == "on" else '{"variant_formats": []}') for mode in modes
        }
    for mode, wall in medians.items():
        print(f"variants {mode}: median wall {wall:.1f} s")


def _bench(catalog: Path, args: argparse.Namespace, images_config: str | None) -> float:
    print(f"full run, variants {'off' if images_config else 'on (defaults)'}:", flush=True)
    rows = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            workdir = Path(tmp)
            (workdir / "dagster_home").mkdir()
            wall, cpu = _run(workdir, catalog, args.parallel, images_config)
            manifest = json.loads((workdir / "data/store/manifests/latest.json").read_text())
            images = manifest["count"]
            mean_bytes = statistics.mean(r["bytes"] for r in manifest["rows"])
            overhead = _partition_overhead(workdir)
            review_s, search_s = _review_and_embedding_seconds(workdir)
            variant_bytes = [v["bytes"] for r in manifest["rows"] for v in r.get("variants") or []]
            rerun_started = time.time()
            re_wall, _ = _run(workdir, catalog, args.parallel, images_config)
            # a batch the rerun found up to date gets no run and keeps the first run's outcomes
            outcomes = [
                json.loads(p.read_text())
                for p in (workdir / "data/store/state/outcomes").glob("*.json")
                if p.stat().st_mtime >= rerun_started
            ]
            regenerated = sum(1 for o in outcomes for r in o["results"] if r["outcome"] != "skipped")
            row = {
                "images": images,
                "wall_s": wall,
                "images_per_s": images / wall,
                "cpu_ms_per_image": cpu * 1000 / images,
                "mean_jpeg_bytes": mean_bytes,
                "variants": len(variant_bytes),
                "mean_variant_bytes": statistics.mean(variant_bytes) if variant_bytes else 0.0,
                "dagster_overhead_per_partition_s": overhead,
                # the review steps run inside the batch runs, `parallel` at a time: their share of the wall
                "review_steps_s": review_s,
                "review_wall_share_s": review_s / max(1, args.parallel),
                "alt_text_and_vectors_s": search_s,
                "rerun_wall_s": re_wall,
                "rerun_regenerated": regenerated,
            }
            rows.append(row)
            print(
                f"run {i + 1}: "
                + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                flush=True,
            )
    print("median: " + ", ".join(f"{k}={statistics.median(r[k] for r in rows):.2f}" for k in rows[0]))
    return statistics.median(r["wall_s"] for r in rows)


def _bench_reruns(catalog: Path, args: argparse.Namespace) -> None:
    """Wall time of `catalog-images run` over a complete catalog: the plan finds every batch up to date
    and only the catalog and publish runs remain."""
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp:
        workdir = Path(tmp)
        (workdir / "dagster_home").mkdir()
        wall, _ = _run(workdir, catalog, args.parallel)
        print(f"full run: wall_s={wall:.1f}", flush=True)
        _rerun_figures(workdir, catalog, args)


def _rerun_figures(workdir: Path, catalog: Path, args: argparse.Namespace, warm_up: bool = False) -> None:
    if (
        warm_up
    ):  # an existing project: its last publish may predate the code or settings, so it publishes once
        wall, cpu = _run(workdir, catalog, args.parallel)
        print(f"first rerun (not counted): wall_s={wall:.2f}, cpu_s={cpu:.2f}", flush=True)
    walls = []
    for i in range(args.repeat):
        re_wall, re_cpu = _run(workdir, catalog, args.parallel)
        walls.append(re_wall)
        print(f"rerun {i + 1}: wall_s={re_wall:.2f}, cpu_s={re_cpu:.2f}", flush=True)
    print(f"rerun of the complete catalog: median wall {statistics.median(walls):.2f} s", flush=True)


if __name__ == "__main__":
    main()
