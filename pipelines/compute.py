"""The in-memory DuckDB that validation and minimisation compute with (never the warehouse).

One connection per thread, kept for the life of the thread: connecting costs more than checking
a small batch. Python functions SQL needs (the IP rule) are registered on it once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import duckdb
import pyarrow as pa
from duckdb.func import FunctionNullHandling, PythonUDFType
from duckdb.sqltypes import VARCHAR

from pipelines.ip import IpMode, apply_ip_rule, replace_values

_local = threading.local()

# sql name of the function that sets a value wherever it is a member value of a JSON document
REPLACE_JSON_VALUES = "trackflow_replace_json_values"

# sql name -> ip mode of the functions that apply pipelines.ip's rule
IP_RULE_FUNCTIONS: dict[IpMode, str] = {
    "truncate": "trackflow_truncate_ip",
    "full": "trackflow_normalise_ip",
}


def compute_connection() -> duckdb.DuckDBPyConnection:
    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("set TimeZone = 'UTC'")
        con.execute("set threads = 1")
        con.execute("set memory_limit = '512MB'")
        for mode, name in IP_RULE_FUNCTIONS.items():
            con.create_function(
                name,
                _ip_function(mode),
                [VARCHAR],
                VARCHAR,
                type=PythonUDFType.ARROW,
                null_handling=FunctionNullHandling.SPECIAL,
            )
        con.create_function(
            REPLACE_JSON_VALUES,
            _replace_json_values,
            [VARCHAR, VARCHAR, VARCHAR],
            VARCHAR,
            type=PythonUDFType.ARROW,
            null_handling=FunctionNullHandling.SPECIAL,
        )
        _local.con = con
    return con


def _replace_json_values(docs: pa.Array, olds: pa.Array, news: pa.Array) -> pa.Array:
    """pipelines.ip.replace_values over JSON texts (compact output; the rare exact route)."""
    out = []
    for doc, old, new in zip(docs.to_pylist(), olds.to_pylist(), news.to_pylist(), strict=True):
        if doc is None or old is None:
            out.append(doc)
            continue
        value = replace_values(json.loads(doc), old, new)
        out.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return pa.array(out, type=pa.string())


def _ip_function(mode: IpMode) -> Callable[[pa.Array], pa.Array]:
    """pipelines.ip's rule over an Arrow column (each distinct address is parsed once: the
    rule's functions are cached)."""

    def apply(values: pa.Array | pa.ChunkedArray) -> pa.Array:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        return pa.array([apply_ip_rule(v, mode) for v in values.to_pylist()], type=pa.string())

    return apply


def query_arrow(sql: str, **tables: pa.Table) -> pa.Table:
    """Run `sql` over the given Arrow tables (by name) and return the result as Arrow."""
    con = compute_connection()
    for name, table in tables.items():
        con.register(name, table)
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        for name in tables:
            con.unregister(name)
