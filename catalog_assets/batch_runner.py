"""`catalog-images run --mode batch`: every batch partition submitted by its own `product_images` run, then
this process waits — polling the Batch API with backoff, one progress line at a time — and ingests each
finished batch in a `product_images` run keyed by its batch id, the key `batch_images_sensor` uses, so the
runner and the sensor never both ingest a batch. Stopping leaves the batches in flight; a rerun picks them up."""

from __future__ import annotations

import logging
import os
import queue as queue_module
import signal
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from catalog_assets import dagster_internals
from catalog_assets.batch_mode import read_job
from catalog_assets.batch_sensor import BATCH_ID_TAG, INGEST_TAG, batch_requests
from catalog_assets.run_liveness import fail_dead_runs, fail_if_dead

log = logging.getLogger("catalog_assets.runner")

MODES = ("sync", "batch")
SENSOR_NAME = "batch_images_sensor"
#: default least seconds between two polls of one batch; it grows with the batch's age up to MAX_POLL_S
POLL_INTERVAL_S = 10.0
MAX_POLL_S = 120.0
#: a progress line at least this often while waiting, and whenever something changed
PROGRESS_EVERY_S = 30.0
MADE = ("generated", "refined", "fallback")
#: outcomes of a product whose image is in the store
STORED = (*MADE, "skipped")
_UNFINISHED = (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)  # fmt: skip


def resolve_mode(requested: str | None, env: Mapping[str, str]) -> str:
    """`--mode` if given, else CATALOG_GENERATION_MODE, else sync; ValueError names a bad value."""
    raw = requested if requested is not None else (env.get("CATALOG_GENERATION_MODE") or "sync")
    mode = raw.strip().lower()
    if mode not in MODES:
        source = "--mode" if requested is not None else "CATALOG_GENERATION_MODE"
        raise ValueError(f"{source} must be 'sync' or 'batch', not {raw!r}")
    return mode


def refusal(env: Mapping[str, str]) -> str | None:
    """Why batch mode cannot run in `env`, in one line; None when it can."""
    if not env.get("OPENAI_API_KEY"):
        return (
            "batch mode sends the images to OpenAI's Batch API, and OPENAI_API_KEY is not set: set it (and "
            "OPENAI_BASE_URL for another endpoint, such as the stand-in), or run with --mode sync"
        )
    return None


# -- worker processes: a pool fed from a queue (ingests are requested as batches finish) ----------------------


@dataclass(frozen=True)
class ImagesTask:
    """One `product_images` run: `submit` (submit or recover a partition's batch) or `ingest` (a finished
    batch, run key = its id)."""

    kind: str
    partition: str
    run_config: Mapping[str, Any] = field(default_factory=dict)
    batch_id: str | None = None

    def tags(self) -> dict[str, str]:
        if self.kind != "ingest" or not self.batch_id:
            return {INGEST_TAG: "submit"}
        return {
            INGEST_TAG: "ingest",
            BATCH_ID_TAG: self.batch_id,
            dagster_internals.RUN_KEY_TAG: self.batch_id,
            # the sensor sees its own run key taken and requests no second ingest of this batch
            dagster_internals.SENSOR_NAME_TAG: SENSOR_NAME,
        }


def _pool_worker(tasks: Any, queue: Any, stop: Any) -> None:
    """Runs the tasks it takes from `tasks` (None: stop) on one instance, reporting each to `queue`."""
    from catalog_assets.runner import IMAGES_JOB, _raise_interrupt, failure_message, launch

    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with DagsterInstance.get() as instance:
            while not stop.is_set():
                task = tasks.get()
                if task is None:
                    break
                start = time.monotonic()
                try:
                    result = launch(
                        instance, IMAGES_JOB, partition=task.partition, run_config=task.run_config,
                        tags=task.tags(),
                    )  # fmt: skip
                except Exception as exc:  # a framework error for one batch must not hang the others
                    queue.put(("done", task, False, time.monotonic() - start, repr(exc)))
                    continue
                error = None if result.success else failure_message(result)
                queue.put(("done", task, result.success, time.monotonic() - start, error))
    except KeyboardInterrupt:
        pass
    finally:
        queue.put(("exit", os.getpid()))


# -- what the runner knows of each partition -------------------------------------------------------------------


