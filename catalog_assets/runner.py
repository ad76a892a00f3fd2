"""`catalog-images run`: the catalog, every batch in parallel worker processes, then the publish run — each
launched as its named job of definitions.py on the instance under DAGSTER_HOME, so the UI's Jobs page lists
them — with a progress line per step, a summary at the end, and no run left holding the image-API pool."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_module
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from catalog_assets import dagster_internals
from catalog_assets.run_liveness import fail_dead_runs, worker_tags

log = logging.getLogger("catalog_assets.runner")

CATALOG_JOB = "catalog_job"
IMAGES_JOB = "product_images_job"
PUBLISH_JOB = "publish_job"
#: the code location `dagster dev` loads from workspace.yaml (and `-m catalog_assets.definitions`): runs
#: carry its label so the UI lists them under their job
CODE_LOCATION = "catalog_assets.definitions"

LAUNCHED_BY_TAG = "catalog-images/launched-by"

#: the console logs only what needs a reader: the runner prints one line per step and each failure's reason
CONSOLE_WARNINGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CONSOLE_SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
#: after SIGTERM or Ctrl-C, how long workers get to end their runs before they are killed
STOP_GRACE_S = 5.0


# -- launching one run in this process ----------------------------------------------------------------------


def launch(
    instance: DagsterInstance,
    job_name: str,
    *,
    partition: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
    console: Mapping[str, Any] = CONSOLE_WARNINGS,
):
    """Executes the named job of definitions.py in this process, tagged with its code location (so the UI
    lists it under the job) and with this process as its worker."""
    from catalog_assets.definitions import defs

    return defs.resolve_job_def(job_name).execute_in_process(
        run_config={**console, **(run_config or {})},
        instance=instance,
        partition_key=partition,
        run_id=run_id,
        raise_on_error=False,
        tags={
            dagster_internals.REPOSITORY_LABEL_TAG: dagster_internals.repository_label(CODE_LOCATION),
            LAUNCHED_BY_TAG: "catalog-images run",
            **worker_tags(),
            **(tags or {}),
        },
    )


def failure_message(result) -> str:
    """The first line of the reason the run's first failed step gives."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            err = event.step_failure_data.error
            user = err.cause if err.cause else err
            return user.message.strip().splitlines()[0] if user.message else str(err)
    return "see the run's logs in the Dagster UI"


def _batch_counts(result) -> dict[str, int]:
    """made / skipped / failed products of a product_images run, from its materialization or failure."""
    metadata: Mapping[str, Any] = {}
    for event in result.all_events:
        if event.step_key != "product_images":  # the run's image_reviews step has its own figures
            continue
        if event.is_step_materialization:
            metadata = event.step_materialization_data.materialization.metadata
        elif event.is_step_failure and event.step_failure_data.user_failure_data:
            metadata = event.step_failure_data.user_failure_data.metadata
    value = {k: getattr(v, "value", v) for k, v in metadata.items()}
    return {
        "made": sum(int(value.get(f"count_{k}", 0)) for k in ("generated", "refined", "fallback")),
        "skipped": int(value.get("count_skipped", 0)),
        "failed": int(value.get("count_failed", 0)),
    }


def _publish_summary(result) -> dict[str, Any]:
    failed = sorted(
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    )
    report = None
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == "generation_report":
            url = event.step_materialization_data.materialization.metadata.get("report_url")
            report = getattr(url, "value", url)
    return {
        "checks": len(result.get_asset_check_evaluations()),
        "failed_checks": failed,
        "report": report,
    }


