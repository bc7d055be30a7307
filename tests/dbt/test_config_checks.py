"""Funnel config and partition vars are validated before any SQL runs; the models lint clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.dbt.warehouse import DBT_PROJECT, run_dbt

CHECKOUT_STEP = {"name": "viewed", "event": "Product Viewed"}
ADDED_STEP = {"name": "added", "event": "Product Added"}
ORDERED_STEP = {"name": "ordered", "event": "Order Completed"}


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
        # the funnel features (README "Funnel features")
        (funnel(exclude=[]), 'unknown keys ["exclude"]'),
        (
            funnel(steps=[CHECKOUT_STEP, {**ADDED_STEP, "optinal": True}]),
            'unknown keys ["optinal"]',
        ),
        (
            funnel(steps=[CHECKOUT_STEP, {**ADDED_STEP, "first_time": "yes"}]),
            'first_time must be true or false, got "yes"',
        ),
        (
            funnel(steps=[CHECKOUT_STEP, {**ADDED_STEP, "optional": True}]),
            "the first and the last step cannot be optional",
        ),
        (
            funnel(
                order="strict",
                steps=[CHECKOUT_STEP, {**ADDED_STEP, "optional": True}, ORDERED_STEP],
            ),
            "optional steps need order sequential",
        ),
        (
            funnel(
                steps=[CHECKOUT_STEP, ADDED_STEP],
                exclusions=[{"event": "Product Removed", "after": "viewed", "before": "paid"}],
            ),
            'before must name a step of the funnel (viewed, added), got "paid"',
        ),
        (
            funnel(
                steps=[CHECKOUT_STEP, ADDED_STEP],
                exclusions=[{"event": "Product Removed", "after": "added", "before": "viewed"}],
            ),
            "step added must come before step viewed",
        ),
        (
            funnel(
                steps=[CHECKOUT_STEP, ADDED_STEP],
                exclusions=[{"event": "x", "after": "viewed", "before": "added", "when": 1}],
            ),
            'unknown keys ["when"]',
        ),
        (
            funnel(
                order="any",
                steps=[CHECKOUT_STEP, ADDED_STEP],
                exclusions=[{"event": "x", "after": "viewed", "before": "added"}],
            ),
            "exclusions need order sequential",
        ),
        (funnel(order="strict", hold_constant=["product_id"]), "not supported with order strict"),
        (funnel(hold_constant="product_id"), "hold_constant must be a list of property keys"),
        (funnel(hold_constant=["product id"]), "is not a plain key"),
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
