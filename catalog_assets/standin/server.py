"""The stand-in HTTP server: `POST /v1/images/generations`, the Files and Batches API (`/v1/files`,
`/v1/batches`), `POST /v1/responses` (image review) and `POST /v1/embeddings`, with the public request,
response and error shapes, plus `/_stats`, `/_reset`, `/_config`, `/healthz` and `/_images/` (url shape).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import random
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from catalog_assets.standin.batches import BatchJob, BatchRunner
from catalog_assets.standin.config import StandInConfig
from catalog_assets.standin.embeddings import embedding_response, parse_embedding_request
from catalog_assets.standin.files import BodyReader, FileStore
from catalog_assets.standin.protocol import (
    APIError,
    authorize,
    blocked_word,
    fault_error,
    invalid,
    parse_request,
    usage,
)
from catalog_assets.standin.render import encode, render_picture
from catalog_assets.standin.review import (
    dhash,
    output_for,
    parse_responses_request,
    response_body,
    review_facts,
)
from catalog_assets.standin.review import product_of as named_product
from catalog_assets.standin.state import (
    Stats,
    TokenBucket,
    draw_fault,
    parse_client_request_id,
    product_of_custom_id,
)

MAX_JSON_BODY = 64 * 1024 * 1024
MAX_DRAINED = 1024 * 1024 * 1024  # past this, a refused upload's connection is closed unread
#: images the reviewer can recognise (difference hash -> prompt), newest kept
MAX_RECOGNISED = 20000

log = logging.getLogger("catalog_assets.standin")


class StandInApp:
    """State shared by all handler threads; every change happens under `lock`."""

    def __init__(self, config: StandInConfig) -> None:
        self.initial = config
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.images: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self.rendered: OrderedDict[int, str] = OrderedDict()
        self.base = ""
        self.config = config
        self.files = FileStore(config.data_dir)
        self.batches = BatchRunner(
            self.files,
            self.lock,
            self.stopping,
            lambda: self.config,
            {
                "/v1/images/generations": self._batch_image_line,
                "/v1/responses": self._batch_text_line,
                "/v1/embeddings": self._batch_text_line,
            },
            self._on_batch_line,
            self._on_batch_end,
        )
        self.reset()

    def apply(self, config: StandInConfig, *, fresh: bool = True) -> None:
        """Use `config`; the bucket and the fault draws restart when `fresh` or when their settings change."""
        old = getattr(self, "config", None)
        self.config = config
        limit = (config.images_per_minute, config.burst)
        if fresh or old is None or (old.images_per_minute, old.burst) != limit:
            per_minute = config.images_per_minute
            self.bucket = TokenBucket(per_minute, config.burst) if per_minute else None
        if fresh or old is None or old.seed != config.seed:
            self.rng = random.Random(config.seed)
            self.jitter = random.Random(config.seed + 1)
        for kind in ("review", "embedding"):
            per_minute = getattr(config, f"{kind}_requests_per_minute")
            if fresh or old is None or getattr(old, f"{kind}_requests_per_minute") != per_minute:
                setattr(self, f"{kind}_bucket", TokenBucket(per_minute) if per_minute else None)

    def reset(self, *, config: bool = False) -> None:
        """Clear the counts, refill the bucket, restart the fault draws; `config`: back to the start config."""
        with self.lock:
            self.apply(self.initial if config else self.config)
            self.stats = Stats()

    def configure(self, changes: dict[str, Any]) -> StandInConfig:
        with self.lock:
            self.apply(self.config.updated(changes), fresh=False)
            return self.config

    def stall_while(self, condition: Callable[[], bool]) -> None:
        """Wait while `condition()` holds (re-read as the config changes), or until the server stops."""
        while condition() and not self.stopping.wait(0.05):
            pass

    # -- one generation request -------------------------------------------------------------------------

    def generate(self, headers: Any, raw: bytes) -> tuple[int, dict[str, Any] | None, dict[str, str], str]:
        """(status, JSON body or None to drop the connection, extra headers, outcome)."""
        request_id = headers.get("X-Client-Request-Id")
        with self.lock:
            # The stats that saw the request also see its end, even if /_reset replaced them meanwhile.
            config, stats = self.config, self.stats
            call, call_key = stats.begin(request_id)
        status, outcome, body, extra = 0, "", None, {}
        try:
            body, extra = self._generate(config, stats, headers, raw, request_id, call_key)
            status, outcome = 200, "ok"
        except APIError as err:
            status, outcome, body, extra = err.status, err.outcome, err.body(), err.headers
        except _Hang:
            status, outcome = 0, "hang"
        except Exception as exc:  # noqa: BLE001 - a stand-in bug still answers in the API's error shape
            log.exception("stand-in failure")
            err = APIError(500, f"stand-in failure: {type(exc).__name__}", "server_error", "standin_failure")
            status, outcome, body, extra = err.status, err.outcome, err.body(), {}
        finally:
            with self.lock:
                stats.end(call, status or None, outcome)
                stats.endpoints["images.generate"] += 1
                if status == 200 and body:
                    stats.images += len(body["data"])
                    parsed = parse_client_request_id(request_id)
                    stats.bill(parsed[0] if parsed else None, "sync", len(body["data"]))
        log.info(
            "%s %s -> %s %s", "POST /v1/images/generations", request_id or "-", status or "dropped", outcome
        )
        return status, body, extra, outcome

    def _generate(
        self,
        config: StandInConfig,
        stats: Stats,
        headers: Any,
        raw: bytes,
        request_id: str | None,
        call_key: str | None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        authorize(config, headers.get("Authorization", ""))
        params = parse_request(config, raw)
        with self.lock:
            stats.recent.append(
                {"request_id": request_id, **{k: v for k, v in params.items() if k != "prompt"}}
            )
            decision = self.bucket.take() if self.bucket else None
            limit_headers = decision.headers() if decision else {}
            if decision and not decision.allowed:
                wait = decision.retry_after_s
                raise APIError(
                    429,
                    f"Rate limit reached for {params['model']} on images per minute (IPM): "
                    f"Limit {decision.limit}, Used {decision.limit}, Requested 1. Please try again in {wait:.3g}s.",
                    "requests",
                    "rate_limit_exceeded",
                    outcome="rate_limited",
                    headers={
                        **limit_headers,
                        "retry-after": str(max(1, math.ceil(wait))),
                        "retry-after-ms": str(max(1, round(wait * 1000))),
                    },
                )
            parsed = parse_client_request_id(request_id)
            fault = None
            if blocked_word(config.moderation_words, params["prompt"]):
                fault = "moderation_blocked"
            elif not config.first_attempt_only or (parsed is not None and parsed[1] == 1):
                fault = draw_fault(config, self.rng, call_key)
                if fault:
                    stats.faults_injected[fault] += 1
            latency = max(0.0, config.latency_s + self.jitter.uniform(-1, 1) * config.latency_jitter_s)
        if fault == "hang":
            self.stopping.wait(config.hang_s)
            raise _Hang
        if fault and fault != "server_error":
            err = fault_error(fault, params["model"], config, decision.limit if decision else None)
            err.headers = {**limit_headers, **err.headers}
            raise err
        started = time.monotonic()
        self.stopping.wait(latency)
        if fault == "server_error":
            raise fault_error(fault, params["model"], config, None)
        body = self._images_body(params)
        extra = {**limit_headers, "openai-processing-ms": str(round((time.monotonic() - started) * 1000))}
        return body, extra

    def _images_body(self, params: dict[str, Any]) -> dict[str, Any]:
        """The ImagesResponse for validated params (the sync answer and a batch line's body alike)."""
        return {
            "created": int(time.time()),
            "background": "transparent" if params["background"] == "transparent" else "opaque",
            "data": [self._image(params, i) for i in range(params["n"])],
            "output_format": params["output_format"],
            "quality": params["quality_used"],
            "size": params["size"],
            "usage": usage(params),
        }

    def _image(self, params: dict[str, Any], index: int) -> dict[str, str]:
        picture = render_picture(params["prompt"], params["width"], params["height"], index)
        fingerprint = dhash(picture)
        data = encode(picture, params["output_format"], params["output_compression"])
        del picture
        with self.lock:
            self.rendered[fingerprint] = params["prompt"]
            self.rendered.move_to_end(fingerprint)
            while len(self.rendered) > MAX_RECOGNISED:
                self.rendered.popitem(last=False)
        if params["response_format"] == "b64_json":
            return {"b64_json": base64.b64encode(data).decode("ascii")}
        token = secrets.token_hex(12)
        with self.lock:
            self.images[token] = (data, f"image/{params['output_format']}")
            while len(self.images) > 256:
                self.images.popitem(last=False)
        # Like the real (expiring, signed) blob URLs: a query string the client must not log.
        return {
            "url": f"{self.base}/_images/{token}.{params['output_format']}?se=3600&sig={secrets.token_hex(8)}"
        }

    # -- files and batches ------------------------------------------------------------------------------

    def api(self, endpoint: str, headers: Any, action: Any) -> tuple[int, Any, dict[str, str]]:
        """Authorize, count under `endpoint` (e.g. "batches.create") and run `action()` -> body; errors in
        the API's shape."""
        with self.lock:
            config, stats = self.config, self.stats
            stats.endpoints[endpoint] += 1
        extra: dict[str, str] = {}
        try:
            authorize(config, headers.get("Authorization", ""))
            with self.lock:
                fault = draw_fault(config, self.rng, None, config.batch_api_faults)
                if fault:
                    stats.faults_injected[f"{endpoint}:{fault}"] += 1
            if fault == "hang":
                self.stopping.wait(config.hang_s)
                return 0, None, {}
            if fault:
                raise fault_error(fault, "the Batch API", config, None, "requests per minute (RPM)")
            status, body = 200, action()
        except APIError as err:
            status, body, extra = err.status, err.body(), err.headers
        except Exception as exc:  # noqa: BLE001 - a stand-in bug still answers in the API's error shape
            log.exception("stand-in failure")
            status = 500
            body = APIError(
                500, f"stand-in failure: {type(exc).__name__}", "server_error", "standin_failure"
            ).body()
        log.info("%s %s -> %s", endpoint, headers.get("X-Client-Request-Id") or "-", status)
        return status, body, {"x-request-id": f"req_{secrets.token_hex(16)}", **extra}

    def _batch_image_line(
        self, config: StandInConfig, custom_id: str, endpoint: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], int]:
        """One `/v1/images/generations` line: (status code, body, images billed)."""
        with self.lock:
            stats = self.stats
            stats.batch_seen[custom_id] += 1
            seen = stats.batch_seen[custom_id]
        parsed = parse_client_request_id(custom_id)
        attempt = parsed[1] if parsed else seen
        try:
            params = parse_request(config, json.dumps(body).encode())
        except APIError as err:
            return err.status, err.body(), 0
        fault = None
        if blocked_word(config.moderation_words, params["prompt"]):
            fault = "moderation_blocked"
        elif not config.first_attempt_only or attempt == 1:
            fault = draw_fault(config, None, f"batch\x00{custom_id}\x00{seen}", config.batch_faults)
            if fault:
                with self.lock:
                    stats.batch_faults_injected[fault] += 1
        if fault in ("moderation_blocked", "content_policy_violation"):
            err = fault_error(fault, params["model"], config, None)
            return err.status, err.body(), 0
        if fault:  # transient: the line failed on the provider's side
            err = fault_error("server_error", params["model"], config, None)
            return err.status, err.body(), 0
        params["response_format"] = "b64_json"  # batch bodies always carry the images inline
        answer = self._images_body(params)
        return 200, answer, len(answer["data"])

    def _batch_text_line(
        self, config: StandInConfig, custom_id: str, endpoint: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], int]:
        kind = "review" if endpoint == "/v1/responses" else "embedding"
        try:
            answer, _ = self._text_answer(kind, config, body, product_of_custom_id(custom_id))
        except APIError as err:
            return err.status, err.body(), 0
        return 200, answer, 0

    def _on_batch_line(self, job: BatchJob, custom_id: str, status: int, billed: int) -> None:
        with self.lock:
            self.stats.batch_lines[str(status) if status else "not_run"] += 1
            if job.endpoint == "/v1/images/generations":
                self.stats.bill(product_of_custom_id(custom_id), "batch", billed)

    def _on_batch_end(self, job: BatchJob) -> None:
        with self.lock:
            self.stats.batches_ended[job.status] += 1
        log.info("batch %s ended %s (%d/%d/%d)", job.id, job.status, job.completed, job.failed, job.total)

    # -- /v1/responses and /v1/embeddings -----------------------------------------------------------------

    def _recognise(self, fingerprint: int) -> str | None:
        """The prompt of a stand-in image within 8 bits of `fingerprint` (resized or re-encoded), if any."""
        with self.lock:
            if fingerprint in self.rendered:
                return self.rendered[fingerprint]
            best = min(self.rendered.items(), key=lambda kv: (kv[0] ^ fingerprint).bit_count(), default=None)
        if best is not None and (best[0] ^ fingerprint).bit_count() <= 8:
            return best[1]
        return None

    def _text_answer(
        self, kind: str, config: StandInConfig, raw: bytes | dict[str, Any], product: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(body, facts) of a review or an embedding request; raises APIError."""
        if kind == "embedding":
            params = parse_embedding_request(config, raw)
            return embedding_response(params), {"items": len(params["texts"]), "model": params["model"]}
        params = parse_responses_request(config, raw)
        known = self._recognise(dhash(params["images"][0][0])) if params["images"] else None
        named = named_product(params["texts"], product)
        with self.lock:
            so_far = self.stats.reviews.products.get(named, {}).get("rejected", 0) if named else 0
        facts = review_facts(config, params, named, known, so_far)
        return response_body(params, output_for(params, facts)), facts

    def text_call(
        self, kind: str, headers: Any, raw: bytes
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """`POST /v1/responses` (kind "review") or `/v1/embeddings` ("embedding"); None body: drop."""
        request_id = headers.get("X-Client-Request-Id")
        parsed = parse_client_request_id(request_id)
        header_product = parsed[0] if parsed else None
        path = "/v1/responses" if kind == "review" else "/v1/embeddings"
        with self.lock:
            config, stats = self.config, self.stats
            stats.endpoints["responses.create" if kind == "review" else "embeddings.create"] += 1
        record = stats.reviews if kind == "review" else stats.embeddings
        status, body, extra, outcome = 0, None, {}, ""
        facts: dict[str, Any] = {}
        try:
            authorize(config, headers.get("Authorization", ""))
            with self.lock:
                bucket = getattr(self, f"{kind}_bucket")
                decision = bucket.take() if bucket else None
                limit_headers = decision.headers("requests") if decision else {}
                if decision and not decision.allowed:
                    wait = decision.retry_after_s
                    raise APIError(
                        429,
                        f"Rate limit reached on requests per minute (RPM): Limit {decision.limit}, Used "
                        f"{decision.limit}, Requested 1. Please try again in {wait:.3g}s.",
                        "requests",
                        "rate_limit_exceeded",
                        outcome="rate_limited",
                        headers={
                            **limit_headers,
                            "retry-after": str(max(1, math.ceil(wait))),
                            "retry-after-ms": str(max(1, round(wait * 1000))),
                        },
                    )
                fault = None
                if not config.first_attempt_only or (parsed is not None and parsed[1] == 1):
                    key = None
                    if parsed is not None:
                        seen_key = f"{kind}\x00{request_id}"
                        stats.text_seen[seen_key] += 1
                        key = f"{kind}\x00{parsed[0]}\x00{parsed[1]}\x00{stats.text_seen[seen_key]}"
                    fault = draw_fault(config, self.rng, key, getattr(config, f"{kind}_faults"))
                    if fault:
                        stats.faults_injected[f"{kind}:{fault}"] += 1
            if fault == "hang":
                self.stopping.wait(config.hang_s)
                raise _Hang
            if fault:
                limit = decision.limit if decision else None
                err = fault_error(fault, path, config, limit, "requests per minute (RPM)")
                err.headers = {**limit_headers, **err.headers}
                raise err
            self.stopping.wait(getattr(config, f"{kind}_latency_s"))
            body, facts = self._text_answer(kind, config, raw, header_product)
            status, outcome, extra = 200, "ok", limit_headers
        except APIError as err:
            status, outcome, body, extra = err.status, err.outcome, err.body(), err.headers
        except _Hang:
            status, outcome = 0, "hang"
        except Exception as exc:  # noqa: BLE001 - a stand-in bug still answers in the API's error shape
            log.exception("stand-in failure")
            err = APIError(500, f"stand-in failure: {type(exc).__name__}", "server_error", "standin_failure")
            status, outcome, body, extra = err.status, err.outcome, err.body(), {}
        finally:
            with self.lock:
                product = facts.get("product_id", header_product)
                record.record(
                    product,
                    outcome,
                    facts.get("items", 1 if status == 200 else 0),
                    bool(facts.get("rejected")),
                )
        log.info(
            "POST /v1/%s %s -> %s %s",
            "responses" if kind == "review" else "embeddings",
            request_id or "-",
            status or "dropped",
            outcome,
        )
        return status, body, {"x-request-id": f"req_{secrets.token_hex(16)}", **extra}


class _Hang(Exception):
    """The request was held past the client's timeout: drop the connection without an answer."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "catalog-images-standin/1"
    timeout = 120  # idle keep-alive connections close after this
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        app, url = self.server.app, urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.rstrip("/").split("/")
        if url.path == "/healthz":
            self._json(200, {"status": "ok"})
        elif url.path == "/_stats":
            with app.lock:
                stats = app.stats.as_dict(products=query.get("products", "1") != "0")
            self._json(200, stats)
        elif url.path == "/_config":
            self._json(200, app.config.public())
        elif url.path.startswith("/_images/"):
            token = url.path.rsplit("/", 1)[-1].split(".", 1)[0]
            with app.lock:
                found = app.images.get(token)
            if found is None:
                self._json(
                    404,
                    {"error": {"message": "image expired", "type": "not_found", "param": None, "code": None}},
                )
            else:
                self._send(200, found[0], found[1])
        elif parts[:3] == ["", "v1", "files"] and len(parts) == 5 and parts[4] == "content":
            self._file_content(parts[3])
        elif parts[:3] == ["", "v1", "files"] and len(parts) == 4:
            self._reply(*app.api("files.retrieve", self.headers, lambda: app.files.get(parts[3]).as_dict()))
        elif parts == ["", "v1", "files"]:
            self._reply(
                *app.api(
                    "files.list",
                    self.headers,
                    lambda: app.files.listing(
                        query.get("purpose"),
                        _limit(query, 10000),
                        query.get("after"),
                        query.get("order", "desc"),
                    ),
                )
            )
        elif parts[:3] == ["", "v1", "batches"] and len(parts) == 4:
            self._reply(*app.api("batches.retrieve", self.headers, lambda: app.batches.snapshot(parts[3])))
        elif parts == ["", "v1", "batches"]:
            self._reply(
                *app.api(
                    "batches.list",
                    self.headers,
                    lambda: app.batches.listing(_limit(query, 100), query.get("after")),
                )
            )
        else:
            self._not_found()

    def do_DELETE(self) -> None:  # noqa: N802 - http.server's naming
        app, parts = self.server.app, urlsplit(self.path).path.rstrip("/").split("/")
        self._drain()
        if parts[:3] == ["", "v1", "files"] and len(parts) == 4:
            self._reply(*app.api("files.delete", self.headers, lambda: app.files.delete(parts[3])))
        else:
            self._not_found()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        app, path = self.server.app, urlsplit(self.path).path.rstrip("/")
        if path == "/v1/files":
            self._upload()
            return
        try:
            raw = BodyReader(self.rfile, self.headers).read_all(MAX_JSON_BODY)
        except APIError as err:
            self.close_connection = True
            self._json(err.status, err.body())
            return
        parts = path.split("/")
        if path == "/v1/images/generations":
            status, body, extra, _ = app.generate(self.headers, raw)
            if body is None:
                self.close_connection = True  # a hang: drop without an answer
                return
            self._json(status, body, {"x-request-id": f"req_{secrets.token_hex(16)}", **extra})
        elif path in ("/v1/responses", "/v1/embeddings"):
            status, body, extra = app.text_call(
                "review" if path == "/v1/responses" else "embedding", self.headers, raw
            )
            if body is None:
                self.close_connection = True
                return
            self._json(status, body, extra)
        elif path == "/v1/batches":
            self._reply(
                *app.api("batches.create", self.headers, lambda: app.batches.create(_loads(raw)).as_dict())
            )
        elif parts[:3] == ["", "v1", "batches"] and len(parts) == 5 and parts[4] == "cancel":
            self._reply(
                *app.api("batches.cancel", self.headers, lambda: app.batches.request_cancel(parts[3]))
            )
        elif path == "/_reset":
            options = json.loads(raw or b"{}") if raw.strip() else {}
            app.reset(config=bool(options.get("config")))
            self._json(200, {"status": "reset"})
        elif path == "/_config":
            try:
                config = app.configure(json.loads(raw or b"{}"))
            except (ValueError, TypeError) as exc:
                self._json(400, invalid("", f"invalid stand-in setting: {exc}").body())
            else:
                self._json(200, config.public())
        else:
            self._not_found()

    def _upload(self) -> None:
        app = self.server.app
        body = BodyReader(self.rfile, self.headers)
        status, answer, headers = app.api(
            "files.create",
            self.headers,
            lambda: app.files.upload(self.headers, body, app.config.file_max_bytes).as_dict(),
        )
        # Read (and drop) the rest of the body before answering, even for a refused upload: a client still
        # sending when the connection closes would see a reset instead of the error.
        drained = 0
        while drained <= MAX_DRAINED and (chunk := body.read()):
            drained += len(chunk)
        if drained > MAX_DRAINED:
            self.close_connection = True
        self._reply(status, answer, headers)

    def _file_content(self, file_id: str) -> None:
        app = self.server.app
        status, stored, headers = app.api("files.content", self.headers, lambda: app.files.get(file_id))
        if status != 200:
            self._reply(status, stored, headers)
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(stored.bytes))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            stall_after = app.config.file_content_stall_after_lines
            # Each chunk is counted before it is written: a client that has read the whole file and then asks
            # for the stats must find every byte counted, which counting after the last write cannot promise.
            if stall_after is None:
                for chunk in app.files.chunks(stored):
                    self._send_content(chunk)
            else:
                for number, line in enumerate(app.files.lines(stored)):
                    if number == stall_after:
                        self.wfile.flush()
                        app.stall_while(lambda: app.config.file_content_stall_after_lines is not None)
                    self._send_content(line)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_content(self, chunk: bytes) -> None:
        app = self.server.app
        with app.lock:
            app.stats.content_bytes += len(chunk)
        self.wfile.write(chunk)

    def _drain(self) -> None:
        if self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding"):
            BodyReader(self.rfile, self.headers).read_all(MAX_JSON_BODY)

    def _reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
        if body is None:
            self.close_connection = True  # a hang: drop without an answer
            return
        self._json(status, body, headers)

    def _not_found(self) -> None:
        message = f"Invalid URL ({self.command} {urlsplit(self.path).path})"
        self._json(
            404, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        )

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(
        self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout) before the answer


def _limit(query: dict[str, str], most: int) -> int:
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise invalid("limit", "Invalid 'limit': expected an integer.") from None
    if not 1 <= limit <= most:
        raise invalid("limit", f"Invalid 'limit': {limit}. Expected 1 to {most}.")
    return limit


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # a partition's whole burst of connections at once
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: StandInApp) -> None:
        self.app = app
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)
