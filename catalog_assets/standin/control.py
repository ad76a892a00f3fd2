"""Starting and steering the stand-in: in this process (`StandInServer`), as a subprocess (`StandInProcess`,
e.g. for a benchmark that should not share the GIL), or one already running (`StandInClient`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from catalog_assets.standin.config import StandInConfig
from catalog_assets.standin.server import StandInApp, _Server


class StandInClient:
    """Talks to a running stand-in's control endpoints over HTTP (stdlib only)."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url.rstrip("/")

    @property
    def base_url(self) -> str:
        """What to use as OPENAI_BASE_URL."""
        return f"{self.root_url}/v1"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.root_url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self, *, products: bool = True) -> dict[str, Any]:
        return self._call("GET", "/_stats" if products else "/_stats?products=0")

    def reset(self, *, config: bool = False) -> None:
        """Clear the counts and refill the rate-limit bucket; `config=True` also restores the start config."""
        self._call("POST", "/_reset", {"config": config})

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings at runtime (names of `StandInConfig`); returns the settings now in force."""
        return self._call("POST", "/_config", changes)

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/healthz").get("status") == "ok"
        except OSError:
            return False


class StandInServer(StandInClient):
    """The stand-in in a background thread of this process; `start()` returns the base URL (port 0: free)."""

    def __init__(
        self, config: StandInConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = StandInApp(config or StandInConfig())
        self.host, self.port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        super().__init__(f"http://{host}:{port}")

    def start(self) -> str:
        self.app.stopping.clear()
        self._server = _Server((self.host, self.port), self.app)
        self.port = self._server.server_address[1]
        self.root_url = self.app.base = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="standin", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self.app.stopping.set()  # wakes sleeping (latency, hang) handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        for thread in self.app.batches.threads:
            thread.join(timeout=5)
        self.app.files.close()

    # In-process: read and change the state directly rather than over HTTP.
    def stats(self, *, products: bool = True) -> dict[str, Any]:
        with self.app.lock:
            return json.loads(json.dumps(self.app.stats.as_dict(products=products)))

    def reset(self, *, config: bool = False) -> None:
        self.app.reset(config=config)

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.app.configure(changes).public()

    def __enter__(self) -> StandInServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def running_standin(config: StandInConfig | None = None, **settings: Any) -> Iterator[StandInServer]:
    """`with running_standin(latency_s=0.1, api_key="sk-test") as standin: standin.base_url ...`"""
    server = StandInServer(config or StandInConfig(**settings))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class StandInProcess(StandInClient):
    """`python -m catalog_assets.standin ARGS` as a child process on a free port (unless ARGS name one)."""

    def __init__(self, args: Sequence[str] = (), *, startup_timeout_s: float = 15.0) -> None:
        self.args = list(args)
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[str] | None = None
        super().__init__("http://127.0.0.1:0")

    def start(self) -> str:
        port_args = [] if "--port" in self.args else ["--port", "0"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "catalog_assets.standin", *port_args, *self.args, "--quiet"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()  # "OPENAI_BASE_URL=http://127.0.0.1:PORT/v1"
        if not line.startswith("OPENAI_BASE_URL="):
            self.stop()
            raise RuntimeError(f"the stand-in did not start (first line: {line!r})")
        self.root_url = line.split("=", 1)[1].removesuffix("/v1")
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.healthy():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("the stand-in did not answer /healthz")
            time.sleep(0.05)
        return self.base_url

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> StandInProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
