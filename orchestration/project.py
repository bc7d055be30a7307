"""The dbt project as Dagster sees it: one DbtProject, prepared (parsed) in one place."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")

# `.venv/bin/dagster dev` does not activate the venv; dagster-dbt's preparer looks dbt up on PATH
if shutil.which("dbt") is None:
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]

# a target dir of our own: `dbt build` run by hand (or by the dbt tests) never clobbers the
# manifest the code location was loaded from
dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    profiles_dir=DBT_PROJECT_DIR,
    target_path=Path("target") / "dagster",
)

# `dagster dev` re-parses on every load, so models added by the dbt project show up on reload.
# elsewhere the manifest is built once (deployments: `python -m orchestration.project` at build
# time); a fresh clone, the demo and the tests parse when it is missing or TRACKFLOW_DBT_PARSE=1.
dbt_project.prepare_if_dev()
if not dbt_project.manifest_path.exists() or os.environ.get("TRACKFLOW_DBT_PARSE") == "1":
    dbt_project.preparer.prepare(dbt_project)


if __name__ == "__main__":
    dbt_project.preparer.prepare(dbt_project)
    print(dbt_project.manifest_path)
