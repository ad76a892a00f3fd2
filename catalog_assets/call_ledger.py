"""The call record: every paid API call and its outcome, appended as it happens, so a run killed with calls
in flight still has them counted, and the report can say which products were paid for more than once. Image
calls (the Images API) are most of it; reviews (the Responses API) and embedding requests are recorded
the same way, each entry naming its `kind`.

A call is two entries: `start` (appended before the request goes out) and `end` (its answer: error class,
status, whether an image was billed), plus `checked` when the image it returned was refused as invalid. They go to the coordinator's live record (`CallLog`: a file per run
under the lock dir, or a Redis list), which survives a SIGKILL of the run. A run that ends copies its record
into the store (`state/calls/<run_id>.jsonl`, one object per run) and drops the live one; the report copies
the records of runs that died. A call with a `start` and no `end` got no answer its run saw: it is counted
as made and possibly billed (the API may have made the image), as the budget counts calls that timed out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog_assets.errors import ImageAPIError

log = logging.getLogger("catalog_assets.generation")

STORE_PREFIX = "state/calls/"
JSON_LINES_TYPE = "application/x-ndjson"
#: a live record the report never got to copy is not kept for ever in Redis
REDIS_TTL_S = 30 * 24 * 3600
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

#: `billed` of a call: an image came back (valid or not) / an error answer / no answer (it may have been made)
BILLED, NOT_BILLED, MAYBE_BILLED = "yes", "no", "maybe"
#: `kind` of a call: an image (entries without a kind are images), a review, an embeddings request
IMAGE, REVIEW, EMBEDDINGS = "image", "review", "embeddings"


def store_key(run_id: str) -> str:
    return f"{STORE_PREFIX}{run_id}.jsonl"


def _check_run_id(run_id: str) -> str:
    if not _SAFE_RUN_ID.match(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return run_id


def encode_lines(entries: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)


def decode_lines(data: bytes) -> list[dict[str, Any]]:
    """The entries of a record; a line cut short by a crash mid-write is left out."""
    entries = []
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


# -- the live record, kept by the coordinator -------------------------------------------------------------


class CallLog(ABC):
    """Append-only call entries per run, where a killed run's entries outlive it."""

    @abstractmethod
    def append(self, run_id: str, entry: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def runs(self) -> list[str]:
        """The runs with a live record."""

    @abstractmethod
    def read(self, run_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    def drop(self, run_id: str) -> None: ...


class FileCallLog(CallLog):
    """One JSON Lines file per run; each entry is one `write` on an O_APPEND descriptor, so entries of the
    run's threads never interleave, and what was written is in the file when the process is killed."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, run_id: str) -> Path:
        return self.directory / f"{_check_run_id(run_id)}.jsonl"

    def append(self, run_id: str, entry: Mapping[str, Any]) -> None:
        path = self._path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, encode_lines([entry]))
        finally:
            os.close(fd)

    def runs(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.jsonl"))

    def read(self, run_id: str) -> list[dict[str, Any]]:
        try:
            return decode_lines(self._path(run_id).read_bytes())
        except FileNotFoundError:
            return []

    def drop(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(run_id).unlink()


class RedisCallLog(CallLog):
    """A Redis list per run (`<prefix>:calls:<run_id>`) and a set of the runs that have one."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, run_id: str) -> str:
        return f"{self.prefix}:calls:{_check_run_id(run_id)}"

    @property
    def _runs_key(self) -> str:
        return f"{self.prefix}:calls-runs"

    def append(self, run_id: str, entry: Mapping[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(self._key(run_id), json.dumps(entry, separators=(",", ":")))
        pipe.expire(self._key(run_id), REDIS_TTL_S)
        pipe.sadd(self._runs_key, run_id)
        pipe.expire(self._runs_key, REDIS_TTL_S)
        pipe.execute()

    def runs(self) -> list[str]:
        names = sorted(
            v.decode() if isinstance(v, bytes) else str(v) for v in self.client.smembers(self._runs_key)
        )
        live = []
        for run_id in names:
            if self.client.exists(self._key(run_id)):
                live.append(run_id)
            else:  # expired: forget it
                self.client.srem(self._runs_key, run_id)
        return live

    def read(self, run_id: str) -> list[dict[str, Any]]:
        return decode_lines(b"\n".join(_bytes(v) for v in self.client.lrange(self._key(run_id), 0, -1)))

    def drop(self, run_id: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self._key(run_id))
        pipe.srem(self._runs_key, run_id)
        pipe.execute()


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


# -- one run's recorder -------------------------------------------------------------------------------------


class CallRecorder:
    """Records one run's calls in `log`. A failure to record is logged and never fails the call: the record
    is an account of the calls, not a gate in front of them."""

    def __init__(self, log_: CallLog, run_id: str, partition: str | None = None) -> None:
        self.log = log_
        self.run_id = run_id
        self.partition = partition
        self._warned = False

    def _append(self, entry: dict[str, Any]) -> None:
        try:
            self.log.append(self.run_id, entry)
        except Exception as exc:  # noqa: BLE001 - see the class docstring
            if not self._warned:
                self._warned = True
                log.warning("could not record a call in the call record (%s): the report may undercount", exc)

    def started(
        self,
        product_id: str,
        attempt: int,
        *,
        fingerprint: str | None,
        model: str,
        price_usd: float,
        kind: str = IMAGE,
    ) -> str:
        """Append a call's start; its id in this run. An image call is `<product>-a<attempt>` (one run counts
        a product's attempts); a review or embeddings request gets a random suffix, since two steps of one
        run may each make one for the same subject."""
        call = f"{product_id}-a{attempt}"
        if kind != IMAGE:
            call = f"{kind}:{call}-{secrets.token_hex(4)}"
        self._append(
            {
                "e": "start",
                "call": call,
                **({"kind": kind} if kind != IMAGE else {}),
                "run": self.run_id,
                "partition": self.partition,
                "product": product_id,
                "attempt": attempt,
                "fp": fingerprint,
                "model": model,
                "price": price_usd,
                "at": round(time.time(), 3),
            }
        )
        return call

    def ended(
        self,
        call: str,
        *,
        error_class: str | None,
        status: int | None,
        billed: str,
        rate: str | None = None,
    ) -> None:
        self._append(
            {
                "e": "end",
                "call": call,
                "class": error_class or "ok",
                "status": status,
                "billed": billed,
                **({"rate": rate} if rate else {}),
                "at": round(time.time(), 3),
            }
        )

    def answered(
        self, call: str | None, exc: BaseException | None, billed: bool, *, status: int | None = None
    ) -> None:
        """The answer of `call` (None: not recorded) from what it raised (None: it succeeded): its class,
        status, whether it was (or, with no answer, may have been) billed, and for a 429 what the limiter
        judged it (window, coalesced, isolated)."""
        if call is None:
            return
        if isinstance(exc, ImageAPIError):
            status = exc.status_code if exc.status_code is not None else status
            verdict = getattr(exc, "rate_verdict", None)
            error_class: str | None = exc.error_class.value
        else:
            verdict, error_class = None, None if exc is None else "unexpected"
        no_answer = exc is not None and status is None
        self.ended(
            call,
            error_class=error_class,
            status=status,
            billed=MAYBE_BILLED if no_answer else BILLED if billed else NOT_BILLED,
            rate=verdict.kind if verdict is not None else None,
        )

    def checked(self, call: str, error_class: str) -> None:
        """The image a call returned was refused (`invalid_image`): billed, and the call failed after all."""
        self._append({"e": "checked", "call": call, "class": error_class, "at": round(time.time(), 3)})

    def flush(self, store: Any) -> bool:
        """Copy the run's record into the store and drop the live one; False (kept live) if the store failed."""
        return flush_run(self.log, store, self.run_id)


@contextlib.contextmanager
def recording(
    call_log: CallLog | None, store: Any, run_id: str, partition: str | None = None
) -> Iterator[CallRecorder | None]:
    """A recorder of the run's calls (None when the coordinator keeps no call log). However the step ends
    (short of being killed), the run's record is copied into the store: one object per run."""
    recorder = CallRecorder(call_log, run_id, partition) if call_log is not None else None
    try:
        yield recorder
    finally:
        if recorder is not None:
            recorder.flush(store)


def flush_run(call_log: CallLog, store: Any, run_id: str) -> bool:
    try:
        entries = call_log.read(run_id)
        if entries:
            previous = store_entries(store, run_id)
            store.put(
                store_key(run_id), encode_lines(_merge(previous, entries)), content_type=JSON_LINES_TYPE
            )
        call_log.drop(run_id)
        return True
    except Exception as exc:  # noqa: BLE001 - kept live; the report copies it later
        log.warning("the call record of run %s stays in the coordinator: %s", run_id, exc)
        return False


def store_entries(store: Any, run_id: str) -> list[dict[str, Any]]:
    try:
        return decode_lines(store.get(store_key(run_id)))
    except KeyError:
        return []


def _merge(*records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for record in records:
        for entry in record:
            key = (entry.get("e"), entry.get("call"))
            if key not in seen:
                seen.add(key)
                out.append(dict(entry))
    return out


def collect(
    store: Any, call_log: CallLog | None, is_over: Callable[[str], bool]
) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
    """Every run's call entries (the store's records and the live ones), and the runs that are over.

    Live records of runs that are over (ended, or died and marked failed) are copied into the store first;
    those of runs still going are read as they stand."""
    records: dict[str, list[dict[str, Any]]] = {}
    over: set[str] = set()
    live = call_log.runs() if call_log is not None else []
    for run_id in live:
        assert call_log is not None
        if is_over(run_id):
            over.add(run_id)
            flush_run(call_log, store, run_id)
        else:
            records[run_id] = call_log.read(run_id)
    for obj in store.list(STORE_PREFIX):
        run_id = obj.key.removeprefix(STORE_PREFIX).removesuffix(".jsonl")
        stored = decode_lines(store.get(obj.key))
        records[run_id] = _merge(stored, records.get(run_id, []))
        if run_id not in live:
            over.add(run_id)
    # a live record that could not be copied is still counted
    if call_log is not None:
        for run_id in over - set(records):
            records[run_id] = call_log.read(run_id)
    return records, over


# -- what the record says ---------------------------------------------------------------------------------


@dataclass
class Call:
    run: str
    call: str
    product: str
    partition: str | None
    fingerprint: str | None
    attempt: int
    price: float
    started: float
    ended: float | None = None
    error_class: str | None = None  # "ok" or the error class; None: no answer recorded
    status: int | None = None
    billed: str = MAYBE_BILLED
    rate: str | None = None  # a 429's verdict: window | coalesced | isolated
    kind: str = IMAGE

    @property
    def paid(self) -> bool:
        """Counted in the cost: an image came back, or no answer did (the API may have made it)."""
        return self.billed in (BILLED, MAYBE_BILLED)


@dataclass(frozen=True)
class PaidTwice:
    product: str
    partition: str | None
    paid_calls: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class KindCount:
    """The recorded calls of one kind other than images (reviews, embeddings requests)."""

    kind: str
    calls: int
    unanswered: int  # no answer recorded (in flight when their run ended, or still going)
    errors: Counter[str]  # the calls answered with an error, by class

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


@dataclass
class CallSummary:
    """The calls of a store, from the call record: `calls` are the image calls (what every figure below
    counts), `others` the review and embeddings calls."""

    calls: list[Call] = field(default_factory=list)
    over: set[str] = field(default_factory=set)
    others: list[Call] = field(default_factory=list)

    def other_kinds(self) -> list[KindCount]:
        """Review and embeddings calls by kind, reviews first."""
        out = []
        for kind in sorted({c.kind for c in self.others}, key=lambda k: (k != REVIEW, k)):
            calls = [c for c in self.others if c.kind == kind]
            errors = Counter(c.error_class for c in calls if c.error_class not in (None, "ok"))
            unanswered = sum(c.error_class is None for c in calls)
            out.append(KindCount(kind, len(calls), unanswered, errors))
        return out

    @property
    def total(self) -> int:
        return len(self.calls)

    @property
    def answered(self) -> int:
        return sum(c.error_class is not None for c in self.calls)

    def unanswered(self, *, over: bool) -> int:
        """Calls with no answer recorded, of runs that are over (died in flight) or still going."""
        return sum(c.error_class is None and ((c.run in self.over) == over) for c in self.calls)

    @property
    def errors(self) -> Counter[str]:
        return Counter(c.error_class for c in self.calls if c.error_class not in (None, "ok"))

    @property
    def rate_limited(self) -> Counter[str]:
        """429 rate_limit_exceeded calls by what the limiter judged them: window, coalesced, isolated."""
        return Counter(c.rate or "unjudged" for c in self.calls if c.error_class == "rate_limited")

    @property
    def window_429s(self) -> int:
        """429s of the account's exhausted window (a coalesced one is the same window)."""
        judged = self.rate_limited
        return judged["window"] + judged["coalesced"]

    @property
    def paid(self) -> int:
        return sum(c.paid for c in self.calls)

    @property
    def cost_usd(self) -> float:
        return sum(c.price for c in self.calls if c.paid)

    def paid_twice(self) -> list[PaidTwice]:
        """Products paid for more than once for the same prompt, with why each earlier image was lost."""
        by_product: dict[tuple[str, str | None], list[Call]] = {}
        for c in self.calls:
            if c.paid:
                by_product.setdefault((c.product, c.fingerprint), []).append(c)
        out = []
        for (product, _), calls in sorted(by_product.items(), key=lambda item: item[0][0]):
            if len(calls) < 2:
                continue
            calls.sort(key=lambda c: c.started)
            reasons = tuple(self._lost_because(c, calls[i + 1 :]) for i, c in enumerate(calls[:-1]))
            out.append(PaidTwice(product, calls[-1].partition, len(calls), reasons))
        return out

    def _lost_because(self, call: Call, later: Sequence[Call]) -> str:
        run = call.run[:8]
        if call.error_class is None:
            if call.run in self.over:
                return f"in flight when its run {run} ended (killed or stopped)"
            return f"no answer yet in the running run {run}"
        if call.error_class == "invalid_image":
            return f"the image run {run} got back was invalid"
        if call.billed == MAYBE_BILLED:
            return f"no answer in run {run} ({call.error_class}): the API may have made it"
        overlapping = [c for c in later if c.run != call.run and c.started < (call.ended or call.started)]
        if overlapping:
            return f"claim lost: runs {run} and {overlapping[0].run[:8]} generated it at the same time"
        return f"run {run} got the image but never stored it (the run died or lost its lock first)"


def summarize(records: Mapping[str, Sequence[Mapping[str, Any]]], over: Iterable[str] = ()) -> CallSummary:
    calls: list[Call] = []
    for run_id, entries in records.items():
        ends = {e.get("call"): e for e in entries if e.get("e") == "end"}
        checks = {e.get("call"): e.get("class") for e in entries if e.get("e") == "checked"}
        for e in entries:
            if e.get("e") != "start":
                continue
            end = ends.get(e.get("call"), {})
            calls.append(
                Call(
                    run=run_id,
                    call=str(e.get("call")),
                    product=str(e.get("product")),
                    partition=e.get("partition"),
                    fingerprint=e.get("fp"),
                    attempt=int(e.get("attempt") or 0),
                    price=float(e.get("price") or 0.0),
                    started=float(e.get("at") or 0.0),
                    ended=end.get("at"),
                    error_class=checks.get(e.get("call")) or end.get("class"),
                    status=end.get("status"),
                    billed=end.get("billed", MAYBE_BILLED),
                    rate=end.get("rate"),
                    kind=str(e.get("kind") or IMAGE),
                )
            )
    calls.sort(key=lambda c: c.started)
    return CallSummary(
        [c for c in calls if c.kind == IMAGE], set(over), [c for c in calls if c.kind != IMAGE]
    )
