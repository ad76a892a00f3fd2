"""Benchmark: how much of the paid-for rate N processes sharing the Redis limiter use against the Images API
stand-in (a separate process, real `openai` SDK over HTTP), with no faults and with the earlier failure mix.

Each process runs the production call path (`CallPolicy`: key gate, budget, breaker, shared GCRA limiter,
retries, the 429 handling of `Coordinator.rate_limited`) on `--concurrency` threads, taking products from
one shared counter until `--duration` seconds have passed, then finishing what it started. Not measured:
Dagster itself (materialization, stores), which `bench_openai_standin.py --mode cli` covers.

Per configuration and repetition it prints, and then the median of the repetitions:
- calls ÷ limit: calls the API's window admitted (every answer but a window 429), started within the window,
  per minute ÷ the limit: how much of the account's allowance was used (the issue's "achieved ÷ limit").
  The window runs from the first call's answer (the first call of a key goes alone, by design) to the
  moment the workers stop starting products;
- images ÷ limit: images delivered per minute within the window ÷ the limit;
- calls per image (all calls, drain included ÷ images delivered), window-429 share (the stand-in's own
  limiter refusing ÷ all calls), fault 429s (injected), shared pauses and rate decreases taken, and the drain
  (seconds after the window until the last started product ended: the tail a hung call makes).

Usage: python benchmarks/bench_scale.py [--processes 4,8] [--mixes none,earlier] [--repeat 3]
       [--duration 60] [--images-per-minute 600] [--latency 1] [--timeout-s 120] [--hang-seconds 30]
Needs Redis: --redis-url, else REDIS_URL, else redis://127.0.0.1:6379/0 (keys under a throwaway prefix).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from catalog_assets.standin import StandInProcess  # noqa: E402 - after the path is set

SIZE = "256x256"  # small images: the benchmark measures the limiter, not Pillow on a shared machine


def _worker(options: dict[str, Any], index: int, counter: Any, go: Any, ready: Any, results: Any) -> None:
    from catalog_assets.call_policy import Attempt, CallPolicy, RunControl
    from catalog_assets.errors import ImageAPIError, RunStopped
    from catalog_assets.generation import GenerationSettings
    from catalog_assets.outcomes import ProductResult
    from catalog_assets.resources.openai_images import OpenAIImageGenerator
    from catalog_assets.resources.redis_coordination import RedisCoordinator

    generator = OpenAIImageGenerator(
        api_key=options["key"],
        base_url=options["base_url"],
        size=SIZE,
        timeout_s=options["timeout_s"],
        images_per_minute=options["images_per_minute"],
        concurrency=options["concurrency"],
    )
    coordinator = RedisCoordinator(options["redis_url"], key_prefix=options["prefix"])
    coordinator.check()
    policy = CallPolicy(
        generator=generator, coordinator=coordinator, settings=GenerationSettings(), control=RunControl()
    )
    ready.put(index)
    go.wait()
    deadline = options["start_at"].value + options["duration"]
    time.sleep(max(0.0, options["start_at"].value - time.time()))
    delivered: list[float] = []  # epoch seconds each image was delivered
    failed = 0
    last_end = 0.0
    lock = threading.Lock()

    def loop() -> None:
        nonlocal failed, last_end
        while time.time() < deadline:
            with counter.get_lock():
                counter.value += 1
                n = counter.value
            product = {"id": f"MUG-{n:06d}", "name": f"Stoneware Mug {n}", "category": "Kitchen"}
            result = ProductResult(product["id"])
            try:
                policy.call_with_retries(product, Attempt(f"A product photo of {product['name']}"), result)
                ok = True
            except (ImageAPIError, RunStopped, TimeoutError):
                ok = False
            with lock:
                now = time.time()
                last_end = max(last_end, now)
                if ok:
                    delivered.append(now)
                else:
                    failed += 1

    with ThreadPoolExecutor(max_workers=options["concurrency"]) as pool:
        for _ in range(options["concurrency"]):
            pool.submit(loop)
    bucket = generator.rate_limit_bucket()
    events = [e.as_dict() for e in coordinator.rate_events(bucket)] if index == 0 else []
    generator.close()
    coordinator.close()
    results.put({"delivered": delivered, "failed": failed, "last_end": last_end, "events": events})


def run_once(ctx: Any, args: argparse.Namespace, processes: int, mix: str) -> dict[str, float]:
    key = f"sk-bench-{secrets.token_hex(8)}"
    standin_args = ["--api-key", key, "--latency", str(args.latency)]
    standin_args += [
        "--images-per-minute",
        str(args.images_per_minute),
        "--hang-seconds",
        str(args.hang_seconds),
    ]
    if mix == "earlier":
        standin_args += ["--earlier-attempt-mix", "--seed", str(args.seed)]
    prefix = f"bench-scale-{uuid.uuid4().hex[:8]}"
    with StandInProcess(standin_args) as standin:
        counter = ctx.Value("q", 0)
        start_at = ctx.Value("d", 0.0)
        go, ready, results = ctx.Event(), ctx.Queue(), ctx.Queue()
        options = {
            "key": key,
            "base_url": standin.base_url,
            "redis_url": args.redis_url,
            "prefix": prefix,
            "timeout_s": args.timeout_s,
            "images_per_minute": int(args.images_per_minute),
            "concurrency": args.concurrency,
            "duration": args.duration,
            "start_at": start_at,
        }
        workers = [
            ctx.Process(target=_worker, args=(options, i, counter, go, ready, results))
            for i in range(processes)
        ]
        try:
            for w in workers:
                w.start()
            for _ in workers:
                ready.get(timeout=120)
            start_at.value = time.time() + 0.5
            go.set()
            collected = [results.get(timeout=args.duration + 10 * args.timeout_s + 120) for _ in workers]
            for w in workers:
                w.join(30)
        finally:
            for w in workers:
                if w.is_alive():
                    w.kill()
            client = redis.Redis.from_url(args.redis_url)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
        stats = standin.stats()
    calls = sorted(
        (c for product in stats["products"].values() for c in product["calls"]), key=lambda c: c["t_start"]
    )
    # The window, on the stand-in's clock: from the first call's answer (that call goes alone, by design of
    # the key gate) to the moment the workers stopped starting products.
    first = calls[0]
    gate_s = first["t_end"] - first["t_start"]
    w_from, w_to = first["t_end"], first["t_start"] + args.duration
    admitted = [c for c in calls if c["outcome"] != "rate_limited" and w_from <= c["t_start"] < w_to]
    begin = start_at.value + gate_s
    end = start_at.value + args.duration
    delivered = sorted(t for r in collected for t in r["delivered"])
    images = len(delivered)
    in_window = sum(1 for t in delivered if begin <= t < end)
    per_window = args.images_per_minute * (w_to - w_from) / 60
    outcomes = stats["by_outcome"]
    events = next((r["events"] for r in collected if r["events"]), [])
    return {
        "calls_vs_limit": len(admitted) / per_window,
        "images_vs_limit": in_window / per_window,
        "calls_per_image": stats["requests"] / images if images else float("nan"),
        "window_429_share": outcomes.get("rate_limited", 0) / stats["requests"],
        "fault_429s": outcomes.get("rate_limit_exceeded", 0),
        "hangs": outcomes.get("hang", 0),
        "images": images,
        "failed": sum(r["failed"] for r in collected),
        "rate_decreases": sum(1 for e in events if e["change"] == "decrease"),
        "drain_s": max(r["last_end"] for r in collected) - end,
        "first_call_s": gate_s,
    }


def _fmt(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="4,8", help="comma-separated process counts")
    parser.add_argument(
        "--mixes", default="none,earlier", help="none and/or earlier (the earlier failure mix)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds products are started for")
    parser.add_argument("--images-per-minute", type=float, default=600.0)
    parser.add_argument("--latency", type=float, default=1.0, help="stand-in seconds per image")
    parser.add_argument("--concurrency", type=int, default=32, help="threads per process (the generator's)")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="the generator's per-call timeout_s")
    parser.add_argument("--hang-seconds", type=float, default=30.0, help="how long the stand-in's hangs last")
    parser.add_argument("--seed", type=int, default=0, help="the stand-in's fault seed")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["catalog_assets.call_policy", "catalog_assets.resources.redis_coordination"])
    print(
        f"stand-in: {args.images_per_minute:g} images/min, {args.latency:g}s latency, hangs {args.hang_seconds:g}s; "
        f"{args.duration:g}s windows, {args.concurrency} threads/process, timeout_s {args.timeout_s:g}; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    for mix in args.mixes.split(","):
        for processes in (int(p) for p in args.processes.split(",")):
            rows = []
            for i in range(args.repeat):
                row = run_once(ctx, args, processes, mix)
                rows.append(row)
                print(f"{processes} processes, mix {mix}, run {i + 1}: {_fmt(row)}", flush=True)
            medians = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            print(
                f"{processes} processes, mix {mix}, median of {len(rows)}: {_fmt(medians)}; "
                f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
