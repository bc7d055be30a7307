"""Fixtures of the Dagster tests.

Importing orchestration.definitions re-parses the dbt project when any of its files is newer
than the manifest, so models and tests added since the last parse are in the graph.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from pipelines.warehouse import DuckDBFile


@pytest.fixture(scope="module")
def dagster_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """A persistent (SQLite, temp dir) instance: sensors need one."""
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster_home"))) as inst:
        yield inst


@pytest.fixture(scope="module")
def module_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DuckDBFile:
    return DuckDBFile(tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb")
