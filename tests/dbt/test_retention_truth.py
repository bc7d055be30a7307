"""analytics.agg_retention equals the generator's retention truth (pipelines/retention_truth.py),
row for row, under the declared settings and under other returning events and period limits."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipelines.generator import Traffic
from pipelines.generator_truth import declared_rules, ground_truth
from pipelines.retention_truth import RetentionRules
from tests.dbt.warehouse import query, run_dbt


def mart_rows(db: Path) -> dict[str, list[Any]]:
    rows = query(
        db,
        "select concat_ws('|', cohort_grain, strftime(cohort_date, '%Y-%m-%d'), period_number, "
        "platform, channel), cohort_size, retained_entities, is_period_complete, retention_rate "
        "from analytics.agg_retention",
    )
    for key, size, retained, _, rate in rows:
        assert rate == retained / size, key
    return {key: [size, retained, complete] for key, size, retained, complete, _ in rows}


def assert_same(got: dict[str, list[Any]], expected: dict[str, list[Any]]) -> None:
    missing = expected.keys() - got.keys()
    unexpected = got.keys() - expected.keys()
    different = {
        k: (got[k], expected[k]) for k in expected.keys() & got.keys() if got[k] != expected[k]
    }
    assert not (missing or unexpected or different), (
        f"{len(missing)} rows missing, e.g. {sorted(missing)[:3]}; {len(unexpected)} unexpected, "
        f"e.g. {sorted(unexpected)[:3]}; {len(different)} differ (mart, truth), "
        f"e.g. {list(different.items())[:3]}"
    )


def test_retention_matches_truth(built: tuple[Path, dict]) -> None:
    db, truth = built
    expected = truth["retention"]
    assert_same(mart_rows(db), expected)
    # the truth exercises what it claims: day and week cohorts, several days, incomplete periods
    cohorts = {key.split("|")[1] for key in expected if key.startswith("day|")}
    assert len(cohorts) >= 3
    assert any(key.startswith("week|") for key in expected)
    assert {complete for _, _, complete in expected.values()} == {True, False}
    # every entity of dim_users is in exactly one day cohort
    [(users,)] = query(db, "select count(*) from analytics.dim_users")
    first_periods = [v for k, v in expected.items() if k.split("|")[0:3:2] == ["day", "0"]]
    assert users == sum(size for size, _, _ in first_periods)


def test_returning_events_and_period_limits_are_configurable(
    built: tuple[Path, dict], built_traffic: Traffic, tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built[0], db)
    settings = {
        "retention__returning_events": ["Order Completed", "Checkout Started"],
        "retention__max_day_periods": 1,
        "retention__max_week_periods": 1,
    }
    run_dbt(db, "run", "--select", "agg_retention", vars=settings)
    rules = declared_rules()
    rules = replace(
        rules,
        retention=RetentionRules(
            returning_events=frozenset(settings["retention__returning_events"]),
            max_periods={"day": 1, "week": 1},
        ),
    )
    expected = ground_truth(built_traffic.events, rules)["retention"]
    assert_same(mart_rows(db), expected)
    # only some entities buy: the rates are not all 0 or 1, and no period beyond 1 is reported
    rates = {retained / size for size, retained, _ in expected.values()}
    assert any(0 < r < 1 for r in rates) and 0 in rates
    assert {int(key.split("|")[2]) for key in expected} == {0, 1}


def test_a_bad_retention_setting_fails_with_its_name(
    built: tuple[Path, dict], tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built[0], db)
    for settings, message in [
        ({"retention__returning_events": "Order Completed"}, "must be a list of track event names"),
        ({"retention__returning_events": ["Order'; drop"]}, "is not a plain value"),
        (
            {"retention__max_day_periods": 0},
            "retention__max_day_periods 0 is not a positive integer",
        ),
    ]:
        proc = run_dbt(db, "run", "--select", "agg_retention", vars=settings, check=False)
        assert proc.returncode != 0 and message in proc.stdout, (settings, proc.stdout[-2000:])
