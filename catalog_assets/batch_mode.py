"""Batch mode: a partition's products go to OpenAI's Batch API as one JSONL file; a later run ingests the
output. The job record in the store (`state/batch_jobs/<partition>.json`) makes every step idempotent.

One `advance()` per run, under the partition lock: ingest a finished batch, then submit what still needs an
image (refined prompts after a content-policy refusal, bounded resubmission after transient refusals,
expiry or cancellation), or report the batch in flight, or finish with every product's outcome.

Rejected images are retaken as in sync mode (`catalog_assets.retakes`): a product with a "retake" order
gets a line with the retake's prompt and fingerprint, one with a "fallback" order its offline card without
a line. The orders come from the partition's recorded outcomes, which only a finished partition rewrites,
so every run of one submission plans the same lines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx2

from catalog_assets import imaging
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped, classify_openai_error
from catalog_assets.generation import BatchProcessor
from catalog_assets.outcomes import ProductResult
from catalog_assets.prompts import build_prompt, refine_prompt
from catalog_assets.resources.openai_images import OpenAIImageGenerator
from catalog_assets.resources.store import ImageStore
from catalog_assets.retakes import RetakeOrder

if TYPE_CHECKING:
    import openai

logger = logging.getLogger("catalog_assets.generation")

ENDPOINT = "/v1/images/generations"
APP = "catalog-images"
JOBS_PREFIX = "state/batch_jobs/"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: provider statuses that ended without processing every line; the unprocessed lines are resubmitted
UNFINISHED_ENDS = frozenset({"expired", "cancelled"})
#: how far back `batches.list` is read when looking for a batch created before its id was recorded
LOOKUP_MARGIN_S = 600.0
LOOKUP_MAX_BATCHES = 500


def job_key(partition: str) -> str:
    return f"{JOBS_PREFIX}{partition}.json"


def read_job(store: ImageStore, partition: str) -> dict[str, Any]:
    return store.get_json(job_key(partition), default=None) or {}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def custom_id(product_id: str, round_: int, fp: str) -> str:
    """Unique within a file and deterministic (so a resubmitted plan hashes the same): product, round,
    fingerprint. Percent-encoding keeps any product id printable; the record maps it back."""
    return f"{quote(str(product_id), safe='-_.~')[:400]}-a{round_}-{fp[:8]}"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Step:
    """What one run did for a batch partition: `submitted`, `in_flight`, or `complete` (with `results`)."""

    action: str
    message: str
    batch_id: str | None = None
    results: list[ProductResult] = field(default_factory=list)
    lines: int = 0
    provider_status: str | None = None
    request_counts: dict[str, int] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "batch_action": self.action,
            "batch_id": self.batch_id or "",
            "batch_status": self.provider_status or "",
            "batch_lines": self.lines,
            **{f"batch_{k}": v for k, v in self.request_counts.items()},
        }


class BatchPartition:
    """One partition's way through the Batch API, reusing the sync path's prompt, retake, request body, skip
    and store code (`BatchProcessor`); `retakes` are the partition's retake orders, by product id."""

    def __init__(
        self,
        *,
        partition: str,
        generator: OpenAIImageGenerator,
        processor: BatchProcessor,
        store: ImageStore,
        products: Sequence[Mapping[str, Any]],
        max_rounds: int = 3,
        max_lines: int | None = None,
        retakes: Mapping[str, RetakeOrder] | None = None,
        after_create: Callable[[Any], None] | None = None,
    ) -> None:
        self.partition = partition
        self.generator = generator
        self.processor = processor
        self.store = store
        self.products = {p["id"]: p for p in products}
        self.order = [p["id"] for p in products]
        self.max_rounds = max_rounds
        self.max_lines = max_lines
        self.retakes = dict(retakes or {})
        # A fault point between `batches.create` and recording its id (a crash there); None in runs.
        self.after_create = after_create
        self.expected_size = imaging.parse_size(generator.size)

    # -- the record --------------------------------------------------------------------------------
    def _job(self) -> dict[str, Any]:
        job = read_job(self.store, self.partition)
        job.setdefault("partition", self.partition)
        job.setdefault("products", {})
        job.setdefault("results", {})
        job.setdefault("batches", [])
        return job

    def _save(self, job: dict[str, Any]) -> None:
        self.store.put_json(job_key(self.partition), job)

    @property
    def client(self) -> openai.OpenAI:
        return self.generator.client()

    # -- one run -----------------------------------------------------------------------------------
    def advance(self) -> Step:
        job = self._job()
        if job.get("status") == "done":  # a new run of a finished partition: plan afresh (stored ones skip)
            job = {"partition": self.partition, "products": {}, "results": {}, "batches": []}
        if job.get("status") == "intent":
            found = self._find_own_batch(job["content_hash"], float(job.get("intent_at_ts") or 0))
            if found is not None:
                self._record_submitted(job, found)
        if job.get("status") == "submitted":
            batch = self.client.batches.retrieve(job["batch_id"])
            counts = _counts(batch)
            job.update(provider_status=batch.status, request_counts=counts, polled_at=_now())
            if batch.status not in TERMINAL:
                self._save(job)
                return Step(
                    "in_flight",
                    f"{self.partition}: batch {batch.id} is {batch.status} ({_counts_text(counts)}); "
                    "nothing submitted, batch_images_sensor requests the ingest when it ends",
                    batch.id,
                    lines=len(job.get("lines") or {}),
                    provider_status=batch.status,
                    request_counts=counts,
                )
            if batch.status == "failed":
                # refused as a whole, nothing was processed: the lines' round is not spent
                for meta in (job.get("lines") or {}).values():
                    job["products"][meta["product_id"]]["rounds"] = meta["round"] - 1
                job.update(status="failed", message=self._validation_message(batch))
                self._save(job)
                raise RunStopped(ErrorClass.CONFIGURATION, job["message"])
            self._ingest(job, batch)
        return self._submit_or_finish(job)

    # -- submitting ----------------------------------------------------------------------------------
    def _submit_or_finish(self, job: dict[str, Any]) -> Step:
        lines: list[dict[str, Any]] = []
        meta: dict[str, dict[str, Any]] = {}
        for pid in self.order:
            if pid in job["results"]:
                continue
            product = self.products[pid]
            take = self.processor.take(product, self.retakes.get(pid))
            fp = take.fingerprint
            state = job["products"].setdefault(pid, {"rounds": 0, "refined": False, "errors": []})
            result = ProductResult(product_id=pid)
            take.describe(result)
            if self.processor.skip_if_stored(pid, fp, result, exact=take.exact):
                job["results"][pid] = asdict(result)
                continue
            if take.card_ordered:  # still rejected after the last retake: the card, no line
                self.processor.store_ordered_card(product, take, result)
                job["results"][pid] = asdict(result)
                continue
            if state["rounds"] >= self.max_rounds:  # refused on every round: the offline card
                self._fallback(product, take.prompt, fp, state, result, "no image after "
                               f"{state['rounds']} batch submissions")  # fmt: skip
                job["results"][pid] = asdict(result)
                continue
            if self.max_lines is not None and len(lines) >= self.max_lines:
                continue  # over the budget: left for the next run
            round_ = state["rounds"] + 1
            cid = custom_id(pid, round_, fp)
            text = refine_prompt(product) if state["refined"] else take.prompt
            body = self.generator.request_params(text)
            lines.append({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body})
            meta[cid] = {"product_id": pid, "fingerprint": fp, "refined": state["refined"], "round": round_,
                         "base_fingerprint": take.base_fingerprint, "retakes": take.retakes}  # fmt: skip
        if not lines:
            self._save(job)
            if len(job["results"]) < len(self.order):
                raise RunStopped(
                    ErrorClass.BUDGET, f"{self.partition}: max_images allows no batch line in this run"
                )
            results = [ProductResult(**job["results"][pid]) for pid in self.order]
            self._save({**job, "status": "done", "done_at": _now()})
            return Step("complete", f"{self.partition}: every product has its outcome", results=results)
        data = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines).encode()
        digest = content_hash(data)
        if job.get("status") == "failed" and job.get("content_hash") == digest:
            # the same file was refused: sending it again would fail the same way
            raise RunStopped(ErrorClass.CONFIGURATION, job["message"])
        # An earlier intent was looked for by `advance()` and not found: no batch of ours exists.
        job.update(
            status="intent", content_hash=digest, lines=meta, intent_at=_now(), intent_at_ts=time.time()
        )
        job.pop("batch_id", None)
        self._save(job)  # recorded before create: after a crash the batch is found again by its metadata
        uploaded = self.client.files.create(file=("in.jsonl", data), purpose="batch")
        found = self.client.batches.create(
            input_file_id=uploaded.id,
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata={"partition": self.partition, "content_hash": digest, "app": APP},
        )
        if self.after_create is not None:
            self.after_create(found)
        self._record_submitted(job, found)
        retakes = sum(bool(m["retakes"]) for m in meta.values())
        return Step(
            "submitted",
            f"{self.partition}: submitted batch {found.id} with {len(lines)} images "
            f"(round {max(m['round'] for m in meta.values())}"
            + (f"; {retakes} retakes of images rejected in review" if retakes else "")
            + "); batch_images_sensor requests the ingest",
            found.id,
            lines=len(lines),
            provider_status=found.status,
        )

    def _record_submitted(self, job: dict[str, Any], batch: Any) -> None:
        """The batch id, with the round its lines spend, in one write."""
        for meta in (job.get("lines") or {}).values():
            state = job["products"].setdefault(
                meta["product_id"], {"rounds": 0, "refined": False, "errors": []}
            )
            state["rounds"] = meta["round"]
        job.update(status="submitted", batch_id=batch.id, submitted_at=_now(), provider_status=batch.status)
        if batch.id not in job["batches"]:
            job["batches"].append(batch.id)
        self._save(job)

    def _find_own_batch(self, digest: str, since_ts: float) -> Any | None:
        """Our batch of this partition and content, if one was created (a crash may have lost its id)."""
        for seen, batch in enumerate(self.client.batches.list(limit=100)):
            meta = batch.metadata or {}
            ours = meta.get("partition") == self.partition and meta.get("app") == APP
            if ours and meta.get("content_hash") == digest:
                return batch
            if seen >= LOOKUP_MAX_BATCHES or batch.created_at < since_ts - LOOKUP_MARGIN_S:
                return None  # newest first: older ones were made before this plan
        return None

    def _validation_message(self, batch: Any) -> str:
        errors = [e for e in ((batch.errors.data or []) if batch.errors else [])]
        model = self.generator.model
        if any(e.code == "model_not_found" or "model" in (e.param or "") for e in errors):
            return (
                f"{self.partition}: the Batch API refused image model {model!r} (batch {batch.id}): "
                f"{errors[0].message} Remedy: set CATALOG_GENERATION_MODE=sync for this model, or set the "
                "image generator's `model` to one the Batch API accepts, then rerun the partition"
            )
        detail = "; ".join(f"{e.code}: {e.message}" for e in errors[:3]) or "no reason given"
        return f"{self.partition}: batch {batch.id} failed validation ({detail})"

    # -- ingesting -----------------------------------------------------------------------------------
    def _ingest(self, job: dict[str, Any], batch: Any) -> None:
        """Every line of the output and error files, streamed; lines never answered count as transient."""
        lines: dict[str, dict[str, Any]] = job.get("lines") or {}
        seen: set[str] = set()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for item in self._stream(file_id):
                cid = item.get("custom_id")
                if cid not in lines or cid in seen:
                    continue
                seen.add(cid)
                self._ingest_line(job, lines[cid], item)
        for cid, meta in lines.items():
            if cid not in seen:
                error = ImageAPIError(ErrorClass.TRANSIENT, f"line not answered (batch {batch.status})")
                self._refused(job, meta, error)
        job.update(status="ingested", ingested_at=_now(), lines={})
        self._save(job)

    def _stream(self, file_id: str) -> Iterator[dict[str, Any]]:
        with self.client.files.with_streaming_response.content(file_id) as response:
            for raw in response.iter_lines():
                if raw.strip():
                    yield json.loads(raw)

    def _ingest_line(self, job: dict[str, Any], meta: Mapping[str, Any], item: Mapping[str, Any]) -> None:
        pid, fp = meta["product_id"], meta["fingerprint"]
        state = job["products"][pid]
        response = item.get("response") or {}
        status = response.get("status_code")
        if status == 200:
            result = self._result(meta, state)
            result.source = "refined" if meta["refined"] else "generated"
            if self.processor.skip_if_stored(pid, fp, result):  # stored by an ingest that was interrupted
                result.outcome, result.attempts = result.source, state["rounds"]
                job["results"][pid] = asdict(result)
                return
            try:
                generated = self.generator.image_from_body(response.get("body") or {})
                image = imaging.decode_image(generated.data)
                imaging.check_image(image, self.expected_size)
            except (ImageAPIError, imaging.InvalidImage) as exc:
                message = exc.message if isinstance(exc, ImageAPIError) else str(exc)
                self._refused(job, meta, ImageAPIError(ErrorClass.INVALID_IMAGE, message))
                return
            result.model = generated.model
            self.processor.finish(self.products[pid], build_prompt(self.products[pid]), fp, image, result)
            # not saved per line: after a crash the ingest runs again, and each stored image skips
            job["results"][pid] = asdict(result)
            return
        if status is not None:
            error = classify_line(status, (response.get("body") or {}).get("error") or {})
        else:
            err = item.get("error") or {}
            error = ImageAPIError(
                ErrorClass.TRANSIENT,
                f"{err.get('code') or 'error'}: {err.get('message') or 'no answer'}",
                code=err.get("code"),
            )
        self._refused(job, meta, error)

    def _result(self, meta: Mapping[str, Any], state: Mapping[str, Any]) -> ProductResult:
        """The result of a line's product, with the line's fingerprints and retake count (records written
        before retakes had lines carry neither: a first take)."""
        fp = meta["fingerprint"]
        result = ProductResult(product_id=meta["product_id"], prompt_fingerprint=fp)
        result.base_fingerprint = meta.get("base_fingerprint") or fp
        result.retakes = int(meta.get("retakes") or 0)
        result.attempts, result.errors = int(state["rounds"]), list(state["errors"])
        return result

    def _refused(self, job: dict[str, Any], meta: Mapping[str, Any], error: ImageAPIError) -> None:
        """Content policy: refined prompt next round, then the card; transient: next round, bounded; others
        end the product `failed` with the class and message."""
        pid, fp = meta["product_id"], meta["fingerprint"]
        state = job["products"][pid]
        state["errors"].append(error.error_class.value)
        cls = error.error_class
        if cls is ErrorClass.CONTENT_POLICY and not state["refined"]:
            state["refined"] = True
            return
        retryable = cls in (ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED, ErrorClass.INVALID_IMAGE)
        if retryable and state["rounds"] < self.max_rounds:
            return
        result = self._result(meta, state)
        result.error_class, result.message = cls.value, error.message[:500]
        if cls in (ErrorClass.CONTENT_POLICY, ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED,
                   ErrorClass.INVALID_IMAGE):  # fmt: skip
            product = self.products[pid]
            self._fallback(product, build_prompt(product), fp, state, result, error.message[:400])
        else:
            result.outcome = "failed"
        job["results"][pid] = asdict(result)

    def _fallback(
        self,
        product: Mapping[str, Any],
        prompt: str,
        fp: str,
        state: Mapping[str, Any],
        result: ProductResult,
        why: str,
    ) -> None:
        result.attempts, result.errors = int(state["rounds"]), list(state["errors"])
        result.source, result.message = "fallback", why
        self.processor.finish(product, prompt, fp, None, result)


