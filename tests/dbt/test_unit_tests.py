"""dbt's unit tests (`unit_tests:` beside the models) all run, through the real dbt CLI, and pass.

`dbt build` runs them too (test_ground_truth's fixture, for one), but there a failing unit test
shows up as an error of every test of the module, and one that is never selected goes unnoticed.
Here each declared unit test must have a result, and every result must be a pass.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.dbt.warehouse import run_dbt

# models that once had no unit test at all; each must keep at least one
MUST_HAVE_UNIT_TESTS = {
    "stg_raw__tracking_events",
    "dim_users",
    "agg_funnel_daily",
    "agg_retention",
    "agg_conversion_drivers",
}


def test_every_dbt_unit_test_passes(built: tuple[Path, dict], tmp_path: Path) -> None:
    # a fixture given as rows takes its column types from the parent's table in the warehouse,
    # so the models must exist: a copy of the suite's built warehouse has them
    db = tmp_path / "warehouse.duckdb"
    shutil.copy(built[0], db)
    proc = run_dbt(db, "test", "--select", "test_type:unit", check=False)

    target = tmp_path / "dbt_target"
    declared = json.loads((target / "manifest.json").read_text())["unit_tests"]
    results = json.loads((target / "run_results.json").read_text())["results"]
    status = {r["unique_id"]: r["status"] for r in results}
    assert set(status) == set(declared), "declared unit tests without a result, or the reverse"
    failed = {uid: s for uid, s in status.items() if s != "pass"}
    assert not failed, f"{failed}\n{proc.stdout[-6000:]}"
    assert proc.returncode == 0

    tested_models = {declared[uid]["model"] for uid in declared}
    assert tested_models >= MUST_HAVE_UNIT_TESTS, "a model lost all of its unit tests"
