"""Throwaway project directories with their own Dagster instance, and the real Dagster CLI, webserver and
daemon run against them as subprocesses — for the tests of the instance configs, the CLI and the web UI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from catalog_assets_tests.conftest import PROJECT, SAMPLE_CATALOG, env_without_secrets

BIN = Path(sys.executable).parent
SHIPPED_INSTANCE = PROJECT / "dagster.yaml"
PRODUCTION_INSTANCE = PROJECT / "deploy" / "dagster-production.yaml"
MODULE = ["-m", "catalog_assets.definitions"]

T = TypeVar("T")


@dataclass
class DagsterProject:
    """A project directory as a user has it: `data/catalog.json`, a DAGSTER_HOME, the CLI on PATH."""

    root: Path
    home: Path
    env: dict[str, str]
    background: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        """One CLI command from the venv's bin (`dagster`, `catalog-images`, ...), as a user types it."""
        command = [str(BIN / args[0]), *args[1:]]
        return subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def materialize(
        self, select: str, *, partition: str | None = None, config: dict | None = None
    ) -> subprocess.CompletedProcess:
        args = ["dagster", "asset", "materialize", *MODULE, "--select", select]
        if partition:
            args += ["--partition", partition]
        if config:
            args += ["--config-json", json.dumps(config)]
        return self.run(*args)

    def materialize_catalog(self, batch_size: int = 10) -> subprocess.CompletedProcess:
        """`product_catalog` in small batches, so a few products make several partitions."""
        return self.materialize(
            "product_catalog", config={"ops": {"product_catalog": {"config": {"batch_size": batch_size}}}}
        )

    def start(self, *args: str, log_name: str) -> subprocess.Popen:
        """A long-running CLI process (webserver, daemon) in its own process group, output to a log file."""
        log = (self.root / f"{log_name}.log").open("wb")
        proc = subprocess.Popen(
            [str(BIN / args[0]), *args[1:]],
            cwd=self.root,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopping it also stops the code servers it spawned
            preexec_fn=_default_interrupt_handling,
        )
        log.close()
        self.background.append(proc)
        return proc

    def instance(self) -> DagsterInstance:
        """The project's instance, opened the way its CLI opens it (use as a context manager)."""
        return DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))

    def log(self, log_name: str) -> str:
        path = self.root / f"{log_name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def copy_to(self, root: Path, env: dict[str, str] | None = None) -> DagsterProject:
        """An independent copy of the project — catalog, store and instance — under `root`, with `env` on top
        of this project's environment. Only a project with no process running is copied (SQLite files of a
        live instance could be caught mid-write)."""
        assert not self.background, "stop the project's processes before copying it"
        shutil.copytree(self.root, root, symlinks=True)
        home = root / self.home.relative_to(self.root)
        return DagsterProject(
            root=root, home=home, env={**self.env, "DAGSTER_HOME": str(home), **(env or {})}
        )

    def stop_all(self) -> None:
        for proc in reversed(self.background):
            stop_process_group(proc)
        self.background.clear()


def make_project(
    root: Path,
    *,
    products: int = 20,
    instance_yaml: Path | None = SHIPPED_INSTANCE,
    env: dict[str, str] | None = None,
) -> DagsterProject:
    """A project dir with the first `products` rows of the shared sample and an isolated DAGSTER_HOME
    holding a copy of `instance_yaml` as its dagster.yaml (None: Dagster's defaults)."""
    (root / "data").mkdir(parents=True)
    rows = json.loads(SAMPLE_CATALOG.read_text())[:products]
    (root / "data" / "catalog.json").write_text(json.dumps(rows))
    home = root / "dagster_home"
    home.mkdir()
    if instance_yaml is not None:
        shutil.copyfile(instance_yaml, home / "dagster.yaml")
    full_env = {k: v for k, v in env_without_secrets().items() if k != "CATALOG_STORE_DIR"}
    full_env["DAGSTER_HOME"] = str(home)
    full_env.update(env or {})
    return DagsterProject(root=root, home=home, env=full_env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_interrupt_handling() -> None:
    # A test runner started in the background ignores SIGINT and its children inherit that; Dagster maps
    # SIGTERM onto the SIGINT handler, so `dagster dev` would then ignore both and never stop.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_process_group(proc: subprocess.Popen, grace_s: float = 30) -> None:
    """Ctrl-C for the process group (Dagster then shuts its webserver, daemon and code servers down),
    SIGKILL after `grace_s` so a hung child never outlives the test."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, even when the leader exited
    proc.wait(10)


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.5, what: str = "condition"
) -> T:
    """Polls `probe` until it returns something truthy; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])
