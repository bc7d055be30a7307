"""The dbt tests' shared warehouse: three days of generated traffic with every fault, built once.

Session-scoped so that the modules reading it (ground truth, the checks shown to fail) pay for
one `dbt build`; a test that changes rows works on a copy.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipelines.generator import Traffic, generate
from tests.dbt.warehouse import accepted_rows, append_raw, run_dbt

FAULTS = {"duplicates", "late", "skew", "malformed"}


@pytest.fixture(scope="session")
def built_traffic() -> Traffic:
    """The generated traffic of the `built` warehouse (its events give truths under other rules)."""
    return generate(
        events=6000,
        users=300,
        days=3,
        seed=5,
        start=date(2024, 3, 1),
        faults=FAULTS,
        identity_scenarios=True,
        journeys=True,
    )


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, built_traffic: Traffic) -> tuple[Path, dict]:
    """(the warehouse file after a full `dbt build`, the generator's ground truth)."""
    work = tmp_path_factory.mktemp("truth")
    db = work / "warehouse.duckdb"
    traffic = built_traffic
    append_raw(db, accepted_rows(traffic), "load-1")
    run_dbt(db, "build")
    return db, traffic.truth
