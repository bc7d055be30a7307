"""The dbt project as Dagster sees it: one DbtProject, parsed where the definitions are built.

Nothing happens on import. `prepare_if_stale` (called by `orchestration.definitions`) runs
`dbt parse` when the manifest is missing or older than a file of the project; deployments parse
at build time instead (`python -m orchestration.project`), and then nothing is parsed at load.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from pipelines.dbt import DBT_PROJECT_DIR, dbt_executable
from pipelines.warehouse import Warehouse, open_warehouse

# what `dbt parse` reads: a newer file than the manifest means the manifest is stale
DBT_SOURCE_DIRS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")
DBT_SOURCE_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")


@functools.cache
def dbt_project() -> DbtProject:
    # a target dir of our own: `dbt build` run by hand (or by the dbt tests) never clobbers the
    # manifest the code location was loaded from
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target_path=Path("target") / "dagster",
    )


def dbt_resource() -> DbtCliResource:
    """The dbt CLI resource: the `dbt` of the active environment, never one found on PATH."""
    return DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable())


@contextmanager
def dbt_environment(warehouse: Warehouse, **extra: str) -> Iterator[None]:
    """The process environment of the dbt invocations started inside the block: the
    warehouse's target (dagster-dbt passes os.environ to dbt), plus `extra`."""
    wanted = {**warehouse.dbt_env(), **extra}
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def manifest_is_stale(project: DbtProject) -> bool:
    if not project.manifest_path.exists():
        return True
    built = project.manifest_path.stat().st_mtime
    files = [project.project_dir / name for name in DBT_SOURCE_FILES]
    for directory in DBT_SOURCE_DIRS:
        files += (project.project_dir / directory).rglob("*")
    return any(f.is_file() and f.stat().st_mtime > built for f in files)


def prepare_if_stale(project: DbtProject, warehouse: Warehouse) -> None:
    """`dbt parse` when the manifest is missing or older than a file of the project.

    This stands in for `DbtProject.prepare_if_dev()`, which re-parses on every load under
    `dagster dev` (in every run worker too, ~20 s each on a small machine) and never elsewhere,
    so a fresh clone, the demo and the tests would load a stale or missing manifest. It parses
    with the warehouse runs will use: dbt keeps partial parsing only while the rendered profile
    is unchanged.
    """
    if not manifest_is_stale(project):
        return
    with dbt_environment(warehouse):
        dbt_resource().cli(["parse", "--quiet"], target_path=project.target_path).wait()


if __name__ == "__main__":
    project = dbt_project()
    project.manifest_path.unlink(missing_ok=True)
    prepare_if_stale(project, open_warehouse())
    print(project.manifest_path)
