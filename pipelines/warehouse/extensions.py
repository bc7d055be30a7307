"""The DuckDB extensions a DuckLake warehouse needs, installed without a network.

DuckDB normally downloads extensions on first use. The `ducklake` and `postgres_scanner`
extensions also ship as PyPI wheels (duckdb-extension-ducklake, -postgres-scanner, for the
pinned DuckDB), so they are installed from those files into DuckDB's own extension directory
(~/.duckdb/extensions): every DuckDB of this environment then finds them, readers outside the
project included. Connections of the seam never try the network (`autoinstall_known_extensions`
off), so a missing extension fails at once with a clear message instead of a two-minute hang.

    python -m pipelines.warehouse     # install (make setup does it)
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

import duckdb

# extension name -> the wheel's module that carries it
WHEELS = {
    "ducklake": "duckdb_extension_ducklake",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
}
MISSING_HINT = (
    "pip install duckdb-extension-ducklake=={version} duckdb-extension-postgres-scanner=={version}"
    " (make setup does it), or on a host with a network run INSTALL ducklake; INSTALL postgres"
)

# every connection of a DuckLake warehouse: never download (fail fast, with our message)
CONNECTION_CONFIG: dict[str, Any] = {"autoinstall_known_extensions": False}


class ExtensionMissing(RuntimeError):
    pass


def wheel_file(name: str) -> Path | None:
    """The extension file a wheel of this environment ships, if installed."""
    try:
        module = importlib.import_module(WHEELS[name])
    except ImportError:
        return None
    path = Path(module.__file__ or "").parent / "extensions" / f"v{duckdb.__version__}"
    found = path / f"{name}.duckdb_extension"
    return found if found.is_file() else None


@functools.cache
def ensure_installed() -> None:
    """Install every extension a wheel ships but DuckDB has not installed yet (once a process)."""
    con = duckdb.connect(config=CONNECTION_CONFIG)
    try:
        installed = {
            name
            for name, ok in con.execute(
                "select extension_name, installed from duckdb_extensions()"
            ).fetchall()
            if ok
        }
        for name in WHEELS:
            source = wheel_file(name)
            if name not in installed and source is not None:
                con.execute(f"install '{source}'")
    finally:
        con.close()


def missing_message(error: BaseException) -> str | None:
    """One line for DuckDB's "extension not found" error, else None."""
    text = str(error)
    if "not found" not in text or "Install it first" not in text:
        return None
    name = next((n for n in ("ducklake", "postgres") if f'Extension "{n}"' in text), "ducklake")
    return f"the DuckDB extension {name} is not installed: " + MISSING_HINT.format(
        version=duckdb.__version__
    )
