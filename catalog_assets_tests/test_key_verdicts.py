"""The coordinators' key verdicts and first-call gate, for both backends: one prober, the others wait for
its verdict (not a fixed time), a rejected key refuses everyone, a prober that dies passes the turn on."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from catalog_assets.resources.coordination import Coordinator, KeyRejected
from catalog_assets.resources.local_coordination import LocalCoordinator
from catalog_assets.resources.redis_coordination import RedisCoordinator

REDIS_URL = "redis://127.0.0.1:6379/0"
BUCKET = "openai:0123456789abcdef:gpt-image-2"


@pytest.fixture(params=["local", "redis"])
def clients(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Coordinator]]:
    """Three clients of one backend, as three processes would hold."""
    if request.param == "local":
        yield [LocalCoordinator(tmp_path / "locks") for _ in range(3)]
        return
    prefix = f"test-key-verdicts-{uuid.uuid4().hex[:12]}"
    made = [RedisCoordinator(REDIS_URL, key_prefix=prefix) for _ in range(3)]
    yield made
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    for c in made:
        c.close()


def test_a_verdict_is_shared_by_every_client(clients: list[Coordinator]) -> None:
    first, second, _ = clients
    assert second.key_verdict(BUCKET) is None
    first.set_key_verdict(BUCKET, False, "the API rejected the key (401): set a valid key in OPENAI_API_KEY")
    verdict = second.key_verdict(BUCKET)
    assert verdict is not None and not verdict.ok and "OPENAI_API_KEY" in verdict.reason
    first.set_key_verdict(BUCKET, True)
    assert second.key_verdict(BUCKET).ok  # type: ignore[union-attr]


def test_one_prober_and_the_others_wait_for_its_verdict(clients: list[Coordinator]) -> None:
    prober, *others = clients
    events: list[str] = []
    lock = threading.Lock()
    probing = threading.Event()
    release = threading.Event()

    def probe() -> None:
        with prober.first_call_gate(BUCKET) as is_prober:
            assert is_prober
            probing.set()
            release.wait(30)  # the first call is out for as long as the test says (far past any fixed wait)
            with lock:
                events.append("verdict")
            prober.set_key_verdict(BUCKET, False, "rejected: set a valid key in OPENAI_API_KEY")

    def wait(client: Coordinator) -> None:
        try:
            with client.first_call_gate(BUCKET):
                outcome = "called"
        except KeyRejected as exc:
            outcome = f"refused: {exc}"
        with lock:
            events.append(outcome)

    thread = threading.Thread(target=probe)
    thread.start()
    assert probing.wait(10)
    waiters = [threading.Thread(target=wait, args=(c,)) for c in others]
    for w in waiters:
        w.start()
    for w in waiters:
        w.join(1.5)  # still waiting: there is no fixed timeout on the verdict
    assert all(w.is_alive() for w in waiters) and events == []
    release.set()
    thread.join(10)
    for w in waiters:
        w.join(10)
    assert events == ["verdict"] + ["refused: rejected: set a valid key in OPENAI_API_KEY"] * 2


def test_a_prober_leaving_without_a_verdict_passes_the_turn(clients: list[Coordinator]) -> None:
    first, second, _ = clients
    with first.first_call_gate(BUCKET) as is_prober:
        assert is_prober  # e.g. its call timed out: nothing is known about the key
    with second.first_call_gate(BUCKET) as is_prober:
        assert is_prober
        second.set_key_verdict(BUCKET, True)
    with first.first_call_gate(BUCKET) as is_prober:
        assert not is_prober  # accepted: calls go freely


def test_a_killed_prober_process_passes_the_turn(tmp_path: Path) -> None:
    """The file lock dies with its process: the next caller probes instead of waiting for ever."""
    lock_dir = tmp_path / "locks"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from catalog_assets.resources.local_coordination import LocalCoordinator\n"
            f"gate = LocalCoordinator({str(lock_dir)!r}).first_call_gate({BUCKET!r})\n"
            "assert gate.__enter__()\n"
            "print('probing', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "probing"
        holder.kill()
        holder.wait(10)
        with LocalCoordinator(lock_dir).first_call_gate(BUCKET) as is_prober:
            assert is_prober
    finally:
        holder.kill()
        holder.wait(10)
