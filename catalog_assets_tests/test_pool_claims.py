"""Steps that start together never share a pool slot: each step told CLAIMED holds a slot row of its own.

Dagster's SQL event log takes a slot in two statements (select a free row, then write the step into it), so
two processes claiming at once can both be told CLAIMED for one row: the pool then counts one step fewer
than run, and lets a step more in. `dagster_internals.atomic_pool_claims` (installed where the definitions
load) makes the claim one statement. Here six processes, each with its own instance on the same storage
(SQLite as shipped, PostgreSQL as deployed), claim the four slots of a pool at the same moment, round after
round."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from catalog_assets import dagster_internals
from catalog_assets_tests.pg_support import PG_HOST, PG_PORT, PG_USER

POOL = "image_api"
LIMIT = 4
CLAIMERS = 6
ROUNDS = 4
STEP = "product_images"


def _claimer(home: str, index: int, atomic: bool, start, claimed, results) -> None:
    """Each round: wait for every claimer, claim once, wait again, then report whether the slot rows name
    this run, and free the claim."""
    if atomic:
        dagster_internals.atomic_pool_claims()
    with DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        storage = instance.event_log_storage
        for round_ in range(ROUNDS):
            run_id = f"run-{index}-{round_}"
            start.wait()
            told = storage.claim_concurrency_slot(POOL, run_id, STEP).is_claimed
            claimed.wait()
            holders = {slot.run_id for slot in storage.get_concurrency_info(POOL).claimed_slots}
            results.put((round_, run_id, told, run_id in holders))
            start.wait()  # every claimer has read the slots before any frees its own
            storage.free_concurrency_slots_for_run(run_id)


def _race(home: Path, atomic: bool) -> list[tuple[int, str, bool, bool]]:
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, LIMIT)
    ctx = mp.get_context("spawn")
    start, claimed, results = ctx.Barrier(CLAIMERS), ctx.Barrier(CLAIMERS), ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(str(home), i, atomic, start, claimed, results))
        for i in range(CLAIMERS)
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=300) for _ in range(CLAIMERS * ROUNDS)]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    return reports


def _told_claimed_without_a_slot(reports) -> list[str]:
    return sorted(run_id for _, run_id, told, holds in reports if told and not holds)


@pytest.fixture(params=["sqlite", "postgres"])
def home(request, tmp_path) -> Path:
    """An instance directory whose dagster.yaml keeps the event log in SQLite (Dagster's default) or in a
    fresh PostgreSQL database."""
    if request.param == "postgres":
        db = {
            "hostname": PG_HOST,
            "port": PG_PORT,
            "username": PG_USER,
            "password": "",
            "db_name": request.getfixturevalue("pg_database"),
            "scheme": "postgresql+psycopg2",
        }
        (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": {"postgres_db": db}}}))
    return tmp_path


def test_claimers_starting_together_each_get_a_slot_of_their_own(home):
    reports = _race(home, atomic=True)
    assert _told_claimed_without_a_slot(reports) == []
    for round_ in range(ROUNDS):
        told = [run_id for r, run_id, told, _ in reports if r == round_ and told]
        # the pool is full every round (nobody frees before all have claimed), never over-full
        assert len(told) == LIMIT, (round_, told)


@pytest.mark.slow
def test_without_the_atomic_claim_two_claimers_share_a_slot(home):
    """The race the fix closes, shown on Dagster's own claim: so the test above is known to be able to fail."""
    reports = _race(home, atomic=False)
    assert _told_claimed_without_a_slot(reports)
    told = [sum(1 for r, _, claimed, _ in reports if r == round_ and claimed) for round_ in range(ROUNDS)]
    assert max(told) > LIMIT, told


def test_the_definitions_install_the_atomic_claim_on_sqlite_and_postgresql():
    from dagster_postgres.event_log import PostgresEventLogStorage

    import catalog_assets.definitions  # noqa: F401

    for storage in (SqliteEventLogStorage, PostgresEventLogStorage):
        assert storage._claim_concurrency_slot is dagster_internals._claim_free_slot  # noqa: SLF001
