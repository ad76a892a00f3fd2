"""The stand-in HTTP server: `POST /v1/images/generations` with the public request, response and error
shapes, plus `/_stats`, `/_reset`, `/_config`, `/healthz` and `/_images/` (the url response shape).
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from catalog_assets.standin.config import StandInConfig
from catalog_assets.standin.protocol import (
    APIError,
    authorize,
    blocked_word,
    fault_error,
    invalid,
    parse_request,
    usage,
)
from catalog_assets.standin.render import render_image
from catalog_assets.standin.state import Stats, TokenBucket, draw_fault, parse_client_request_id

log = logging.getLogger("catalog_assets.standin")


class StandInApp:
    """State shared by all handler threads; every change happens under `lock`."""

    def __init__(self, config: StandInConfig) -> None:
        self.initial = config
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.images: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self.base = ""
        self.config = config
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

    def reset(self, *, config: bool = False) -> None:
        """Clear the counts, refill the bucket, restart the fault draws; `config`: back to the start config."""
        with self.lock:
            self.apply(self.initial if config else self.config)
            self.stats = Stats()

    def configure(self, changes: dict[str, Any]) -> StandInConfig:
        with self.lock:
            self.apply(self.config.updated(changes), fresh=False)
            return self.config

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
                if status == 200 and body:
                    stats.images += len(body["data"])
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
        data = [self._image(params, i) for i in range(params["n"])]
        body = {
            "created": int(time.time()),
            "background": "transparent" if params["background"] == "transparent" else "opaque",
            "data": data,
            "output_format": params["output_format"],
            "quality": params["quality_used"],
            "size": params["size"],
            "usage": usage(params),
        }
        extra = {**limit_headers, "openai-processing-ms": str(round((time.monotonic() - started) * 1000))}
        return body, extra

    def _image(self, params: dict[str, Any], index: int) -> dict[str, str]:
        data = render_image(
            params["prompt"],
            params["width"],
            params["height"],
            params["output_format"],
            params["output_compression"],
            index,
        )
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
        if url.path == "/healthz":
            self._json(200, {"status": "ok"})
        elif url.path == "/_stats":
            with app.lock:
                stats = app.stats.as_dict(products=parse_qs(url.query).get("products", ["1"])[0] != "0")
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
        else:
            self._not_found()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        app, path = self.server.app, urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path.rstrip("/") == "/v1/images/generations":
            status, body, extra, _ = app.generate(self.headers, raw)
            if body is None:
                self.close_connection = True  # a hang: drop without an answer
                return
            self._json(status, body, {"x-request-id": f"req_{secrets.token_hex(16)}", **extra})
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # a partition's whole burst of connections at once
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: StandInApp) -> None:
        self.app = app
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)
