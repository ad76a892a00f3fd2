"""The stand-in's mutable state: the images-per-minute token bucket, fault draws and the request counts
served at `GET /_stats` (per product, from `X-Client-Request-Id`).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from catalog_assets.standin.config import FAULT_KINDS, StandInConfig

# PROD-000123-a2-<random>: the product id may itself contain dashes (and is percent-encoded by our client).
_REQUEST_ID = re.compile(r"^(?P<product>.+)-a(?P<attempt>\d{1,4})-(?P<suffix>[0-9A-Za-z]+)$")


def parse_client_request_id(value: str | None) -> tuple[str, int] | None:
    """(product id, attempt) from an `X-Client-Request-Id` like `PROD-000123-a2-9f3c`, else None."""
    match = _REQUEST_ID.match(value or "")
    if not match:
        return None
    return unquote(match["product"]), int(match["attempt"])


def product_of_custom_id(custom_id: str) -> str:
    """The product a batch line bills: `PROD-1-a2-xyz` (like X-Client-Request-Id), `PROD-1:...`, `PROD-1`."""
    parsed = parse_client_request_id(custom_id)
    return parsed[0] if parsed else custom_id.split(":", 1)[0]


def format_duration(seconds: float) -> str:
    """Go-style durations as OpenAI sends in `x-ratelimit-reset-*`: "250ms", "1.5s", "6m0s", "1h0m0s"."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


@dataclass
class LimitDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float  # until the bucket is full again
    retry_after_s: float  # until the next image is allowed (0 when allowed)

    def headers(self, unit: str = "images") -> dict[str, str]:
        return {
            f"x-ratelimit-limit-{unit}": str(self.limit),
            f"x-ratelimit-remaining-{unit}": str(self.remaining),
            f"x-ratelimit-reset-{unit}": format_duration(self.reset_s),
        }


