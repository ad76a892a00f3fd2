"""One batch's stored images through the reviewer, each once per fingerprint (the image's sha256 and the
reviewer's label): a rerun reviews only new or changed images. Offline cards are reviewed by the offline
reviewer (the pipeline drew them from the product's fields), so a paid vision model never looks at them.
Paid reviews go through the coordinator's shared rate limiter and breaker of the reviewer's own bucket (see
`call_guard`) and stop at the pass's review budget (`budget.ReviewBudget`). Only the flow lives here;
`image_reviews` and `linked_catalog` call it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from catalog_assets.budget import ReviewBudget
from catalog_assets.call_guard import NotSent
from catalog_assets.call_ledger import CallRecorder
from catalog_assets.costs import review_cost_usd
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped
from catalog_assets.resources.coordination import Coordinator
from catalog_assets.resources.image_reviewer import ImageReviewer, OfflineImageReviewer, is_offline_card
from catalog_assets.resources.store import ImageStore
from catalog_assets.review import ImageReview

logger = logging.getLogger("catalog_assets.reviewing")

#: classes worth another attempt of the same review
RETRIED = frozenset({ErrorClass.RATE_LIMITED, ErrorClass.TRANSIENT, ErrorClass.INVALID_IMAGE})
#: classes that stop every review of the run: no other review can succeed either
STOPS = frozenset({ErrorClass.QUOTA_EXHAUSTED, ErrorClass.CONFIGURATION})


def review_fingerprint(image_sha256: str, reviewer_label: str) -> str:
    """What a review was made of: the image's bytes and who reviewed it with which prompt."""
    return hashlib.sha256(f"{image_sha256}\x1f{reviewer_label}".encode()).hexdigest()[:32]


def reviewable(outcome: Mapping[str, Any]) -> bool:
    """True when the outcome names a stored image (a failed product has none)."""
    return bool(outcome.get("key") and outcome.get("sha256")) and outcome.get("outcome") != "failed"


@dataclass
class ReviewStats:
    """What one pass did: reviews made now, reused, failed, and what the paid ones cost."""

    reviewed: int = 0
    reused: int = 0
    rejected: int = 0
    calls: int = 0
    paid_reviews: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (product, class, message)
    unreviewed: list[str] = field(default_factory=list)  # left for the next run by the review budget
    stopped: str | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "reviews_made": self.reviewed,
            "reviews_reused": self.reused,
            "reviews_failed": len(self.failed),
            "rejected": self.rejected,
            "review_calls": self.calls,
            "review_cost_usd": round(self.cost_usd, 6),
            "review_cost_per_image_usd": round(self.cost_usd / self.paid_reviews, 6)
            if self.paid_reviews
            else 0.0,
            "review_input_tokens": self.input_tokens,
            "review_output_tokens": self.output_tokens,
            "reviews_left_unreviewed": len(self.unreviewed),
            **({"reviews_stopped": self.stopped} if self.stopped else {}),
        }


def missing_reviews(
    outcomes: Mapping[str, Mapping[str, Any]],
    previous: Mapping[str, Mapping[str, Any]],
    reviewer: ImageReviewer,
) -> list[str]:
    """Products whose stored image has no review of its current fingerprint."""
    offline = OfflineImageReviewer()
    missing = []
    for pid, outcome in outcomes.items():
        if not reviewable(outcome):
            continue
        chosen = offline if is_offline_card(outcome.get("model")) else reviewer
        fp = review_fingerprint(outcome["sha256"], chosen.fingerprint_label())
        if (previous.get(pid) or {}).get("review_fingerprint") != fp:
            missing.append(pid)
    return sorted(missing)


