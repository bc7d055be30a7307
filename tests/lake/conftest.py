"""A DuckLake warehouse per test: a PostgreSQL database of its own (created and dropped here)
and a data directory; "hosts" are processes with their own working directory, HOME and temp
dir, sharing only the catalog, the data path and the broker."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from pipelines.warehouse import DuckLake

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
PSEUDONYM_KEY = "lake-test-key"


def _admin() -> psycopg2.extensions.connection:
    con = psycopg2.connect(dbname="postgres", **PG)
    con.autocommit = True
    return con


@pytest.fixture
def catalog_db() -> Iterator[str]:
    name = f"trackflow_lake_{uuid.uuid4().hex[:10]}"
    _run(f'create database "{name}"')
    yield name
    _run(f'drop database if exists "{name}" with (force)')


def _run(statement: str) -> None:
    con = _admin()
    try:
        with con.cursor() as cur:
            cur.execute(statement)
    finally:
        con.close()


@pytest.fixture
def lake(catalog_db: str, tmp_path: Path) -> DuckLake:
    return DuckLake(
        f"postgres:dbname={catalog_db} host=127.0.0.1 user=postgres",
        f"file://{tmp_path}/lake-data/",
        state_dir=tmp_path / "state",
    )


def host_env(lake: DuckLake, root: Path, name: str, **extra: str) -> tuple[dict[str, str], Path]:
    """(environment, working directory) of a fresh host: nothing on its disk but what it makes."""
    home = root / "hosts" / name
    for sub in ("home", "tmp", "work"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home / "home"),
        "TMPDIR": str(home / "tmp"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TRACKFLOW_WAREHOUSE": "ducklake",
        "DUCKLAKE_CATALOG": lake.catalog,
        "DUCKLAKE_DATA_PATH": lake.data_path,
        "TRACKFLOW_PSEUDONYM_KEY": PSEUDONYM_KEY,
        **extra,
    }
    return env, home / "work"


def trackflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]