# -- worker processes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    job_name: str
    partition: str | None = None
    run_config: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _worker(tasks: list[Task], queue: Any, stop: Any) -> None:
    """Runs `tasks` one after another on one instance (opening it costs more than a batch), reporting each;
    stops after the current run once `stop` is set. SIGTERM interrupts a run as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with DagsterInstance.get() as instance:
            for task in tasks:
                if stop.is_set():
                    break
                start = time.monotonic()
                try:
                    result = launch(
                        instance,
                        task.job_name,
                        partition=task.partition,
                        run_config=task.run_config,
                        run_id=task.run_id,
                        console=CONSOLE_SILENT if task.job_name == PUBLISH_JOB else CONSOLE_WARNINGS,
                    )
                except Exception as exc:  # a framework error for one batch must not hang the others
                    queue.put(("done", task.partition, False, time.monotonic() - start, repr(exc), {}))
                    continue
                extra = _publish_summary(result) if task.job_name == PUBLISH_JOB else _batch_counts(result)
                error = None if result.success else failure_message(result)
                queue.put(("done", task.partition, result.success, time.monotonic() - start, error, extra))
    except KeyboardInterrupt:
        pass
    finally:
        queue.put(("exit", os.getpid()))


class Stopped(Exception):
    """SIGTERM or Ctrl-C reached the runner; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Supervisor:
    """Starts worker processes and yields their reports; on SIGTERM or Ctrl-C stops them, kills the ones
    that do not stop within STOP_GRACE_S, fails their runs with the reason, and raises `Stopped`."""

    def __init__(self) -> None:
        self.ctx = mp.get_context("spawn")
        self.queue = self.ctx.Queue()
        self.stop = self.ctx.Event()
        self.procs: list[Any] = []
        self.signum: int | None = None

    @contextmanager
    def signals(self) -> Iterator[None]:
        def note(signum: int, frame: Any) -> None:
            self.signum = signum

        previous = {s: signal.signal(s, note) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def start(self, task_lists: Sequence[list[Task]]) -> None:
        for tasks in task_lists:
            if tasks:
                proc = self.ctx.Process(target=_worker, args=(tasks, self.queue, self.stop))
                proc.start()
                self.procs.append(proc)

    def reports(self, on_idle: Callable[[], None] | None = None) -> Iterator[tuple]:
        """The workers' reports until every worker has exited; `on_idle` runs whenever none came for 0.5 s."""
        running = {p.pid for p in self.procs}
        while running:
            if self.signum is not None:
                self._shut_down()
            try:
                item = self.queue.get(timeout=0.5)
            except queue_module.Empty:
                for p in self.procs:
                    if p.pid in running and not p.is_alive() and p.exitcode not in (0, None):
                        running.discard(p.pid)  # died without a word: its runs are failed below
                        log.error("worker pid %s died (exit code %s)", p.pid, p.exitcode)
                if on_idle is not None:
                    on_idle()
                continue
            if item[0] == "exit":
                running.discard(item[1])
            else:
                yield item
        for p in self.procs:
            p.join()

    def _shut_down(self) -> None:
        signum = self.signum
        assert signum is not None
        name = signal.Signals(signum).name
        live = [p for p in self.procs if p.is_alive()]
        log.warning("%s: stopping %d worker(s); their runs end as failed", name, len(live))
        self.stop.set()
        for p in live:
            with suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in live:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in live:
            if p.is_alive():
                p.kill()  # a call in flight that does not end in time is abandoned
                p.join()
        with DagsterInstance.get() as instance:
            fail_dead_runs(instance, f"catalog-images run was stopped ({name}) before this run finished")
        raise Stopped(signum)


# -- the whole run --------------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    catalog: str = "data/catalog.json"
    parallel: int = 1
    partitions: Sequence[str] | None = None
    images_config: Mapping[str, Any] | None = None
    #: sync | batch; None: CATALOG_GENERATION_MODE, else sync
    mode: str | None = None
    #: batch mode: least seconds between two polls of one batch
    poll_interval_s: float | None = None


@dataclass
class _Tally:
    batches: int = 0
    failed_batches: list[str] = field(default_factory=list)
    made: int = 0
    skipped: int = 0
    failed_products: int = 0
    up_to_date: int = 0  # batches not launched: nothing to do


def run(options: RunOptions) -> int:
    """Exit 0: every batch and the publish succeeded; 1: a batch or the publish failed; 2: nothing could
    start (catalog, partitions); 128+N: stopped by signal N."""
    started = time.monotonic()
    supervisor = _Supervisor()
    try:
        with supervisor.signals():
            return _run(options, supervisor, started)
    except Stopped as stopped:
        log.error("stopped by %s: runs in progress were marked failed; rerun to finish", stopped)
        return 128 + stopped.signum


def _run(options: RunOptions, supervisor: _Supervisor, started: float) -> int:
    from catalog_assets import batch_runner
    from catalog_assets.partitions import BATCH_PARTITIONS_NAME

    try:
        mode = batch_runner.resolve_mode(options.mode, os.environ)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    if mode == "batch" and (why := batch_runner.refusal(os.environ)):
        log.error("%s", why)
        return 2
    # the definitions, here and in the workers, read the mode when they load
    os.environ["CATALOG_GENERATION_MODE"] = mode
    catalog = Path(options.catalog)
    if not catalog.is_file():
        log.error("%s: catalog file not found%s", catalog, " (it is a directory)" if catalog.is_dir() else "")
        return 2
    with DagsterInstance.get() as instance:
        fail_dead_runs(instance, "found by catalog-images run before launching")
        log.info(
            "DAGSTER_HOME=%s; materializing product_catalog from %s", os.environ["DAGSTER_HOME"], catalog
        )
        result = launch(
            instance,
            CATALOG_JOB,
            run_config={"ops": {"product_catalog": {"config": {"path": str(catalog)}}}},
            console=CONSOLE_SILENT,
        )
        if supervisor.signum is not None:
            raise Stopped(supervisor.signum)
        if not result.success:
            log.error("product_catalog failed: %s", failure_message(result))
            return 2
        partitions = sorted(instance.get_dynamic_partitions(BATCH_PARTITIONS_NAME))
    if options.partitions:
        unknown = sorted(set(options.partitions) - set(partitions))
        if unknown:
            log.error(
                "no batch partition named %s; this catalog has %d: %s",
                ", ".join(unknown),
                len(partitions),
                _span(partitions),
            )
            return 2
        wanted = set(options.partitions)
        partitions = [p for p in partitions if p in wanted]

    parallel = options.parallel
    if (
        mode == "sync"
        and os.environ.get("OPENAI_API_KEY")
        and not os.environ.get("REDIS_URL")
        and parallel > 1
    ):
        # Without Redis each process would pace itself at the account's whole rate limit.
        log.warning("OPENAI_API_KEY is set without REDIS_URL: running batches one at a time (--parallel 1)")
        parallel = 1
    current = set(_up_to_date(partitions, options))
    if current:
        log.info(
            "%s up to date (every product stored with its current fingerprint): no run for %s",
            _batches(len(current)),
            "it" if len(current) == 1 else "them",
        )
    run_batches = batch_runner.run_batches if mode == "batch" else _run_batches
    tally = run_batches(options, supervisor, [p for p in partitions if p not in current], parallel)
    tally.up_to_date = len(current)
    tally.batches += len(current)
    publish = _publish_if_changed(supervisor)
    _summarize(tally, publish, time.monotonic() - started)
    if not publish["ok"]:
        if publish.get("failed_checks"):
            log.error(
                "not published: blocking checks failed (%s); see the report's checks or `catalog-images check`",
                ", ".join(publish["failed_checks"]),
            )
        else:
            log.error("publishing failed: %s", publish["error"])
        return 1
    if tally.failed_batches:
        failed = tally.failed_batches
        log.error(
            "failed batches: %s — rerun with: catalog-images run --partitions %s (already stored images are skipped)",
            ", ".join(failed),
            " ".join(failed),
        )
        return 1
    return 0


def _up_to_date(partitions: Sequence[str], options: RunOptions) -> list[str]:
    """The batches needing no run (catalog_assets.rerun_plan); none when that cannot be told, so every
    batch runs and decides for itself, as without the plan."""
    from catalog_assets.rerun_plan import current_batches

    try:
        return current_batches(partitions, options.images_config)
    except Exception as exc:  # noqa: BLE001 - the plan only saves time; the runs themselves check everything
        log.warning("could not tell which batches are up to date (%s): running every batch", exc)
        return []


def _batches(n: int) -> str:
    return f"{n} batch" if n == 1 else f"{n} batches"


def _span(keys: Sequence[str]) -> str:
    if len(keys) <= 6:
        return ", ".join(keys) or "none"
    return f"{keys[0]} … {keys[-1]}"


def _run_batches(
    options: RunOptions, supervisor: _Supervisor, partitions: list[str], parallel: int
) -> _Tally:
    config = (
        {"ops": {"product_images": {"config": dict(options.images_config)}}} if options.images_config else {}
    )
    total = len(partitions)
    workers = max(1, min(parallel, total))
    log.info("%d batch partitions to materialize with %d parallel worker(s)", total, workers)
    tally = _Tally(batches=total)
    supervisor.start([[Task(IMAGES_JOB, p, config) for p in partitions[i::workers]] for i in range(workers)])
    t0 = time.monotonic()
    reported = set()
    for done, (_, key, ok, seconds, error, counts) in enumerate(supervisor.reports(), start=1):
        reported.add(key)
        if not ok:
            tally.failed_batches.append(key)
        tally.made += counts.get("made", 0)
        tally.skipped += counts.get("skipped", 0)
        tally.failed_products += counts.get("failed", 0)
        eta = (time.monotonic() - t0) / done * (total - done)
        log.info(
            "batch %s %s in %.1fs — %d/%d batches done, %d failed, ETA %.0fs",
            key,
            "ok" if ok else f"FAILED ({error})",
            seconds,
            done,
            total,
            len(tally.failed_batches),
            eta,
        )
    lost = [p for p in partitions if p not in reported]
    if lost:  # a worker died: its runs are failed now, its batches count as failed
        with DagsterInstance.get() as instance:
            fail_dead_runs(instance, "its catalog-images run worker died")
        log.error("batches lost with a worker that died: %s", ", ".join(lost))
        tally.failed_batches.extend(lost)
    supervisor.procs.clear()
    tally.failed_batches.sort()
    return tally


def _publish_if_changed(supervisor: _Supervisor) -> dict[str, Any]:
    """The publish run, unless nothing it reads changed since the last one `catalog-images run` made and
    that run succeeded (catalog_assets.rerun_plan.unchanged_publish): then its manifest, linked catalog and
    report stand as they are. When that cannot be told, it publishes."""
    from catalog_assets.rerun_plan import PublishPlan

    plan = None
    try:
        plan = PublishPlan(PUBLISH_JOB)
        last = plan.unchanged()
    except Exception as exc:  # noqa: BLE001 - publishing again is always safe
        log.warning("could not tell whether anything changed since the last publish (%s): publishing", exc)
        last = None
    if last is not None:
        log.info(
            "nothing changed since the last publish (run %s): manifest, linked catalog and report stand",
            str(last.get("run_id"))[:8],
        )
        return {"ok": True, "unchanged": True, "checks": 0, "failed_checks": [], "report": last.get("report")}
    publish = _publish(supervisor)
    if publish["ok"] and plan is not None:
        try:
            plan.published(publish["run_id"], publish.get("report"))
        except Exception as exc:  # noqa: BLE001 - the next rerun publishes again, that is all
            log.warning("could not record the publish (%s): the next run publishes again", exc)
    return publish


_PUBLISH_EVENTS = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_CHECK_EVALUATION,
}


