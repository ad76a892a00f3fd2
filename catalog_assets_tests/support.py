"""Helpers several test modules share: the catalog generator script as a module, Redis key clean-up, and
and fixture factories for the stand-in (as a process, or in this process) whose settings differ per module."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from catalog_assets.standin import StandInConfig, StandInProcess, StandInServer
from catalog_assets_tests.conftest import PROJECT, write_catalog

CATALOG_SCRIPT = PROJECT / "scripts" / "generate_catalog.py"


@cache
def catalog_generator() -> ModuleType:
    """scripts/generate_catalog.py as a module (scripts/ is not a package), loaded once per process."""
    spec = importlib.util.spec_from_file_location("generate_catalog", CATALOG_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def generated_catalog(path: Path, count: int, seed: int = 11) -> Path:
    """A catalog file of `count` products from the generator script (same rows as the bundled catalog's
    generator makes for that seed)."""
    return write_catalog(path, list(catalog_generator().generate_products(count, seed)))


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Delete every key a test made under `prefix:` (never FLUSHDB: other tests share the server)."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


def standin_fixtures(api_key: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Fixtures `standin_process` (one stand-in process per module, accepting `api_key`) and `standin` (the
    same process, reset before each test). In a test module: `standin_process, standin = standin_fixtures(KEY)`.

    A separate process: the stand-in renders real JPEGs and should not share the pipeline's GIL."""

    @pytest.fixture(scope="module", name="standin_process")
    def standin_process_fixture() -> Iterator[StandInProcess]:
        with StandInProcess(["--api-key", api_key]) as process:
            yield process

    @pytest.fixture(name="standin")
    def standin_fixture(standin_process: StandInProcess) -> StandInProcess:
        standin_process.reset(config=True)
        return standin_process

    return standin_process_fixture, standin_fixture


def standin_server_fixtures(**config: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Fixtures `server` (one in-process stand-in per module, with `StandInConfig(**config)`) and `standin`
    (the same server, its settings reset to those before each test). In a test module:
    `server, standin = standin_server_fixtures(api_key=KEY, hang_s=2.0)`."""

    @pytest.fixture(scope="module", name="server")
    def server_fixture() -> Iterator[StandInServer]:
        with StandInServer(StandInConfig(**config)) as running:
            yield running

    @pytest.fixture(name="standin")
    def standin_fixture(server: StandInServer) -> StandInServer:
        server.reset(config=True)
        return server

    return server_fixture, standin_fixture