class TokenBucket:
    """`per_minute` images a minute, at most `burst` at once. Not thread-safe: the caller holds the lock."""

    def __init__(self, per_minute: float, burst: float | None = None) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(1.0, self.rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> LimitDecision:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        allowed = self.tokens >= 1.0
        if allowed:
            self.tokens -= 1.0
        return LimitDecision(
            allowed=allowed,
            limit=math.ceil(self.per_minute),
            remaining=int(self.tokens),
            reset_s=(self.capacity - self.tokens) / self.rate,
            retry_after_s=0.0 if allowed else (1.0 - self.tokens) / self.rate,
        )


def draw_fault(
    config: StandInConfig,
    rng: random.Random | None,
    key: str | None,
    faults: dict[str, float] | None = None,
) -> str | None:
    """The injected fault for one request, or None. With a `key` (product, attempt and how many times that
    pair was seen) the draw is a hash, so the same requests fail whatever the thread scheduling.
    `faults` overrides the images' `config.faults` (batch lines, reviews and embeddings have their own)."""
    faults = config.faults if faults is None else faults
    if not faults:
        return None
    if key is None:
        u = (rng or random).random()
    else:
        u = int.from_bytes(hashlib.sha256(f"{config.seed}:{key}".encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for kind in FAULT_KINDS:
        edge += faults.get(kind, 0.0)
        if u < edge:
            return kind
    return None


@dataclass
class Call:
    seq: int
    attempt: int | None
    t_start: float
    t_end: float | None = None
    status: int | None = None
    outcome: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class ProductStats:
    calls: list[Call] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": len(self.calls),
            "attempts": [c.attempt for c in self.calls],
            "by_outcome": dict(Counter(c.outcome for c in self.calls if c.outcome)),
            "calls": [c.as_dict() for c in self.calls],
        }


class Stats:
    """Counts of the generation requests; the caller holds the server's lock."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.requests = 0
        self.by_status: Counter[int] = Counter()
        self.by_outcome: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.images = 0
        self.in_flight = 0
        self.high_water = 0
        self.unattributed = 0
        self.products: dict[str, ProductStats] = {}
        self.seen: Counter[tuple[str, int]] = Counter()
        self.request_ids: deque[str] = deque(maxlen=2000)
        self.recent: deque[dict[str, Any]] = deque(maxlen=500)
        # Files, batches, reviews, embeddings: requests per endpoint and billing by path.
        self.endpoints: Counter[str] = Counter()
        self.images_billed_batch = 0
        self.billed: dict[str, Counter[str]] = {}
        self.batch_seen: Counter[str] = Counter()
        self.batch_lines: Counter[str] = Counter()
        self.batch_faults_injected: Counter[str] = Counter()
        self.batches_ended: Counter[str] = Counter()
        self.content_bytes = 0
        self.text_seen: Counter[str] = Counter()
        self.reviews = TextStats()
        self.embeddings = TextStats()

    def bill(self, product: str | None, path: str, images: int) -> None:
        """Count `images` billed for `product` through `path` ("sync" or "batch")."""
        if path == "batch":
            self.images_billed_batch += images
        if product is not None and images:
            self.billed.setdefault(product, Counter())[path] += images

    def begin(self, request_id: str | None) -> tuple[Call, str | None]:
        """Record an arriving request; returns its call record and its fault-draw key."""
        self.requests += 1
        self.in_flight += 1
        self.high_water = max(self.high_water, self.in_flight)
        parsed = parse_client_request_id(request_id)
        if request_id:
            self.request_ids.append(request_id)
        call = Call(seq=self.requests, attempt=parsed[1] if parsed else None, t_start=self.now())
        if parsed is None:
            self.unattributed += 1
            return call, None
        self.products.setdefault(parsed[0], ProductStats()).calls.append(call)
        self.seen[parsed] += 1
        return call, f"{parsed[0]}\x00{parsed[1]}\x00{self.seen[parsed]}"

    def end(self, call: Call, status: int | None, outcome: str) -> None:
        self.in_flight -= 1
        call.t_end, call.status, call.outcome = self.now(), status, outcome
        if status is not None:
            self.by_status[status] += 1
        self.by_outcome[outcome] += 1

    def now(self) -> float:
        return round(time.monotonic() - self.started, 4)

    def as_dict(self, *, products: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_outcome": dict(self.by_outcome),
            "faults_injected": dict(self.faults_injected),
            "images": self.images,
            "in_flight": self.in_flight,
            "concurrency_high_water": self.high_water,
            "unattributed": self.unattributed,
            "uptime_s": self.now(),
            "request_ids": list(self.request_ids),
            "recent_requests": list(self.recent),
            "images_billed_sync": self.images,
            "images_billed_batch": self.images_billed_batch,
            "endpoints": dict(sorted(self.endpoints.items())),
            "batch_lines": dict(self.batch_lines),
            "batch_faults_injected": dict(self.batch_faults_injected),
            "batches_ended": dict(self.batches_ended),
            "content_bytes_served": self.content_bytes,
            "reviews": self.reviews.as_dict(products=products),
            "embeddings": self.embeddings.as_dict(products=products),
        }
        if products:
            data["products"] = {pid: p.as_dict() for pid, p in self.products.items()}
            data["billed_products"] = {
                pid: {"sync": c["sync"], "batch": c["batch"]} for pid, c in sorted(self.billed.items())
            }
        return data


@dataclass
class TextStats:
    """Counts of /v1/responses or /v1/embeddings requests (per product when one is named)."""

    requests: int = 0
    items: int = 0  # reviews made / texts embedded
    rejected: int = 0
    by_outcome: Counter[str] = field(default_factory=Counter)
    products: dict[str, Counter[str]] = field(default_factory=dict)

    def record(self, product: str | None, outcome: str, items: int = 0, rejected: bool = False) -> None:
        self.requests += 1
        self.by_outcome[outcome] += 1
        self.items += items
        self.rejected += int(rejected)
        if product is not None:
            counts = self.products.setdefault(product, Counter())
            counts["requests"] += 1
            counts[outcome] += 1
            counts["rejected"] += int(rejected)

    def as_dict(self, *, products: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "requests": self.requests,
            "items": self.items,
            "rejected": self.rejected,
            "by_outcome": dict(self.by_outcome),
        }
        if products:
            data["products"] = {pid: dict(c) for pid, c in sorted(self.products.items())}
        return data