def _publish(supervisor: _Supervisor) -> dict[str, Any]:
    """The publish job in a worker, with a line per step, materialization and check as they happen."""
    log.info("publishing: image_manifest, linked_catalog, generation_report and their checks")
    run_id = str(uuid.uuid4())
    supervisor.start([[Task(PUBLISH_JOB, run_id=run_id)]])
    outcome: dict[str, Any] = {
        "ok": False,
        "error": "the publish run did not report",
        "failed_checks": [],
        "run_id": run_id,
    }
    with DagsterInstance.get() as instance:
        cursor: list[str | None] = [None]

        def progress() -> None:
            cursor[0] = _print_publish_events(instance, run_id, cursor[0])

        for _, _, ok, _, error, extra in supervisor.reports(on_idle=progress):
            progress()
            outcome = {"ok": ok, "error": error, "run_id": run_id, **extra}
    supervisor.procs.clear()
    return outcome


def _print_publish_events(instance: DagsterInstance, run_id: str, cursor: str | None) -> str | None:
    run = instance.get_run_by_id(run_id)
    if run is None or run.status == DagsterRunStatus.NOT_STARTED:
        return cursor  # its event log is created by the worker when the run starts
    connection = instance.get_records_for_run(run_id, cursor=cursor, of_type=_PUBLISH_EVENTS)
    for record in connection.records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            log.info("publish: %s started", event.step_key)
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            log.error("publish: %s FAILED", event.step_key)
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            log.info("publish: %s written", event.asset_key.to_user_string())
        else:
            evaluation = event.event_specific_data
            verdict = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
            log.info(
                "publish: check %s:%s %s",
                evaluation.asset_key.to_user_string(),
                evaluation.check_name,
                verdict,
            )
    return connection.cursor if connection.records else cursor


def _summarize(tally: _Tally, publish: Mapping[str, Any], seconds: float) -> None:
    log.info(
        "summary: %s (%d failed) in %.0fs — %d up to date with no run, %d images made, %d already "
        "stored, %d products failed",
        _batches(tally.batches),
        len(tally.failed_batches),
        seconds,
        tally.up_to_date,
        tally.made,
        tally.skipped,
        tally.failed_products,
    )
    checks, failed = publish.get("checks", 0), publish.get("failed_checks", [])
    if publish.get("unchanged"):
        log.info("checks: not run again (nothing changed since the last publish)")
    elif failed:
        log.info("checks: %d of %d FAILED: %s", len(failed), checks, ", ".join(failed))
    elif checks:
        log.info("checks: all %d passed", checks)
    else:
        log.info("checks: none ran (the publish run failed before them)")
    log.info("report: %s", publish.get("report") or "not written")
