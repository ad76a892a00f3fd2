"""The Batch API stand-in: `Batch` objects in the SDK's shape and their lifecycle (validating, in_progress,
finalizing, completed; failed, expired, cancelling, cancelled), run line by line in a thread per batch.
Output and error files are written to disk as lines finish; every input line ends in exactly one of them
(lines a cancellation or expiry stopped: error file, `batch_cancelled` / `batch_expired`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from catalog_assets.standin.config import BATCH_ENDPOINTS, StandInConfig
from catalog_assets.standin.files import FileStore, cursor_page
from catalog_assets.standin.protocol import APIError, invalid

MAX_REPORTED_ERRORS = 50
TERMINAL = ("failed", "completed", "expired", "cancelled")
#: (status code, body, billed images) for one line's request body
LineHandler = Callable[[StandInConfig, str, str, dict[str, Any]], tuple[int, dict[str, Any], int]]


def not_found(batch_id: str) -> APIError:
    return APIError(
        404, f"No batch found with id '{batch_id}'.", "invalid_request_error", None, param="batch_id"
    )


@dataclass
class BatchJob:
    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str]
    created_at: int
    expires_at: int
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    model: str | None = None
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    cancel: threading.Event = field(default_factory=threading.Event)
    #: when the completion window closes (wall clock, not rounded like `expires_at`)
    deadline: float = float("inf")

    def as_dict(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.times.get("in_progress_at"),
            "expires_at": self.expires_at,
            "finalizing_at": self.times.get("finalizing_at"),
            "completed_at": self.times.get("completed_at"),
            "failed_at": self.times.get("failed_at"),
            "expired_at": self.times.get("expired_at"),
            "cancelling_at": self.times.get("cancelling_at"),
            "cancelled_at": self.times.get("cancelled_at"),
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "usage": {
                "input_tokens": usage["input_tokens"],
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage["output_tokens"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage["input_tokens"] + usage["output_tokens"],
            },
            "metadata": self.metadata,
        }


def check_create(req: Any) -> tuple[str, str, str, dict[str, str]]:
    """(input_file_id, endpoint, completion_window, metadata) of a BatchCreateParams body, or a 400."""
    if not isinstance(req, dict):
        raise invalid("", "We could not parse the JSON body of your request.", "invalid_json")
    file_id = req.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise invalid(
            "input_file_id", "Missing required parameter: 'input_file_id'.", "missing_required_parameter"
        )
    endpoint = req.get("endpoint")
    if endpoint not in BATCH_ENDPOINTS:
        raise invalid(
            "endpoint",
            f"Invalid 'endpoint': {endpoint!r}. The stand-in batches {', '.join(BATCH_ENDPOINTS)}.",
        )
    window = req.get("completion_window")
    if window != "24h":
        raise invalid(
            "completion_window", f"Invalid 'completion_window': {window!r}. Only '24h' is supported."
        )
    metadata = req.get("metadata") or {}
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise invalid("metadata", "Invalid 'metadata': at most 16 key-value pairs.", "invalid_metadata")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
            raise invalid(
                "metadata",
                f"Invalid 'metadata' entry {key[:64]!r}: keys are at most 64 characters, values strings of at "
                "most 512.",
                "invalid_metadata",
            )
    return file_id, str(endpoint), window, dict(metadata)


def line_error(code: str, message: str, line: int | None, param: str | None) -> dict[str, Any]:
    return {"code": code, "message": message, "line": line, "param": param}


def validate_input(
    path: Path, endpoint: str, config: StandInConfig
) -> tuple[int, str | None, list[dict[str, Any]]]:
    """(lines, model of the first line, errors) of a batch input file, read as a stream."""
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    count, model = 0, None
    rejected_models: set[str] = set()

    def add(error: dict[str, Any]) -> None:
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(error)

    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            count += 1
            try:
                line = json.loads(raw)
            except ValueError:
                line = None
            if not isinstance(line, dict):
                add(
                    line_error("invalid_json_line", "This line is not parseable as valid JSON.", number, None)
                )
                continue
            custom_id = line.get("custom_id")
            if not isinstance(custom_id, str) or not custom_id:
                add(
                    line_error(
                        "missing_required_parameter",
                        "Missing required parameter: 'custom_id'.",
                        number,
                        "custom_id",
                    )
                )
            elif custom_id in seen:
                add(
                    line_error(
                        "duplicate_custom_id",
                        "The custom_id for this request is a duplicate of another request. The custom_id "
                        "parameter must be unique for each individual request in a batch.",
                        number,
                        "custom_id",
                    )
                )
            else:
                seen.add(custom_id)
            if line.get("method") != "POST":
                add(
                    line_error(
                        "invalid_method", "Only the POST method is supported in a batch.", number, "method"
                    )
                )
            if line.get("url") != endpoint:
                add(
                    line_error(
                        "invalid_url",
                        f"The URL provided for this request does not match the batch endpoint {endpoint}.",
                        number,
                        "url",
                    )
                )
            body = line.get("body")
            if not isinstance(body, dict):
                add(
                    line_error(
                        "missing_required_parameter", "Missing required parameter: 'body'.", number, "body"
                    )
                )
                continue
            line_model = body.get("model") or (
                "gpt-image-2" if endpoint == "/v1/images/generations" else None
            )
            model = model or line_model
            if line_model in config.batch_unsupported_models and line_model not in rejected_models:
                rejected_models.add(line_model)
                add(
                    line_error(
                        "model_not_found",
                        f"The provided model '{line_model}' is not supported by the Batch API. Generate these "
                        "with the synchronous endpoint, or batch a model the Batch API accepts.",
                        number,
                        "body.model",
                    )
                )
    if count == 0:
        errors.append(line_error("empty_file", "The batch input file has no requests.", None, None))
    elif count > config.batch_max_lines:
        errors.insert(
            0,
            line_error(
                "too_many_requests",
                f"The batch input file has {count} requests; at most {config.batch_max_lines} are allowed.",
                None,
                None,
            ),
        )
    return count, model, errors


class BatchRunner:
    """Batches of one server: creation, listing, cancelling, and the worker thread of each batch."""

    def __init__(
        self,
        files: FileStore,
        lock: threading.Lock,
        stopping: threading.Event,
        config: Callable[[], StandInConfig],
        handlers: dict[str, LineHandler],
        on_line: Callable[[BatchJob, str, int, int], None],
        on_end: Callable[[BatchJob], None],
    ) -> None:
        self.files, self.lock, self.stopping = files, lock, stopping
        self.config, self.handlers, self.on_line, self.on_end = config, handlers, on_line, on_end
        self.jobs: dict[str, BatchJob] = {}
        self.threads: list[threading.Thread] = []

    def create(self, req: Any) -> BatchJob:
        file_id, endpoint, window, metadata = check_create(req)
        stored = self.files.get(file_id)
        if stored.purpose != "batch":
            raise invalid("input_file_id", f"File {file_id} was not uploaded with purpose 'batch'.")
        config = self.config()
        now = int(time.time())
        job = BatchJob(
            id=f"batch_{secrets.token_hex(16)}",
            endpoint=endpoint,
            input_file_id=file_id,
            completion_window=window,
            metadata=metadata,
            created_at=now,
            expires_at=now + round(config.batch_window_s),
            deadline=time.time() + config.batch_window_s,
        )
        with self.lock:
            self.jobs[job.id] = job
        thread = threading.Thread(
            target=self._run, args=(job, stored.path), name=f"standin-{job.id}", daemon=True
        )
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return job

    def get(self, batch_id: str) -> BatchJob:
        with self.lock:
            job = self.jobs.get(batch_id)
        if job is None:
            raise not_found(batch_id)
        return job

    def snapshot(self, batch_id: str) -> dict[str, Any]:
        job = self.get(batch_id)
        with self.lock:
            return job.as_dict()

    def listing(self, limit: int, after: str | None) -> dict[str, Any]:
        with self.lock:
            items = [job.as_dict() for job in self.jobs.values()]
        items.reverse()  # newest first (insertion order is creation order)
        return cursor_page(items, limit, after)

    def request_cancel(self, batch_id: str) -> dict[str, Any]:
        job = self.get(batch_id)
        with self.lock:
            if job.status in ("validating", "in_progress"):
                job.status = "cancelling"
                job.times["cancelling_at"] = int(time.time())
                job.cancel.set()
            elif job.status not in ("cancelling", "cancelled"):
                raise APIError(
                    409,
                    f"Cannot cancel a batch with status '{job.status}'.",
                    "invalid_request_error",
                    None,
                )
            return job.as_dict()

    # -- the worker -------------------------------------------------------------------------------------

    def _set(self, job: BatchJob, status: str, stamp: str | None = None) -> None:
        with self.lock:
            if job.status == "cancelling" and status == "in_progress":
                return
            job.status = status
            if stamp:
                job.times[stamp] = int(time.time())

    def _pause(self, job: BatchJob, seconds: float) -> None:
        if seconds > 0 and not self.stopping.is_set():
            job.cancel.wait(seconds)  # a cancellation cuts the wait short

    def _hold(self, job: BatchJob) -> None:
        """While `batch_hold` is set, the batch waits before its next line (in progress, nothing processed);
        a cancellation or the server stopping ends the wait."""
        while self.config().batch_hold and not job.cancel.is_set() and not self.stopping.is_set():
            job.cancel.wait(0.05)

    def _run(self, job: BatchJob, input_path: Path) -> None:
        out: IO[str] | None = None
        err: IO[str] | None = None
        out_id, out_path = self.files.new_path()
        err_id, err_path = self.files.new_path()
        try:
            config = self.config()
            self._pause(job, config.batch_delay_s)
            total, model, errors = validate_input(input_path, job.endpoint, config)
            with self.lock:
                job.model = model
                limit = config.batch_queue_limit
                if not errors and limit is not None and job.endpoint == "/v1/images/generations":
                    queued = sum(
                        other.total
                        for other in self.jobs.values()
                        if other is not job
                        and other.endpoint == job.endpoint
                        and other.status in ("in_progress", "finalizing", "cancelling")
                    )
                    if queued + total > limit:
                        errors = [
                            line_error(
                                "token_limit_exceeded",
                                f"Enqueued token limit reached for {model}: limit {limit} enqueued images, "
                                f"{queued} already in flight, this batch has {total}. Please try submitting "
                                "an equivalent batch later.",
                                None,
                                None,
                            )
                        ]
            if errors:
                with self.lock:
                    job.errors = errors
                self._set(job, "failed", "failed_at")
                return
            with self.lock:
                job.total = total
            self._set(job, "in_progress", "in_progress_at")
            out = open(out_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally
            err = open(err_path, "w", encoding="utf-8")  # noqa: SIM115
            ending = self._lines(job, input_path, out, err)
            out.close()
            err.close()
            with self.lock:
                if ending == "completed" and job.cancel.is_set():
                    ending = "cancelled"  # cancelled after its last line: full output, but cancelled
            final = {"completed": ("completed", "completed_at"), "expired": ("expired", "expired_at")}.get(
                ending, ("cancelled", "cancelled_at")
            )
            if ending == "completed":
                self._set(job, "finalizing", "finalizing_at")
            self._pause(job, self.config().batch_delay_s)
            with self.lock:
                done_out = job.completed > 0
                done_err = job.failed > 0
            if done_out:
                self.files.register(out_id, out_path, f"{job.id}_output.jsonl", "batch_output")
            if done_err:
                self.files.register(err_id, err_path, f"{job.id}_error.jsonl", "batch_output")
            with self.lock:
                job.output_file_id = out_id if done_out else None
                job.error_file_id = err_id if done_err else None
            self._set(job, *final)
        except Exception as exc:  # noqa: BLE001 - a stand-in bug fails the batch visibly, not silently
            with self.lock:
                job.errors = [
                    line_error(
                        "standin_failure", f"stand-in failure: {type(exc).__name__}: {exc}", None, None
                    )
                ]
            self._set(job, "failed", "failed_at")
        finally:
            for handle in (out, err):
                if handle is not None and not handle.closed:
                    handle.close()
            with self.lock:
                registered = {job.output_file_id, job.error_file_id}
            for file_id, path in ((out_id, out_path), (err_id, err_path)):
                if file_id not in registered:
                    path.unlink(missing_ok=True)
            self.on_end(job)

    def _lines(self, job: BatchJob, input_path: Path, out: IO[str], err: IO[str]) -> str:
        """Run every line; returns "completed", "expired" or "cancelled"."""
        ending = "completed"
        processed = 0
        with open(input_path, "rb") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                line = json.loads(raw)
                custom_id = line["custom_id"]
                if ending == "completed":
                    self._hold(job)
                config = self.config()
                if ending == "completed":
                    if job.cancel.is_set() or self.stopping.is_set():
                        ending = "cancelled"
                    elif (
                        config.batch_expire_after_lines is not None
                        and processed >= config.batch_expire_after_lines
                    ) or time.time() >= job.deadline:
                        ending = "expired"
                if ending != "completed":
                    code, message = {
                        "cancelled": ("batch_cancelled", "This request was cancelled before it ran."),
                        "expired": (
                            "batch_expired",
                            "This request could not be executed before the completion window expired.",
                        ),
                    }[ending]
                    self._write(err, custom_id, None, {"code": code, "message": message})
                    with self.lock:
                        job.failed += 1
                    self.on_line(job, custom_id, 0, 0)
                    continue
                self._pause(job, config.batch_line_delay_s)
                status, body, billed = self.handlers[job.endpoint](
                    config, custom_id, job.endpoint, line["body"]
                )
                processed += 1
                response = {"status_code": status, "request_id": f"req_{secrets.token_hex(16)}", "body": body}
                self._write(out if status == 200 else err, custom_id, response, None)
                usage = body.get("usage") if isinstance(body, dict) else None
                with self.lock:
                    if status == 200:
                        job.completed += 1
                    else:
                        job.failed += 1
                    if isinstance(usage, dict):
                        job.usage["input_tokens"] += int(
                            usage.get("input_tokens") or usage.get("prompt_tokens") or 0
                        )
                        job.usage["output_tokens"] += int(usage.get("output_tokens") or 0)
                self.on_line(job, custom_id, status, billed)
        return ending

    @staticmethod
    def _write(
        handle: IO[str], custom_id: str, response: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        line = {
            "id": f"batch_req_{secrets.token_hex(16)}",
            "custom_id": custom_id,
            "response": response,
            "error": error,
        }
        handle.write(json.dumps(line, separators=(",", ":")) + "\n")
        handle.flush()
