"""What every warehouse target offers the rest of trackflow: SQL, a dlt destination, a dbt target.

Code outside this package never opens the warehouse itself: it asks a `Warehouse` for a
`SqlClient` (`with warehouse.connect() as sql:`), for dlt's destination, or for the environment
a dbt invocation needs. DuckDB is the engine on every target; what differs is where the data
lives (one file, or a DuckLake catalog plus data files) and how many processes may write it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from dlt.common.destination import Destination


class WarehouseError(RuntimeError):
    """The warehouse could not be used; the message says why in one line."""


class WarehouseMissing(WarehouseError):
    """Nothing has been written to the warehouse yet."""


class WarehouseLocked(WarehouseError):
    """Another process holds the warehouse; retrying later is safe."""


class Warehouse(ABC):
    """One warehouse target (see DuckDBFile; the configuration picks one: open_warehouse)."""

    kind: ClassVar[str]

    @abstractmethod
    def describe(self) -> str:
        """How messages name this warehouse, e.g. `warehouse data/warehouse.duckdb`."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether anything was ever written to it."""

    @abstractmethod
    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection on which `raw.tracking_events` and friends resolve."""

    @abstractmethod
    def dlt_destination(self) -> Destination[Any, Any]:
        """Where dlt loads the raw tables."""

    @abstractmethod
    def dlt_pipelines_dir(self) -> Path:
        """dlt's local working directory (state and pending packages) for this warehouse."""

    @abstractmethod
    def dbt_env(self) -> dict[str, str]:
        """Environment variables that point a dbt invocation at this warehouse."""

    @abstractmethod
    def local_dir(self) -> Path:
        """Where files that belong with this warehouse on this host go (the default report)."""

    @abstractmethod
    def own_files(self) -> tuple[Path, ...]:
        """Files on this host that are the warehouse's own (never to be written over)."""

    @abstractmethod
    def pseudonym_key_file(self) -> Path | None:
        """Where a generated pseudonym key may be kept; None when the key must be configured."""

    @abstractmethod
    def purge_deleted(self, tables: Sequence[str] = ()) -> None:
        """Make rows deleted from `tables` unreadable from the storage itself, not only from
        SQL (erasure): nothing of them may remain in free blocks or old data files."""

    def locked_error(self) -> WarehouseLocked:
        return WarehouseLocked(
            f"{self.describe()} is locked by another process; nothing was lost and no offset "
            "moved: retry when it is released"
        )

    def operator_error(self, exc: BaseException) -> WarehouseError | None:
        """The one-line error for a failure found anywhere in `exc`'s chain, if it is ours."""
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, WarehouseError):
                return cause
            text = str(cause)
            if "Could not set lock on file" in text or "Conflicting lock" in text:
                return self.locked_error()
            cause = cause.__cause__ or cause.__context__
        return None

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[SqlClient]:
        """A SQL client on the warehouse; closed when the block ends."""
        try:
            con = self._open(read_only)
        except duckdb.Error as exc:
            raise self.operator_error(exc) or WarehouseError(
                f"cannot open {self.describe()}: {_first_line(exc)}"
            ) from None
        try:
            yield SqlClient(con, self)
        finally:
            con.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SqlClient:
    """SQL on an open warehouse connection. DuckDB errors come out as WarehouseError."""

    def __init__(self, con: duckdb.DuckDBPyConnection, warehouse: Warehouse) -> None:
        self._con = con
        self.warehouse = warehouse

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except duckdb.Error as exc:
            raise self.warehouse.operator_error(exc) or WarehouseError(
                f"{self.warehouse.describe()}: {_first_line(exc)}"
            ) from exc

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> None:
        with self._errors():
            self._con.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._errors():
                self._con.executemany(sql, rows)

    def rows(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        with self._errors():
            return self._con.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        with self._errors():
            return self._con.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        row = self.one(sql, params)
        return row[0] if row else None

    def records(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self._errors():
            cursor = self._con.execute(sql, params)
            names = [d[0] for d in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        with self._errors():
            return self._con.execute(sql, params).to_arrow_table()

    def delete(self, table: str, where: str, params: Sequence[Any] | None = None) -> int:
        """Delete the rows matching `where`; returns how many (DuckLake has no RETURNING).
        Inside a transaction the count and the delete see the same rows."""
        count = int(self.scalar(f"select count(*) from {table} where {where}", params) or 0)
        if count:
            self.execute(f"delete from {table} where {where}", params)
        return count

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table readable by name in this client's SQL."""
        self._con.register(name, table)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything in the block commits together, or not at all."""
        self.execute("begin transaction")
        try:
            yield
        except BaseException:
            self._con.execute("rollback")
            raise
        self.execute("commit")

    def has_table(self, qualified: str) -> bool:
        schema, _, name = qualified.partition(".")
        return bool(
            self.scalar(
                "select count(*) from information_schema.tables where table_catalog = "
                "current_database() and table_schema = ? and table_name = ?",
                [schema, name],
            )
        )

    def tables(self) -> set[str]:
        """Every `schema.table` of the warehouse."""
        rows = self.rows(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database()"
        )
        return {f"{schema}.{name}" for schema, name in rows}

    def columns(self, qualified: str) -> list[str]:
        schema, _, name = qualified.partition(".")
        return [
            r[0]
            for r in self.rows(
                "select column_name from information_schema.columns where table_catalog = "
                "current_database() and table_schema = ? and table_name = ? "
                "order by ordinal_position",
                [schema, name],
            )
        ]
