"""Fixtures for tests over real HTTP against moto's S3 server: the server, AWS env vars pointing at it, a fresh
bucket, IAM-enforcing mode, and a loopback proxy that counts requests and can corrupt a body in transit
(`S3Proxy`; its base `ForwardingProxy` also serves the resilience suite's `FaultProxy`).

Fixture names: moto_endpoint (session), aws_env, s3_bucket, s3_proxy. Register the module in conftest.py with
`pytest_plugins = ["catalog_assets_tests.s3_fixtures"]`, or import the `*_fixture` functions into a test module.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
DUMMY_ACCESS_KEY_ID = "AKIAMOTOTESTDUMMY0001"
DUMMY_SECRET_ACCESS_KEY = "moto-dummy-secret-do-not-print-3f9a"


@pytest.fixture(scope="session", name="moto_endpoint")
def moto_endpoint_fixture() -> Iterator[str]:
    """One moto S3/IAM server for the session, on a free loopback port: `http://127.0.0.1:<port>`."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(name="aws_env")
def aws_env_fixture(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> str:
    """The standard AWS env vars pointed at moto, with dummy credentials; no ~/.aws files, no IMDS probe."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_endpoint


def moto_client(endpoint: str, service: str = "s3", **kwargs: Any):
    """A plain boto3 client on moto, for arranging and inspecting state behind the store's back."""
    kwargs.setdefault("aws_access_key_id", DUMMY_ACCESS_KEY_ID)
    kwargs.setdefault("aws_secret_access_key", DUMMY_SECRET_ACCESS_KEY)
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **kwargs)


@pytest.fixture(name="s3_bucket")
def s3_bucket_fixture(aws_env: str) -> str:
    """A fresh, empty bucket (unique name, so tests never see each other's objects)."""
    name = f"catalog-test-{uuid.uuid4().hex[:12]}"
    moto_client(aws_env).create_bucket(Bucket=name)
    return name


@contextmanager
def moto_enforcing_iam(endpoint: str) -> Iterator[None]:
    """Make moto check signatures and IAM policies for every request, then switch it back off.

    moto's server checks nothing by default; POST /moto-api/reset-auth sets how many requests go
    unchecked (INITIAL_NO_AUTH_ACTION_COUNT). Only keys of IAM users created in moto are accepted then.
    """

    def reset(count: str) -> None:
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form content type would hide the body from moto
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    reset("0")
    try:
        yield
    finally:
        reset("inf")


def create_iam_user(endpoint: str, name: str, policy: dict | None = None) -> tuple[str, str]:
    """An IAM user in moto with an optional inline policy; returns its (access key id, secret key)."""
    iam = moto_client(endpoint, "iam")
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-case names


class ProxyHandler(BaseHTTPRequestHandler):
    """One request at a `ForwardingProxy`: what becomes of it is the proxy's `serve`; this class reads,
    forwards and answers."""

    protocol_version = "HTTP/1.1"  # answers botocore's `Expect: 100-continue` at once
    proxy: ForwardingProxy  # set on the per-proxy subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _dispatch(self) -> None:
        self.proxy.serve(self)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _dispatch

    def forward(self, body: bytes) -> tuple[int, dict[str, str], bytes, str | None]:
        """Send this request with `body` to moto; its (status, headers, body, Content-Length of a HEAD)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("expect", "connection")}
        upstream = http.client.HTTPConnection(
            self.proxy.upstream.hostname, self.proxy.upstream.port, timeout=30
        )
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            reply_headers = {
                k: v
                for k, v in response.getheaders()
                if k.lower() not in ("transfer-encoding", "connection", "content-length")
            }
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            return response.status, reply_headers, data, length
        finally:
            upstream.close()

    def reply(self, status: int, headers: dict[str, str], data: bytes, length: str | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", length if length is not None else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def reply_error(self, status: int, code: str, message: str) -> None:
        """An S3 error document, as S3 answers, without forwarding anything."""
        self.reply(status, {"Content-Type": "application/xml"}, _error_xml(code, message))


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # two runs' worth of concurrent uploads at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A killed client resets its connections: expected here, not worth a traceback on stderr.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ForwardingProxy:
    """A loopback HTTP proxy in front of moto's S3 server, serving on its own thread. Subclasses decide in
    `serve` what becomes of each request: forwarded (`handler.forward`), answered with an error, held..."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self._lock = threading.Lock()
        handler = type(f"{type(self).__name__}Handler", (ProxyHandler,), {"proxy": self})
        self._server = _ProxyServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def serve(self, handler: ProxyHandler) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class S3Proxy(ForwardingProxy):
    """A loopback HTTP proxy in front of moto. It records every request, and on demand flips one byte of
    the next PUT body in transit.

    moto 5.2.5 stores whatever checksum it is sent without verifying it; S3 does verify. So the proxy applies
    S3's rule itself: a PUT whose body does not match its `x-amz-checksum-sha256` (or `Content-MD5`) header
    is answered 400 BadDigest, as S3 answers, and never reaches moto.
    """

    def __init__(self, upstream: str) -> None:
        self.requests: list[ProxiedRequest] = []
        self.corrupt_next_put = False
        #: called with each request before it is forwarded, e.g. to let another writer win a race
        self.on_request: Callable[[ProxiedRequest], None] | None = None
        #: (status, S3 error code) answers given instead of forwarding, one per request, e.g. (503, "SlowDown")
        self.errors_to_answer: list[tuple[int, str]] = []
        super().__init__(upstream)

    def serve(self, handler: ProxyHandler) -> None:
        path, _, query = handler.path.partition("?")
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        request = ProxiedRequest(
            handler.command, path, query, {k.lower(): v for k, v in handler.headers.items()}
        )
        with self._lock:
            self.requests.append(request)
            corrupt = handler.command == "PUT" and self.corrupt_next_put and bool(body)
            if corrupt:
                self.corrupt_next_put = False
            error = self.errors_to_answer.pop(0) if self.errors_to_answer else None
        if error is not None:
            return handler.reply_error(error[0], error[1], "injected")
        if corrupt:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        if handler.command == "PUT" and not matches_checksums(handler.headers, body):
            message = "The SHA256 you specified did not match the calculated checksum."
            return handler.reply_error(400, "BadDigest", message)
        if self.on_request is not None:
            self.on_request(request)
        handler.reply(*handler.forward(body))

    def count(self, method: str, *, query_contains: str = "") -> int:
        return len(self.matching(method, query_contains=query_contains))

    def matching(self, method: str, *, query_contains: str = "") -> list[ProxiedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and query_contains in r.query]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


def _error_xml(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    ).encode()


def matches_checksums(headers: Any, body: bytes) -> bool:
    """S3's rule, which moto does not apply: a PUT whose body differs from its declared sha256 (or MD5) is
    refused."""
    sha256 = headers.get("x-amz-checksum-sha256")
    if sha256 and base64.b64encode(hashlib.sha256(body).digest()).decode() != sha256:
        return False
    md5 = headers.get("Content-MD5")
    return not (md5 and base64.b64encode(hashlib.md5(body).digest()).decode() != md5)


@pytest.fixture(name="s3_proxy")
def s3_proxy_fixture(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Proxy]:
    """The S3Proxy in front of moto, with AWS_ENDPOINT_URL pointed at it (so the store goes through it)."""
    proxy = S3Proxy(aws_env)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    try:
        yield proxy
    finally:
        proxy.close()
