"""The machine's PostgreSQL server for the tests that need one (CI starts it when none answers): loopback,
trust auth; libpq's own variables override. A fresh database per test, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping

import psycopg2
import pytest
from psycopg2 import sql

PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "postgres")


def connect(dbname: str):
    return psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=5)


def instance_env(dbname: str) -> Mapping[str, str]:
    """The variables deploy/dagster-production.yaml reads its connection from, for `dbname`."""
    return {
        "DAGSTER_PG_HOST": PG_HOST,
        "DAGSTER_PG_PORT": str(PG_PORT),
        "DAGSTER_PG_USER": PG_USER,
        "DAGSTER_PG_PASSWORD": "",  # trust auth; the config reads it from the env all the same
        "DAGSTER_PG_DB": dbname,
    }


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh database, dropped afterwards even if a subprocess still holds a connection."""
    name = f"catalog_images_test_{uuid.uuid4().hex[:12]}"
    admin = connect("postgres")
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield name
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()
