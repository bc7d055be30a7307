"""The default warehouse: one embedded DuckDB file, written by one process at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import dlt
import duckdb
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines.warehouse.base import Warehouse, WarehouseMissing


@dataclass(frozen=True)
class DuckDBFile(Warehouse):
    path: Path
    memory_limit: str = "512MB"
    # further DuckDB settings for every connection, dlt's included (threads, force_compression, ...)
    settings: Mapping[str, str] = field(default_factory=dict)

    kind: ClassVar[str] = "duckdb"

    def __post_init__(self) -> None:
        # relative paths are relative to where trackflow runs (the repo root for make targets)
        object.__setattr__(self, "path", Path(self.path).resolve())

    def describe(self) -> str:
        return f"warehouse {self.path}"

    def exists(self) -> bool:
        return self.path.is_file()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if read_only and not self.exists():
            raise WarehouseMissing(
                f"{self.describe()} does not exist yet; load it first with 'trackflow ingest'"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path), read_only=read_only, config=dict(self.settings))
        con.execute("set TimeZone = 'UTC'")
        return con

    def dlt_destination(self) -> Destination[Any, Any]:
        credentials = DuckDbCredentials(str(self.path))
        credentials.global_config = {"memory_limit": self.memory_limit, **self.settings}
        return dlt.destinations.duckdb(credentials=credentials)

    def dlt_pipelines_dir(self) -> Path:
        # dlt's working dir (local state, pending packages) travels with the file
        return self.path.parent / f".{self.path.name}.dlt"

    def dbt_env(self) -> dict[str, str]:
        return {"TRACKFLOW_WAREHOUSE": self.kind, "DUCKDB_PATH": str(self.path)}

    def local_dir(self) -> Path:
        return self.path.parent

    def own_files(self) -> tuple[Path, ...]:
        return (
            self.path,
            self.path.with_name(self.path.name + ".wal"),
            self.pseudonym_key_file(),
        )

    def pseudonym_key_file(self) -> Path:
        return self.path.parent / f".{self.path.name}.pseudonym-key"

    def purge_deleted(self, tables: Sequence[str] = ()) -> None:
        """Rewrite the whole file: DuckDB reuses freed blocks but never zeroes them, so a
        deleted row's bytes stay in the file until overwritten. A copy holds only live data; it
        replaces the file atomically (a crash leaves either the old file or the new one)."""
        fresh = self.path.with_name(f".{self.path.name}.compacting")
        fresh.unlink(missing_ok=True)
        con = duckdb.connect(str(self.path), config=dict(self.settings))
        try:
            source = con.execute("select current_database()").fetchone()
            con.execute(f"attach '{fresh}' as compacted")
            con.execute(
                f'copy from database "{source[0] if source else self.path.stem}" to compacted'
            )
            con.execute("detach compacted")
        finally:
            con.close()
        fresh.replace(self.path)
        self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)
