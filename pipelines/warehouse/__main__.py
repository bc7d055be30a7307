"""`python -m pipelines.warehouse`: install the DuckLake extensions from their wheels."""

from __future__ import annotations

from pipelines.warehouse.extensions import ensure_installed

if __name__ == "__main__":
    ensure_installed()
    print("DuckDB extensions ducklake and postgres_scanner installed")
