"""Funnel config and partition vars are validated before any SQL runs; the models lint clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.dbt.warehouse import DBT_PROJECT, run_dbt

CHECKOUT_STEP = {"name": "viewed", "event": "Product Viewed"}


def funnel(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "checkout",
        "scope": "session",
        "order": "sequential",
        "window_minutes": 60,
        "steps": [CHECKOUT_STEP],
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (funnel(name="checkout; drop table x"), "is not a plain identifier"),
        (funnel(steps=[{"name": "viewed", "event": "Product' or '1'='1"}]), "is not a plain value"),
        (
            funnel(
                steps=[
                    {"name": "viewed", "event": "Product Viewed", "properties": {"price')--": "1"}}
                ]
            ),
            "is not a plain key",
        ),
        (
            funnel(order="loose", window_minutes="60 minute) or (1"),
            "order must be sequential, strict or any",
        ),
    ],
)
def test_bad_funnel_config_fails_compilation(
    tmp_path: Path, definition: dict[str, object], message: str
) -> None:
    proc = run_dbt(
        tmp_path / "w.duckdb",
        "compile",
        "--select",
        "fct_funnel_progress",
        vars={"funnels__definitions": [definition]},
        check=False,
    )
    assert proc.returncode != 0
    assert message in proc.stdout


def test_bad_partition_dates_fail_compilation(tmp_path: Path) -> None:
    proc = run_dbt(
        tmp_path / "w.duckdb",
        "compile",
        "--select",
        "fct_sessions",
        vars={"min_date": "2024-03-01'; drop", "max_date": "2024-03-02"},
        check=False,
    )
    assert proc.returncode != 0
    assert "is not an ISO date" in proc.stdout


def test_sqlfluff_lint_passes() -> None:
    sqlfluff = Path(sys.executable).parent / "sqlfluff"
    proc = subprocess.run(
        [str(sqlfluff), "lint", "models", "macros"], cwd=DBT_PROJECT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
