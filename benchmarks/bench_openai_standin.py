"""Benchmark: the pipeline with the OpenAI generator against the Images API stand-in (a separate process), by
default 1,000 products at 600 images/min and 2 s latency, no injected faults.

Prints, per repetition and as medians: images/min achieved ÷ the limit (over the generation window, first
call to last answer, and over the whole run), calls per delivered image, 429s received, wall time, and the
`duration_s` of the `product_images` partitions (issue target: ≤ 11 s for 100 products at these settings).

Usage: python benchmarks/bench_openai_standin.py [--repeat 3] [--products 1000] [--parallel 10]
       [--mode inprocess|cli] [--coordination local|redis] [--images-per-minute 600] [--latency 2]
       [--fault KIND=RATE ...]
Default mode: the partitions materialized in this process, `--parallel` at a time, sharing the embedded
limiter. `--mode cli` runs `catalog-images run --parallel N` instead (processes: use --coordination redis
for N > 1, or each process paces itself at the whole limit).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
RUNNER = Path(sys.executable).parent / "catalog-images"
sys.path.insert(0, str(PROJECT))

from catalog_assets.standin import StandInProcess  # noqa: E402 - after the path is set


def _write_catalog(path: Path, count: int, seed: int) -> Path:
    """A catalog of `count` products from the generator script, run as a user runs it."""
    script = PROJECT / "scripts" / "generate_catalog.py"
    command = [sys.executable, str(script), "--count", str(count), "--seed", str(seed), "--out", str(path)]
    subprocess.run(command, check=True, timeout=300)
    return path


def _partition_durations(home: Path) -> list[float]:
    """`duration_s` of every successful product_images materialization recorded under DAGSTER_HOME."""
    os.environ["DAGSTER_HOME"] = str(home)
    from dagster import AssetKey, DagsterInstance, EventRecordsFilter
    from dagster._core.events import DagsterEventType

    with DagsterInstance.get() as instance:
        records = instance.get_event_records(
            EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey("product_images")),
            limit=100_000,
        )
        return [
            float(r.asset_materialization.metadata["duration_s"].value)
            for r in records
            if r.asset_materialization is not None
        ]


def _run_cli(args: argparse.Namespace, catalog: Path, workdir: Path, key: str, base_url: str) -> None:
    """`catalog-images run` in a subprocess, configured through the environment like a user would."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "CATALOG_S3_BUCKET", "CATALOG_STORE_DIR", "CATALOG_IMAGE_MODEL")
    }
    env.update(
        OPENAI_API_KEY=key,
        OPENAI_BASE_URL=base_url,
        CATALOG_IMAGES_PER_MINUTE=str(int(args.images_per_minute)),
        DAGSTER_HOME=str(workdir / "dagster_home"),
    )
    if args.coordination == "redis":
        env["REDIS_URL"] = args.redis_url
    command = [str(RUNNER), "run", "--catalog", str(catalog), "--parallel", str(args.parallel)]
    if args.concurrency:
        command += ["--images-config", json.dumps({"concurrency": args.concurrency})]
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def _run_in_process(args: argparse.Namespace, catalog: Path, workdir: Path, key: str, base_url: str) -> None:
    """The same assets materialized here, `--parallel` partitions at a time in threads, so they share one
    embedded (in-process) rate limiter: the configuration `dagster dev` runs with a pool limit."""
    from dagster import DagsterInstance, materialize

    from catalog_assets.definitions import ALL_ASSETS
    from catalog_assets.resources.embedder import HashingTextEmbedderResource
    from catalog_assets.resources.local_coordination import LocalCoordinationResource
    from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource
    from catalog_assets.resources.store import LocalImageStoreResource

    generator = {"api_key": key, "base_url": base_url, "images_per_minute": int(args.images_per_minute)}
    resources = {
        "image_generator": OpenAIImageGeneratorResource(
            **generator, **({"concurrency": args.concurrency} if args.concurrency else {})
        ),
        "store": LocalImageStoreResource(root=str(workdir / "data/store")),
        "coordination": LocalCoordinationResource(lock_dir=str(workdir / "data/state/locks")),
        "text_embedder": HashingTextEmbedderResource(),
    }
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def run(selection: list[str], partition: str | None = None, config: dict | None = None) -> None:
        result = materialize(
            ALL_ASSETS,
            selection=selection,
            partition_key=partition,
            instance=instance,
            resources=resources,
            run_config={**quiet, **(config or {})},
            raise_on_error=False,
        )
        if not result.success:
            sys.exit(f"{selection} {partition or ''} failed")

    # Compute-log capture redirects the process's stdout/stderr per step: not something threads can share.
    no_capture = {
        "compute_logs": {
            "module": "dagster._core.storage.noop_compute_log_manager",
            "class": "NoOpComputeLogManager",
        }
    }
    with DagsterInstance.local_temp(str(workdir / "dagster_home"), overrides=no_capture) as instance:
        run(["product_catalog"], config={"ops": {"product_catalog": {"config": {"path": str(catalog)}}}})
        partitions = sorted(instance.get_dynamic_partitions("product_batches"))
        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            list(pool.map(lambda key: run(["product_images"], key), partitions))
        run(["image_manifest", "linked_catalog", "generation_report"])


