"""A throwaway PostgreSQL database on the local server (127.0.0.1:5432, trust auth) for a
Dagster instance built from deploy/dagster.yaml."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import REPO_ROOT

PG = "postgresql://postgres@127.0.0.1:5432"


def _admin(sql: str) -> None:
    con = psycopg2.connect(f"{PG}/postgres", connect_timeout=5)
    con.autocommit = True
    try:
        con.cursor().execute(sql)
    finally:
        con.close()


@contextmanager
def dagster_database() -> Iterator[dict[str, str]]:
    """A fresh database; yields the DAGSTER_PG_* variables deploy/dagster.yaml reads. Dropped
    afterwards (its connections terminated first)."""
    name = f"trackflow_dagster_{uuid.uuid4().hex[:8]}"
    try:
        _admin(f"create database {name}")
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 unreachable ({exc}); start it to run this test")
    try:
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": "5432",
            "DAGSTER_PG_DB": name,
            "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": "",
        }
    finally:
        _admin(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            f"where datname = '{name}' and pid <> pg_backend_pid()"
        )
        _admin(f"drop database if exists {name}")


def deploy_home(home: Path) -> Path:
    """A DAGSTER_HOME holding the production instance file, deploy/dagster.yaml."""
    home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return home


def query_database(env: dict[str, str], sql: str) -> list[tuple[object, ...]]:
    con = psycopg2.connect(f"{PG}/{env['DAGSTER_PG_DB']}", connect_timeout=5)
    try:
        cur = con.cursor()
        cur.execute(sql)
        return cur.fetchall()
    finally:
        con.close()
