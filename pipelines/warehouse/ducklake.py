"""A DuckLake lakehouse: the catalog in PostgreSQL, the data as parquet files under a data path.

Every host (ingestion shards, dbt, Dagster, readers) attaches the same lake the same way:

    ATTACH 'ducklake:<DUCKLAKE_CATALOG>' AS lake (DATA_PATH '<DUCKLAKE_DATA_PATH>')

DuckLake stores the data path in its catalog as it was first given and refuses an attach that
spells it differently, so the path goes everywhere exactly as configured (dlt would turn a
`file://` URL into a bare path: ducklake_dlt.py keeps it). DuckDB stays the engine on each host;
the lake takes many writers, each in its own transaction (a conflicting one fails and is
retried). Nothing is kept beside the data on a host but dlt's working state, so the pseudonym key
must be configured: two hosts must pseudonymise alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import duckdb
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.common.destination import Destination

from pipelines.warehouse import extensions
from pipelines.warehouse.base import Warehouse, WarehouseError, WarehouseMissing
from pipelines.warehouse.ducklake_dlt import LakeCredentials, lake_destination

ALIAS = "lake"
ATTACH_ATTEMPTS = 5
# One attached DuckDB per process and lake (and mode): loading the extensions and attaching the
# catalog costs about a second per new DuckDB, and an ingestion run opens the warehouse a dozen
# times. Each connect() gets its own connection (cursor) on it, with its own transactions; a
# DuckLake transaction reads the catalog's latest snapshot when it starts, so nothing goes stale.
_ATTACHED: dict[tuple[int, str, str, bool], duckdb.DuckDBPyConnection] = {}
_ATTACHING = threading.Lock()
# what a writer that lost a race with another one sees (the other one's commit went through)
RACES = ("Failed to initialize", "Transaction conflict", "already exists")


def catalog_credentials(catalog: str) -> ConnectionStringCredentials:
    """dlt's form of a DuckDB PostgreSQL catalog (`postgres:dbname=x host=y ...` or a URI)."""
    kind, _, rest = catalog.partition(":")
    if kind not in ("postgres", "postgresql"):
        raise WarehouseError(
            f"DUCKLAKE_CATALOG={_hide_password(catalog)!r} is not a PostgreSQL catalog; give it as "
            "postgres:dbname=<db> host=<host> user=<user> [password=... port=...]"
        )
    if rest.startswith("//"):
        return ConnectionStringCredentials(f"postgres:{rest}")
    fields = dict(re.findall(r"(\w+)=('[^']*'|\S+)", rest))
    fields = {k: v.strip("'") for k, v in fields.items()}
    credentials = ConnectionStringCredentials()
    credentials.drivername = "postgres"
    credentials.database = fields.pop("dbname", None)
    credentials.host = fields.pop("host", None)
    credentials.port = int(fields.pop("port")) if "port" in fields else None
    credentials.username = fields.pop("user", None)
    credentials.password = fields.pop("password", None)
    credentials.query = fields or None
    return credentials


def _hide_password(text: str) -> str:
    text = re.sub(r"password=\S+", "password=***", text)
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", text)


