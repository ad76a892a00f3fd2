"""Benchmark: peak memory and wall time of loading a large catalog (200,000 products by default) with
`load_catalog`, each measurement in a fresh subprocess, plus the stable batch assignment of all its ids.

Usage: python benchmarks/bench_catalog_memory.py [--count 200000] [--format json jsonl csv parquet] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
GENERATOR = PROJECT / "scripts" / "generate_catalog.py"
FORMATS = ("json", "jsonl", "csv", "parquet")

# Runs in a fresh interpreter, so each figure is that of one load and nothing else. With tracemalloc on, the
# load is slower and the process larger, so the traced run is a separate process from the timed one.
CHILD = r"""
import json, resource, sys, time, tracemalloc

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

path, fmt, traced = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
from catalog_assets.catalog import assign_batches, load_catalog, products_by_batch

out = {"baseline_rss_mb": rss_mb()}
if traced:
    tracemalloc.start()
t0 = time.perf_counter()
loaded = load_catalog(path, fmt)
out["load_s"] = time.perf_counter() - t0
if traced:
    held, peak = tracemalloc.get_traced_memory()
    out["load_traced_peak_mb"], out["load_traced_held_mb"] = peak / 2**20, held / 2**20
    tracemalloc.reset_peak()
else:
    out["load_rss_mb"] = rss_mb()
out["rows"], out["products"], out["quarantined"] = loaded.rows_read, len(loaded.products), len(loaded.quarantined)

ids = [p["id"] for p in loaded.products]
t0 = time.perf_counter()
assignment = assign_batches(ids)
out["assign_s"] = time.perf_counter() - t0
t0 = time.perf_counter()
again = assign_batches(ids, assignment)  # the next run: every product already has its batch
out["reassign_s"] = time.perf_counter() - t0
t0 = time.perf_counter()
batches = products_by_batch(loaded.products, assignment)
out["group_s"] = time.perf_counter() - t0
assert again == assignment and len(batches) == -(-len(ids) // 100)
out["batches"] = len(batches)
if traced:  # what the assignment and grouping added on top of the loaded catalog
    out["assign_traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20 - out["load_traced_held_mb"]
else:
    out["peak_rss_mb"] = rss_mb()
print(json.dumps(out))
"""


def generate(path: Path, count: int, seed: int | None, fmt: str) -> float:
    cmd = [sys.executable, str(GENERATOR), "--count", str(count), "--format", fmt, "--out", str(path)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=PROJECT)
    return time.perf_counter() - t0


def measure(path: Path, fmt: str, traced: bool) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), fmt, "1" if traced else "0"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"load of {path} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count", type=int, default=200_000, help="products in the catalog (default %(default)s)"
    )
    parser.add_argument(
        "--format", nargs="+", choices=FORMATS, default=["json"], help="catalog formats to load"
    )
    parser.add_argument("--repeat", type=int, default=1, help="loads per format; figures are medians")
    parser.add_argument("--seed", type=int, help="generator seed (default: the generator's)")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        for fmt in args.format:
            path = Path(tmp) / f"catalog.{fmt}"
            gen_s = generate(path, args.count, args.seed, fmt)
            plain = [measure(path, fmt, traced=False) for _ in range(args.repeat)]
            traced = [measure(path, fmt, traced=True) for _ in range(args.repeat)]
            first = plain[0]
            if first["products"] != args.count or first["quarantined"]:
                sys.exit(f"{fmt}: expected {args.count} valid products, got {first}")
            rows.append(
                {
                    "format": fmt,
                    "file MB": path.stat().st_size / 1e6,
                    "generate s": gen_s,
                    "load s": median(plain, "load_s"),
                    "products/s": args.count / median(plain, "load_s"),
                    "base RSS MB": median(plain, "baseline_rss_mb"),
                    "load RSS MB": median(plain, "load_rss_mb"),
                    "peak RSS MB": median(plain, "peak_rss_mb"),
                    "load traced MB": median(traced, "load_traced_peak_mb"),
                    "held traced MB": median(traced, "load_traced_held_mb"),
                    "assign ms": 1000 * median(plain, "assign_s"),
                    "reassign ms": 1000 * median(plain, "reassign_s"),
                    "group ms": 1000 * median(plain, "group_s"),
                    "assign +traced MB": median(traced, "assign_traced_peak_mb"),
                }
            )
            print(f"{fmt}: done ({args.repeat} load(s) plain, {args.repeat} traced)", file=sys.stderr)

    headers = list(rows[0])
    print(f"catalog of {args.count:,} products; medians of {args.repeat} fresh-process load(s) per format")
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        cells = [row["format"]] + [f"{v:,.0f}" if v >= 100 else f"{v:,.2f}" for v in list(row.values())[1:]]
        print("| " + " | ".join(cells) + " |")
    print(
        "\nbase RSS: the interpreter after importing the loader; load RSS: high-water mark after load_catalog; "
        "peak RSS: after batch assignment and grouping as well. traced (tracemalloc, a separate process): peak "
        "of Python allocations during the load, what the loaded catalog holds after it, and what assigning and "
        "grouping 200k ids added on top."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