class BatchReviewer:
    """Reviews a batch's stored images concurrently; a review failing after its retries is recorded and the
    others go on; a quota or configuration error stops the rest, and so does the review budget (those are
    left unreviewed for the next run). With a `coordinator`, every paid call waits for the shared limiter
    and breaker (up to `breaker_wait_s` while the breaker is open), and is written to `recorder`'s call record."""

    def __init__(
        self,
        *,
        reviewer: ImageReviewer,
        store: ImageStore,
        concurrency: int = 8,
        max_attempts: int = 3,
        backoff_base_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        coordinator: Coordinator | None = None,
        budget: ReviewBudget | None = None,
        breaker_wait_s: float = 120.0,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.reviewer = reviewer
        if coordinator is not None:
            reviewer.share_limits(coordinator, breaker_wait_s=breaker_wait_s, recorder=recorder)
        self.offline = OfflineImageReviewer()
        self.store = store
        self.concurrency = max(1, concurrency)
        self.max_attempts = max(1, max_attempts)
        self.backoff_base_s = backoff_base_s
        self.sleep = sleep
        self.budget = budget or ReviewBudget()
        self.stats = ReviewStats()
        self._lock = threading.Lock()
        self._stop: RunStopped | None = None
        self._stopped = threading.Event()

    def review(
        self,
        products: Sequence[Mapping[str, Any]],
        outcomes: Mapping[str, Mapping[str, Any]],
        previous: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, dict[str, Any]]:
        """The batch's review rows by product id: reused where the fingerprint matches, made otherwise."""
        rows: dict[str, dict[str, Any]] = {}
        todo = []
        for product in products:
            pid = product["id"]
            outcome = outcomes.get(pid) or {}
            if not reviewable(outcome):
                continue
            chosen = self._reviewer_for(outcome)
            fp = review_fingerprint(outcome["sha256"], chosen.fingerprint_label())
            earlier = previous.get(pid)
            if earlier and earlier.get("review_fingerprint") == fp:
                rows[pid] = dict(earlier)
                self.stats.reused += 1
            else:
                todo.append((product, outcome, chosen, fp))
        if todo:
            workers = min(self.concurrency, len(todo))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="review") as pool:
                for row in pool.map(lambda job: self._review_one(*job), todo):
                    if row is not None:
                        rows[row["product_id"]] = row
        if self._stop is not None:
            self.stats.stopped = self._stop.message
        return rows

    def _reviewer_for(self, outcome: Mapping[str, Any]) -> ImageReviewer:
        return self.offline if is_offline_card(outcome.get("model")) else self.reviewer

    def _review_one(
        self, product: Mapping[str, Any], outcome: Mapping[str, Any], chosen: ImageReviewer, fp: str
    ) -> dict[str, Any] | None:
        pid = product["id"]
        try:
            data = self.store.get(outcome["key"])
        except KeyError:
            self._failed(pid, "store", f"{outcome['key']} is missing from the store")
            return None
        if not chosen.paid:
            return self._attempts(product, outcome, chosen, fp, data)
        try:
            self.budget.reserve(self._stopped)
        except RunStopped as exc:
            self._halt(exc)
            self._left(pid)
            return None
        row = None
        try:
            row = self._attempts(product, outcome, chosen, fp, data)
        finally:
            self.budget.settle(row is not None, row["cost_usd"] if row is not None else 0.0)
        return row

    def _attempts(
        self,
        product: Mapping[str, Any],
        outcome: Mapping[str, Any],
        chosen: ImageReviewer,
        fp: str,
        data: bytes,
    ) -> dict[str, Any] | None:
        """Up to `max_attempts` reviews of one image until one answers; its row, or None (recorded failed)."""
        pid = product["id"]
        calls = 0
        for attempt in range(1, self.max_attempts + 1):
            stop = self._stop  # a review holding its budget place keeps it when the budget stops the rest
            if stop is not None and stop.error_class is not ErrorClass.BUDGET:
                self._failed(pid, stop.error_class.value, f"not reviewed: {stop.message}", calls)
                return None
            try:
                review = chosen.review(
                    product=product, image=data, source_model=outcome.get("model"), attempt=attempt
                )
            except RunStopped as exc:  # the breaker was opened by an exhausted quota: no call went out
                self._halt(exc)
                self._failed(pid, exc.error_class.value, exc.message[:300], calls)
                return None
            except ImageAPIError as exc:
                if chosen.paid and not isinstance(exc, NotSent):
                    calls += 1
                if exc.error_class in STOPS:
                    self._halt(RunStopped(exc.error_class, exc.message))
                if exc.error_class in RETRIED and attempt < self.max_attempts:
                    self.sleep(self._retry_wait(exc, attempt, chosen))
                    continue
                self._failed(pid, exc.error_class.value, exc.message[:300], calls)
                return None
            calls += chosen.paid
            return self._made(product, outcome, chosen, fp, review, calls)
        return None  # pragma: no cover - the loop always returns

    def _retry_wait(self, exc: ImageAPIError, attempt: int, chosen: ImageReviewer) -> float:
        """Seconds before the next attempt: a shared window pause already holds every paced caller back in
        the limiter (a short jitter is enough), an isolated 429 waits its retry-after, the rest back off."""
        verdict = getattr(exc, "rate_verdict", None)
        paced = bool(chosen.requests_per_minute) and verdict is not None
        if exc.error_class is ErrorClass.RATE_LIMITED and paced and verdict.kind != "isolated":
            return random.uniform(0.0, 0.25)
        wait = exc.retry_after_s or self.backoff_base_s * 2 ** (attempt - 1)
        return min(wait, 30.0) * (1 + random.random() * 0.2)

    def _made(
        self,
        product: Mapping[str, Any],
        outcome: Mapping[str, Any],
        chosen: ImageReviewer,
        fp: str,
        review: ImageReview,
        calls: int,
    ) -> dict[str, Any]:
        """The stored row of a review made now, counted in the stats."""
        cost = review_cost_usd(chosen.model, dict(review.usage)) or 0.0
        with self._lock:
            self.stats.reviewed += 1
            self.stats.calls += calls
            self.stats.rejected += not review.approved
            if chosen.paid:
                self.stats.paid_reviews += 1
                self.stats.cost_usd += cost
                self.stats.input_tokens += int(review.usage.get("input_tokens", 0))
                self.stats.output_tokens += int(review.usage.get("output_tokens", 0))
        return {
            "product_id": product["id"],
            "image_key": outcome["key"],
            "image_sha256": outcome["sha256"],
            "source": outcome.get("source"),
            "source_model": outcome.get("model"),
            "review_fingerprint": fp,
            "review": review.to_dict(),
            "reviewed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "calls": calls,
            "cost_usd": round(cost, 8),
        }

    def _halt(self, exc: RunStopped) -> None:
        """Stop every review not yet called; the first reason is the pass's."""
        with self._lock:
            self._stop = self._stop or exc
        self._stopped.set()

    def _left(self, pid: str) -> None:
        with self._lock:
            self.stats.unreviewed.append(pid)

    def _failed(self, pid: str, error_class: str, message: str, calls: int = 0) -> None:
        with self._lock:
            self.stats.failed.append((pid, error_class, message))
            self.stats.calls += calls
        logger.warning("review of %s failed (%s): %s", pid, error_class, message)
