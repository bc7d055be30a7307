"""Fixtures of the Dagster tests.

The dbt manifest is re-parsed once per session, before any test module imports the
definitions, so models and tests the dbt project added since the last parse are in the graph.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

os.environ["TRACKFLOW_DBT_PARSE"] = "1"
import orchestration.project  # noqa: E402,F401 - parses the dbt project now

os.environ.pop("TRACKFLOW_DBT_PARSE", None)


@pytest.fixture(scope="module")
def dagster_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """A persistent (SQLite, temp dir) instance: sensors need one."""
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster_home"))) as inst:
        yield inst


@pytest.fixture(scope="module")
def module_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