def classify_line(status: int, error: Mapping[str, Any]) -> ImageAPIError:
    """A refused batch line through the one classifier (`classify_openai_error`), as the SDK's exception
    for the same answer would be."""
    message = str(error.get("message") or f"status {status}")
    response = httpx2.Response(status, request=httpx2.Request("POST", f"https://batch.invalid{ENDPOINT}"))
    from openai import APIStatusError

    exc = APIStatusError(message, response=response, body=dict(error))
    return classify_openai_error(exc)


def _counts(batch: Any) -> dict[str, int]:
    counts = batch.request_counts
    if counts is None:
        return {}
    return {"total": counts.total, "completed": counts.completed, "failed": counts.failed}


def _counts_text(counts: Mapping[str, int]) -> str:
    if not counts:
        return "no counts yet"
    return f"{counts.get('completed', 0)} done, {counts.get('failed', 0)} refused of {counts.get('total', 0)}"


def batch_step(
    *,
    partition: str,
    generator: OpenAIImageGenerator,
    processor: BatchProcessor,
    store: ImageStore,
    products: Sequence[Mapping[str, Any]],
    max_rounds: int,
    max_images: int | None,
    max_cost_usd: float | None,
    price_per_image_usd: float,
    retakes: Mapping[str, RetakeOrder] | None = None,
) -> Step:
    """One run's step for a batch partition; budget limits count every submitted line as spent. `retakes`:
    the partition's retake orders (`catalog_assets.retakes.retake_orders`), honoured as in sync mode."""
    limits = [max_images] if max_images is not None else []
    if max_cost_usd is not None and price_per_image_usd > 0:
        limits.append(int(max_cost_usd // price_per_image_usd))
    return BatchPartition(
        partition=partition,
        generator=generator,
        processor=processor,
        store=store,
        products=products,
        max_rounds=max_rounds,
        max_lines=min(limits) if limits else None,
        retakes=retakes,
    ).advance()