@dataclass
class _Partition:
    key: str
    state: str = "pending"  # pending | running | in_flight | done | failed
    job: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class BatchProgress:
    """Provider counts per batch id, and the first observation, for the ETA."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # batch id -> (processed, total)
    first: tuple[float, int] | None = None
    ingested: set[str] = field(default_factory=set)

    def observe(self, batch_id: str, batch: Any, now: float) -> None:
        counts = batch.request_counts
        if counts is None:
            return
        self.counts[batch_id] = (int(counts.completed) + int(counts.failed), int(counts.total))
        if self.first is None:
            self.first = (now, self.processed)

    @property
    def processed(self) -> int:
        return sum(done for done, _ in self.counts.values())

    def eta(self, now: float) -> str:
        left = sum(total - done for done, total in self.counts.values())
        if not self.counts:
            return "ETA unknown (no provider counts yet)"
        if left == 0:
            return "ETA 0s"
        if self.first is None or now <= self.first[0] or self.processed <= self.first[1]:
            return "ETA unknown (no line processed since the first poll)"
        rate = (self.processed - self.first[1]) / (now - self.first[0])
        return f"ETA {left / rate:.0f}s"


class BatchModeRun:
    """Submits every partition, waits for its batches and ingests each once; `run()` returns the tally."""

    def __init__(self, options: Any, supervisor: Any, partitions: Sequence[str], parallel: int) -> None:
        self.options, self.supervisor = options, supervisor
        self.parts = {p: _Partition(p) for p in partitions}
        self.workers = max(1, min(parallel, len(partitions)))
        self.config = (
            {"ops": {"product_images": {"config": dict(options.images_config)}}}
            if options.images_config
            else {}
        )
        self.poll_s = float(getattr(options, "poll_interval_s", None) or POLL_INTERVAL_S)
        self.progress = BatchProgress()
        self.polled: dict[str, float] = {}
        self.submitted: set[str] = set()  # every batch id seen for these partitions
        self.tasks: Any = None

    # -- the whole wait ------------------------------------------------------------------------------------
    def run(self) -> Any:
        from catalog_assets.definitions import resources_for_environment
        from catalog_assets.runner import _Tally

        # one line per poll of the SDK's HTTP client would bury the progress lines
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        resources = resources_for_environment()
        with ExitStack() as stack, DagsterInstance.get() as instance:
            self.store = stack.enter_context(
                resources["store"].process_config_and_initialize_cm()
            ).get_client()
            generator = stack.enter_context(
                resources["image_generator"].process_config_and_initialize_cm()
            ).get_client()
            self.client = generator.client()
            self.instance = instance
            self._start()
            self._wait()
        tally = _Tally(batches=len(self.parts))
        for part in self.parts.values():
            if part.state == "failed":
                tally.failed_batches.append(part.key)
            results = (part.job.get("results") or {}).values()
            tally.made += sum(r.get("outcome") in MADE for r in results)
            tally.skipped += sum(r.get("outcome") == "skipped" for r in results)
            tally.failed_products += sum(r.get("outcome") == "failed" for r in results)
        tally.failed_batches.sort()
        return tally

    def _start(self) -> None:
        in_flight = []
        for part in self.parts.values():
            part.job = read_job(self.store, part.key)
            if part.job.get("status") == "submitted" and part.job.get("batch_id"):
                part.state = "in_flight"
                self.submitted.add(part.job["batch_id"])
                in_flight.append(part.key)
        pending = [p for p in self.parts.values() if p.state == "pending"]
        log.info(
            "batch mode: %d batch partitions — %d to submit, %d with a batch already in flight (nothing is "
            "submitted for those); %d worker(s), polling each batch every %gs or more",
            len(self.parts),
            len(pending),
            len(in_flight),
            self.workers,
            self.poll_s,
        )
        sup = self.supervisor
        self.tasks = sup.ctx.Queue()
        for _ in range(self.workers):
            proc = sup.ctx.Process(target=_pool_worker, args=(self.tasks, sup.queue, sup.stop))
            proc.start()
            sup.procs.append(proc)
        for part in pending:
            self._launch(ImagesTask("submit", part.key, self.config))

    def _launch(self, task: ImagesTask) -> None:
        self.parts[task.partition].state = "running"
        self.tasks.put(task)

    def _wait(self) -> None:
        sup = self.supervisor
        last_line, changed = 0.0, True
        live = {p.pid for p in sup.procs}
        while any(p.state in ("pending", "running", "in_flight") for p in self.parts.values()):
            if sup.signum is not None:
                self._stop()
            try:
                item = sup.queue.get(timeout=0.5)
            except queue_module.Empty:
                item = None
            if item is not None and item[0] == "exit":
                live.discard(item[1])
            elif item is not None:
                self._finished(*item[1:])
                changed = True
            for p in sup.procs:
                if p.pid in live and not p.is_alive():
                    live.discard(p.pid)
                    log.error("worker pid %s died (exit code %s)", p.pid, p.exitcode)
            if not live:
                self._workers_gone()
                break
            changed |= self._poll()
            now = time.monotonic()
            if changed or now - last_line >= PROGRESS_EVERY_S:
                log.info(self._progress_line())
                last_line, changed = now, False
        self._close_pool(live)

    def _finished(self, task: ImagesTask, ok: bool, seconds: float, error: str | None) -> None:
        part = self.parts[task.partition]
        part.job = read_job(self.store, part.key)
        if task.kind == "ingest" and task.batch_id:
            self.progress.ingested.add(task.batch_id)
        status, batch_id = part.job.get("status"), part.job.get("batch_id")
        if not ok:
            part.state, part.error = "failed", error
            log.error("batch %s: %s run FAILED in %.1fs (%s)", part.key, task.kind, seconds, error)
        elif status == "done":
            part.state = "done"
            log.info("batch %s: every product has its outcome (%s run, %.1fs)", part.key, task.kind, seconds)
        elif status == "submitted" and batch_id:
            part.state = "in_flight"
            new = batch_id not in self.submitted
            self.submitted.add(batch_id)
            lines = len(part.job.get("lines") or {})
            if new and task.kind == "ingest":
                log.info("batch %s: ingested %s, resubmitted %d refused line(s) as %s", part.key,
                         task.batch_id, lines, batch_id)  # fmt: skip
            elif new:
                log.info("batch %s: submitted %s with %d line(s)", part.key, batch_id, lines)
        else:
            part.state = "failed"
            part.error = f"its {task.kind} run ended with the batch job {status or 'missing'}"
            log.error("batch %s: %s", part.key, part.error)

    def _poll(self) -> bool:
        """Polls the in-flight batches that are due; launches the ingest of each finished one."""
        waiting = [p for p in self.parts.values() if p.state == "in_flight"]
        if not waiting:
            return False
        observed: dict[str, Any] = {}
        requests, seen, _ = batch_requests(
            [p.job for p in waiting], self.client, self.polled, time.time(),
            min_s=self.poll_s, max_s=max(MAX_POLL_S, self.poll_s), observed=observed,
        )  # fmt: skip
        self.polled.update(seen)
        now = time.monotonic()
        for batch_id, batch in observed.items():
            self.progress.observe(batch_id, batch, now)
        for request in requests:
            part = self.parts[request.partition_key]
            batch_id = request.tags.get(BATCH_ID_TAG)
            if not batch_id:
                continue
            if self._ingest_elsewhere(part, batch_id):
                continue
            log.info("batch %s: batch %s %s, ingesting", part.key, batch_id, observed[batch_id].status)
            self._launch(ImagesTask("ingest", part.key, self.config, batch_id))
        return bool(requests)

    def _ingest_elsewhere(self, part: _Partition, batch_id: str) -> bool:
        """False when this runner should ingest `batch_id` now; True while another run (the sensor's) does,
        or once the partition's job moved on without this runner."""
        fresh = read_job(self.store, part.key)
        status = fresh.get("status")
        if status == "done":
            part.job, part.state = fresh, "done"
            return True
        if status == "submitted" and fresh.get("batch_id") != batch_id:  # ingested and resubmitted elsewhere
            part.job = fresh
            self.submitted.add(fresh["batch_id"])
            return True
        runs = self.instance.get_runs(RunsFilter(tags={dagster_internals.RUN_KEY_TAG: batch_id}))
        # an unfinished ingest whose worker is gone (killed, possibly after this runner started) is failed
        # here, so this runner takes the batch over instead of waiting for it for ever
        reason = "found by catalog-images run while waiting for its ingest"
        if any(r.status in _UNFINISHED and not fail_if_dead(self.instance, r, reason) for r in runs):
            self.polled[batch_id] = time.time()  # look again after the poll interval
            return True
        if status == "submitted":
            return False
        # ingested elsewhere, and that run ended before submitting the rest: one more run continues it
        part.job = fresh
        self._launch(ImagesTask("submit", part.key, self.config))
        return True

    def _progress_line(self) -> str:
        states = [p.state for p in self.parts.values()]
        stored = sum(
            sum(r.get("outcome") in STORED for r in (p.job.get("results") or {}).values())
            for p in self.parts.values()
        )
        ingested = len(self.progress.ingested)
        return (
            f"batches: {len(self.submitted)} submitted, {len(self.submitted) - ingested} in progress, "
            f"{ingested} ingested; partitions {states.count('done')}/{len(states)} complete, "
            f"{states.count('failed')} failed; {stored} images stored; provider "
            f"{self.progress.processed}/{sum(t for _, t in self.progress.counts.values())} lines done, "
            f"{self.progress.eta(time.monotonic())}"
        )

    def _workers_gone(self) -> None:
        fail_dead_runs(self.instance, "its catalog-images run worker died")
        for part in self.parts.values():
            if part.state in ("pending", "running", "in_flight"):
                part.state, part.error = "failed", "every worker died"
        log.error("every worker died: the batches still in flight are picked up by a rerun")

    def _close_pool(self, live: set[int]) -> None:
        sup = self.supervisor
        for _ in live:
            self.tasks.put(None)
        deadline = time.monotonic() + 60
        while live and time.monotonic() < deadline:
            try:
                item = sup.queue.get(timeout=0.5)
            except queue_module.Empty:
                live = {p.pid for p in sup.procs if p.pid in live and p.is_alive()}
                continue
            if item[0] == "exit":
                live.discard(item[1])
        for p in sup.procs:
            p.join()
        sup.procs.clear()

    def _stop(self) -> None:
        flying = sorted(p.key for p in self.parts.values() if p.state == "in_flight")
        log.warning(
            "stopping: %d batch(es) stay in flight with the provider (%s); rerun `catalog-images run --mode "
            "batch` to pick them up — it submits nothing for them",
            len(flying),
            ", ".join(flying) or "none",
        )
        self.supervisor._shut_down()  # raises Stopped


def run_batches(options: Any, supervisor: Any, partitions: list[str], parallel: int) -> Any:
    """The batch-mode counterpart of the runner's `_run_batches`: the tally once every partition ended."""
    return BatchModeRun(options, supervisor, partitions, parallel).run()