def run_once(args: argparse.Namespace, catalog: Path) -> dict[str, Any]:
    key = f"sk-bench-{secrets.token_hex(8)}"  # a fresh key: a fresh rate-limit bucket in Redis too
    standin_args = ["--api-key", key, "--latency", str(args.latency), "--jitter", str(args.jitter)]
    standin_args += ["--images-per-minute", str(args.images_per_minute)]
    for fault in args.fault:
        standin_args += ["--fault", fault]
    with tempfile.TemporaryDirectory(prefix="bench-openai-") as tmp, StandInProcess(standin_args) as standin:
        workdir = Path(tmp)
        home = workdir / "dagster_home"
        home.mkdir()
        started = time.perf_counter()
        if args.mode == "cli":
            _run_cli(args, catalog, workdir, key, standin.base_url)
        else:
            _run_in_process(args, catalog, workdir, key, standin.base_url)
        wall = time.perf_counter() - started
        stats = standin.stats()
        manifest = json.loads((workdir / "data/store/manifests/latest.json").read_text())
        durations = _partition_durations(home)
    calls = [c for product in stats["products"].values() for c in product["calls"]]
    window = max(c["t_end"] for c in calls) - min(c["t_start"] for c in calls)
    delivered = sum(1 for row in manifest["rows"] if row["source"] in ("generated", "refined"))
    per_minute = args.images_per_minute
    return {
        "images": delivered,
        "rate_vs_limit": delivered / window * 60 / per_minute,
        "rate_vs_limit_wall": delivered / wall * 60 / per_minute,
        "calls_per_image": stats["requests"] / delivered if delivered else float("nan"),
        "429s": stats["by_status"].get("429", 0),
        "wall_s": wall,
        "generation_window_s": window,
        "partition_s_min": min(durations) if durations else float("nan"),
        "partition_s_median": statistics.median(durations) if durations else float("nan"),
        "partition_s_max": max(durations) if durations else float("nan"),
        "in_flight_max": stats["concurrency_high_water"],
    }


def _fmt(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20250313, help="catalog seed (default: the bundled one)")
    parser.add_argument("--images-per-minute", type=float, default=600.0)
    parser.add_argument("--latency", type=float, default=2.0, help="stand-in seconds per image")
    parser.add_argument("--jitter", type=float, default=0.0, help="+/- seconds of latency jitter")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND=RATE", help="inject faults")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--mode",
        choices=("inprocess", "cli"),
        default="inprocess",
        help="inprocess: materialize here, --parallel partitions at once in threads sharing the embedded "
        "limiter; cli: `catalog-images run --parallel N` (processes) in a subprocess",
    )
    parser.add_argument("--parallel", type=int, default=10, help="partitions materialized at once")
    parser.add_argument(
        "--coordination",
        choices=("local", "redis"),
        default="local",
        help="cli mode: local gives each process its own limiter (use --parallel 1); redis shares one",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument(
        "--concurrency", type=int, help="product_images concurrency (default: the generator's)"
    )
    args = parser.parse_args(argv)
    if args.mode == "cli" and args.coordination == "local" and args.parallel > 1:
        print(
            "note: with local coordination every process has its own limiter, so --parallel N sends N times "
            "the limit; use --coordination redis",
            file=sys.stderr,
        )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        catalog = _write_catalog(Path(tmp) / "catalog.json", args.products, args.seed)
        for i in range(args.repeat):
            row = run_once(args, catalog)
            rows.append(row)
            print(f"run {i + 1}: {_fmt(row)}", flush=True)
    medians = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"median of {len(rows)}: {_fmt(medians)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
