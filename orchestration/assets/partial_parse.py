"""dbt's partial-parse file, kept warm from one dbt invocation of a run to the next.

dagster-dbt gives every invocation a target directory of its own, seeded with the
`partial_parse.msgpack` of the base target directory (`DBT_TARGET_PATH`, else the project's
`target/`), and never writes the invocation's file back. dbt parses the whole project again when
the `--vars` differ from those the file was written with, and every partitioned run passes its
days as vars: so each invocation parsed from scratch, twice per run (staging, then the marts),
in every micro-batch. Writing the file back after each invocation lets the next one with the
same vars and warehouse (the marts after staging, the next micro-batch of the same day) skip
the parse. The file is only a cache: dbt checks it against the project's files, vars and
profile and re-parses what changed, so a stale one costs a parse, never a wrong result.
"""

from __future__ import annotations

import os
from pathlib import Path

PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def base_target_path(project_dir: Path) -> Path:
    """Where dagster-dbt seeds each invocation's partial-parse file from (the same rule as
    dagster_dbt's DbtCliInvocation.run: DBT_TARGET_PATH, relative to the project)."""
    base = Path(os.getenv("DBT_TARGET_PATH", "target"))
    return base if base.is_absolute() else project_dir / base


def keep_partial_parse(invocation_target: Path, project_dir: Path) -> bool:
    """Copy the invocation's partial-parse file (dbt writes one after every parse) to the base
    target directory; True when there was one. Written to a temp name and renamed, so an
    invocation starting meanwhile reads the old file or the new one, never half of one."""
    written = invocation_target / PARTIAL_PARSE_FILE
    base = base_target_path(project_dir)
    kept = base / PARTIAL_PARSE_FILE
    if not written.is_file() or written.resolve() == kept.resolve():
        return False
    base.mkdir(parents=True, exist_ok=True)
    temp = base / f".{PARTIAL_PARSE_FILE}.{os.getpid()}.tmp"
    temp.write_bytes(written.read_bytes())
    os.replace(temp, kept)
    return True
