"""The dbt project as Dagster sees it: one DbtProject, prepared (parsed) in one place."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from pipelines.config import DEFAULT_DUCKDB_PATH

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
# what `dbt parse` reads: a newer file than the manifest means the manifest is stale
DBT_SOURCE_DIRS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")
DBT_SOURCE_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")

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


def manifest_is_stale(project: DbtProject = dbt_project) -> bool:
    if not project.manifest_path.exists():
        return True
    built = project.manifest_path.stat().st_mtime
    files = [project.project_dir / name for name in DBT_SOURCE_FILES]
    for directory in DBT_SOURCE_DIRS:
        files += (project.project_dir / directory).rglob("*")
    return any(f.is_file() and f.stat().st_mtime > built for f in files)


def prepare_if_stale(project: DbtProject = dbt_project) -> None:
    """`dbt parse` when the manifest is missing or older than a file of the project.

    This stands in for `DbtProject.prepare_if_dev()`, which re-parses on every load under
    `dagster dev` — including in every run worker (~20 s each on a small machine) — and never
    elsewhere, so a fresh clone, the demo and the tests would load a stale or missing manifest.
    Deployments parse at build time (`python -m orchestration.project`); the files are then
    older than the manifest and nothing is parsed at load.
    """
    if not manifest_is_stale(project):
        return
    # parse with the warehouse path runs will use (absolute, as WarehouseResource passes it):
    # dbt keeps partial parsing only while the rendered profile is unchanged
    before = os.environ.get("DUCKDB_PATH")
    os.environ["DUCKDB_PATH"] = str(Path(before or DEFAULT_DUCKDB_PATH).resolve())
    try:
        project.preparer.prepare(project)
    finally:
        if before is None:
            os.environ.pop("DUCKDB_PATH", None)
        else:
            os.environ["DUCKDB_PATH"] = before


prepare_if_stale()


if __name__ == "__main__":
    dbt_project.manifest_path.unlink(missing_ok=True)
    prepare_if_stale()
    print(dbt_project.manifest_path)