@dataclass(frozen=True)
class DuckLake(Warehouse):
    catalog: str  # DUCKLAKE_CATALOG
    data_path: str  # DUCKLAKE_DATA_PATH
    state_dir: Path = Path(".trackflow")

    kind: ClassVar[str] = "ducklake"

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir).resolve())
        if not self.data_path.endswith("/"):  # the catalog stores it with the slash
            object.__setattr__(self, "data_path", self.data_path + "/")

    def describe(self) -> str:
        return f"ducklake warehouse {_hide_password(self.catalog)} ({self.data_path})"

    def attach_sql(self, *, read_only: bool = False) -> str:
        """What a reader runs to see the warehouse (then `lake.analytics.fct_sessions`)."""
        options = f"DATA_PATH '{self.data_path}'" + (", READ_ONLY" if read_only else "")
        return f"ATTACH IF NOT EXISTS 'ducklake:{self.catalog}' AS {ALIAS} ({options})"

    def exists(self) -> bool:
        # attached writable: the first attach creates the (empty) lake, which read-only cannot
        with self.connect() as sql:
            return bool(
                sql.scalar(
                    "select count(*) from information_schema.schemata "
                    "where catalog_name = current_database() and schema_name = 'raw'"
                )
            )

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        key = (os.getpid(), self.catalog, self.data_path, read_only)
        with _ATTACHING:
            root = _ATTACHED.get(key)
            if root is not None:
                try:
                    return self._session(root)
                except duckdb.Error:
                    # the catalog went away under it (database restarted or dropped): attach anew
                    del _ATTACHED[key]
                    with contextlib.suppress(duckdb.Error):
                        root.close()
            root = self._attach_with_retries(read_only)
            _ATTACHED[key] = root
            return self._session(root)

    @staticmethod
    def _session(root: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        con = root.cursor()
        try:
            con.execute("set TimeZone = 'UTC'")
            con.execute(f"use {ALIAS}")
            con.execute("select 1 from duckdb_schemas() limit 1")  # the catalog still answers
        except duckdb.Error:
            con.close()
            raise
        return con

    def _attach_with_retries(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        # hosts starting at once on a new catalog race to create its tables: the losers retry
        for attempt in range(1, ATTACH_ATTEMPTS + 1):
            try:
                return self._attach(read_only)
            except WarehouseError as exc:
                if attempt == ATTACH_ATTEMPTS or not any(m in str(exc) for m in RACES):
                    raise
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    def _attach(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        extensions.ensure_installed()
        con = duckdb.connect(config=extensions.CONNECTION_CONFIG)
        try:
            con.execute("set TimeZone = 'UTC'")
            if self.data_path.startswith("s3://"):
                # credentials from the usual AWS chain (environment, profile, instance role)
                con.execute(
                    "create secret if not exists trackflow_s3 (type s3, provider credential_chain)"
                )
            con.execute(self.attach_sql(read_only=read_only))
            con.execute(f"use {ALIAS}")
            if not read_only:
                self._no_inlining(con)
        except duckdb.Error as exc:
            con.close()
            if "creating a new DuckLake is explicitly disabled" in str(exc):
                raise WarehouseMissing(f"{self.describe()} has no data yet") from None
            raise WarehouseError(self._attach_error(exc)) from None
        return con

    @staticmethod
    def _no_inlining(con: duckdb.DuckDBPyConnection) -> None:
        """Nothing inlined into the catalog database: every row lives in a data file, which is
        what erasure rewrites (the option is stored in the catalog, once for every writer)."""
        row = con.execute(
            f"select value from ducklake_options('{ALIAS}') "
            "where option_name = 'data_inlining_row_limit'"
        ).fetchone()
        if row is None or row[0] != "0":
            # another writer may set it at the same moment
            with contextlib.suppress(duckdb.TransactionException):
                con.execute(f"call ducklake_set_option('{ALIAS}', 'data_inlining_row_limit', 0)")

    def _attach_error(self, exc: BaseException) -> str:
        text = str(exc)
        missing = extensions.missing_message(exc)
        if missing:
            return missing
        if "Unable to connect to Postgres" in text or "Failed to attach DuckLake" in text:
            reason = text.split("failed:", 1)[-1].strip().splitlines()[0]
            return (
                f"DUCKLAKE_CATALOG={_hide_password(self.catalog)!r} cannot be reached: {reason}; "
                "is PostgreSQL running and does the database exist?"
            )
        if "does not match existing data path" in text:
            return (
                f"DUCKLAKE_DATA_PATH={self.data_path!r} is not the path this catalog keeps its "
                f"data under: {text.splitlines()[0]}"
            )
        return f"cannot open {self.describe()}: {text.splitlines()[0]}"

    def dlt_destination(self) -> Destination[Any, Any]:
        extensions.ensure_installed()
        credentials = LakeCredentials(
            ducklake_name=ALIAS,
            catalog=catalog_credentials(self.catalog),
            storage=self.data_path,
        )
        credentials.metadata_schema = "public"  # DuckLake's default, so plain attaches agree
        credentials.global_config = dict(extensions.CONNECTION_CONFIG)
        return lake_destination(credentials=credentials)

    def dlt_pipelines_dir(self) -> Path:
        return self.state_dir / "dlt"

    def dbt_env(self) -> dict[str, str]:
        return {
            "TRACKFLOW_WAREHOUSE": self.kind,
            "DUCKLAKE_CATALOG": self.catalog,
            "DUCKLAKE_DATA_PATH": self.data_path,
        }

    def local_dir(self) -> Path:
        return self.state_dir

    def own_files(self) -> tuple[Path, ...]:
        return ()

    def pseudonym_key_file(self) -> Path | None:
        return None  # shared between hosts: the key must be configured

    def purge_deleted(self, tables: Sequence[str] = ()) -> None:
        """Rewrite the tables rows were deleted from, then drop every older snapshot and file:
        the deleted rows' bytes (and their min/max statistics in the catalog) go with them."""
        with self.connect() as sql:
            for table in tables:
                if sql.has_table(table):
                    sql.execute(f"create or replace table {table} as select * from {table}")
            sql.execute(f"call ducklake_expire_snapshots('{ALIAS}', older_than => now())")
            sql.execute(f"call ducklake_cleanup_old_files('{ALIAS}', cleanup_all => true)")
