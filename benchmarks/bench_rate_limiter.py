"""Benchmark: how much of one shared per-minute budget the Redis GCRA limiter delivers to 1, 4 and 8 processes.

Each process loops acquire() + a simulated request for the same window; efficiency = requests let through ÷
what the limit allows in that window. Also prints the busiest 1 s and 10 s windows against the limit.
Usage: python benchmarks/bench_rate_limiter.py [--per-minute 600] [--duration 20] [--processes 1,4,8] [--runs 1]
Needs Redis: --redis-url, else REDIS_URL, else redis://127.0.0.1:6379/0 (keys under a throwaway prefix).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
import uuid
from typing import Any

import redis

from catalog_assets.resources.coordination import redact_url
from catalog_assets.resources.redis_coordination import RedisCoordinator

BUCKET = "bench:images"


def _worker(options: dict[str, Any], ready: Any, go: Any, start_at: Any, results: Any) -> None:
    coordinator = RedisCoordinator(
        options["url"],
        key_prefix=options["prefix"],
        rate_headroom=options["headroom"],
        rate_burst_s=options["burst_s"],
    )
    coordinator.check()
    ready.put(os.getpid())
    go.wait()
    begin = start_at.value
    end = begin + options["duration"]
    time.sleep(max(0.0, begin - time.time()))
    grants: list[float] = []
    waits: list[float] = []
    while (left := end - time.time()) > 0:
        try:
            waits.append(coordinator.acquire(BUCKET, options["per_minute"], timeout_s=left))
        except TimeoutError:
            break  # the next slot lies past the window: nothing was booked
        grants.append(time.time())
        time.sleep(options["request_s"])  # the simulated API request
    coordinator.close()
    results.put((grants, waits))


def _busiest(times: list[float], window: float) -> int:
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def run_once(ctx: Any, options: dict[str, Any], processes: int) -> dict[str, float]:
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    workers = [
        ctx.Process(target=_worker, args=(options, ready, go, start_at, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=60)
    start_at.value = time.time() + 0.2
    go.set()
    collected = [results.get(timeout=options["duration"] + 60) for _ in workers]
    for worker in workers:
        worker.join(10)
    grants = sorted(t for times, _ in collected for t in times)
    waits = sorted(w for _, ws in collected for w in ws)
    allowed = options["per_minute"] * options["duration"] / 60
    return {
        "processes": processes,
        "requests": len(grants),
        "allowed": allowed,
        "efficiency": len(grants) / allowed,
        "busiest_1s": _busiest(grants, 1.0),
        "busiest_10s": _busiest(grants, 10.0),
        "wait_p50_ms": 1000 * statistics.median(waits) if waits else 0.0,
        "wait_p99_ms": 1000 * waits[int(0.99 * (len(waits) - 1))] if waits else 0.0,
    }


def _cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--per-minute", type=float, default=600.0, help="the shared budget (requests/min)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds each configuration runs")
    parser.add_argument("--processes", default="1,4,8", help="comma-separated process counts")
    parser.add_argument("--runs", type=int, default=1, help="repetitions of every configuration")
    parser.add_argument("--request-s", type=float, default=0.005, help="simulated request time per call")
    parser.add_argument("--headroom", type=float, default=0.98, help="rate_headroom of the coordinator")
    parser.add_argument("--burst-s", type=float, default=0.0, help="rate_burst_s of the coordinator")
    args = parser.parse_args()

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["catalog_assets.resources.redis_coordination"])
    prefix = f"bench-rate-limiter-{uuid.uuid4().hex[:8]}"
    options = {
        "url": args.redis_url,
        "per_minute": args.per_minute,
        "duration": args.duration,
        "request_s": args.request_s,
        "headroom": args.headroom,
        "burst_s": args.burst_s,
    }
    print(
        f"GCRA limiter on {redact_url(args.redis_url)}: {args.per_minute:g}/min shared, {args.duration:g}s windows, "
        f"headroom {args.headroom:g}, burst {args.burst_s:g}s, simulated request {1000 * args.request_s:g} ms"
    )
    print(
        f"{'run':>3} {'procs':>5} {'requests':>8} {'allowed':>7} {'efficiency':>10} "
        f"{'max/1s':>6} {'max/10s':>7} {'wait p50':>9} {'wait p99':>9}"
    )
    per_second = args.per_minute / 60
    for run in range(1, args.runs + 1):
        for processes in (int(p) for p in args.processes.split(",")):
            run_options = {**options, "prefix": f"{prefix}-{run}-{processes}"}
            try:
                row = run_once(ctx, run_options, processes)
            finally:
                _cleanup(args.redis_url, run_options["prefix"])
            print(
                f"{run:>3} {processes:>5} {row['requests']:>8} {row['allowed']:>7.0f} {row['efficiency']:>10.3f} "
                f"{row['busiest_1s']:>3}/{per_second:<2.0f} {row['busiest_10s']:>3}/{10 * per_second:<3.0f} "
                f"{row['wait_p50_ms']:>6.0f} ms {row['wait_p99_ms']:>6.0f} ms"
            )


if __name__ == "__main__":
    main()
