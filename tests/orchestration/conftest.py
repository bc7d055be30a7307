"""Fixtures of the Dagster tests. The dbt manifest is re-parsed once per session (so models the
dbt project added since the last parse are assets), before the definitions are imported."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest


@pytest.fixture(scope="session", autouse=True)
def _fresh_manifest() -> None:
    os.environ["TRACKFLOW_DBT_PARSE"] = "1"
    import orchestration.definitions  # noqa: F401 - parses, then loads the definitions

    os.environ.pop("TRACKFLOW_DBT_PARSE", None)


@pytest.fixture(scope="module")
def dagster_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """A persistent (SQLite, temp dir) instance: sensors need one."""
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster_home"))) as inst:
        yield inst


@pytest.fixture(scope="module")
def module_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
