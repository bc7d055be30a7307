"""analytics.agg_conversion_drivers equals the generator's drivers truth
(pipelines/drivers_truth.py): the same features per funnel transition with the same 2x2 counts,
and odds ratios and intervals that follow from those counts."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.drivers_truth import DriverRules, transitions
from pipelines.generator import Traffic
from pipelines.generator_truth import declared_rules, ground_truth
from tests.dbt.warehouse import query, run_dbt

Z95 = 1.959964


def mart_counts(db: Path) -> dict[str, list[int]]:
    rows = query(
        db,
        "select concat_ws('|', funnel_name, from_step, feature_type, event_name, "
        "coalesce(property_key, ''), coalesce(property_value, '')), converted_with, "
        "dropped_with, converted_total, dropped_total from analytics.agg_conversion_drivers",
    )
    return {key: list(counts) for key, *counts in rows}


def expected_odds(cw: int, dw: int, ct: int, dt: int) -> tuple[float, float, float]:
    """Haldane-corrected odds ratio of converting with vs without, and its 95% interval."""
    a, b, c, d = cw + 0.5, dw + 0.5, ct - cw + 0.5, dt - dw + 0.5
    ratio = a * d / (b * c)
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return ratio, ratio * math.exp(-Z95 * se), ratio * math.exp(Z95 * se)


def test_drivers_match_truth(built: tuple[Path, dict]) -> None:
    db, truth = built
    expected = truth["drivers"]
    got = mart_counts(db)
    missing = expected.keys() - got.keys()
    unexpected = got.keys() - expected.keys()
    different = {
        k: (got[k], expected[k]) for k in expected.keys() & got.keys() if got[k] != expected[k]
    }
    assert not (missing or unexpected or different), (
        f"{len(missing)} missing, e.g. {sorted(missing)[:3]}; {len(unexpected)} unexpected, "
        f"e.g. {sorted(unexpected)[:3]}; {len(different)} differ (mart, truth), "
        f"e.g. {list(different.items())[:3]}"
    )
    # the truth exercises both kinds of feature, several funnels and transitions
    assert {key.split("|")[2] for key in expected} == {"event", "property"}
    assert len({tuple(key.split("|")[:2]) for key in expected}) >= 3
    for key, ratio, low, high, significant in query(
        db,
        "select concat_ws('|', funnel_name, from_step, feature_type, event_name, "
        "coalesce(property_key, ''), coalesce(property_value, '')), odds_ratio, "
        "odds_ratio_ci_lower, odds_ratio_ci_upper, is_significant "
        "from analytics.agg_conversion_drivers",
    ):
        want = expected_odds(*expected[key])
        assert (ratio, low, high) == pytest.approx(want, rel=1e-6), key
        assert significant == (want[1] > 1 or want[2] < 1), key
    # each transition goes to the next required step: an optional step is skipped over
    funnels = {f.name: f for f in declared_rules().funnels}
    for funnel, from_step, to_step in query(
        db, "select distinct funnel_name, from_step, to_step from analytics.agg_conversion_drivers"
    ):
        assert (from_step - 1, to_step - 1) in transitions(funnels[funnel]), (funnel, from_step)
    # checkout_per_product's step 2 is optional: its transitions are 1 -> 3 and 3 -> 4
    assert {"checkout_per_product|1", "checkout_per_product|3"} <= {
        "|".join(key.split("|")[:2]) for key in expected
    }
    # the traffic has drivers that separate converters from drop-offs
    assert any(
        s for (*_, s) in query(db, "select is_significant from analytics.agg_conversion_drivers")
    )


def test_properties_and_support_are_configurable(
    built: tuple[Path, dict], built_traffic: Traffic, tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built[0], db)
    settings = {"drivers__properties": ["product_id"], "drivers__min_support": 3}
    run_dbt(db, "run", "--select", "agg_conversion_drivers", vars=settings)
    rules = replace(
        declared_rules(), drivers=DriverRules(properties=("product_id",), min_support=3)
    )
    expected = ground_truth(built_traffic.events, rules)["drivers"]
    assert mart_counts(db) == expected
    assert {key.split("|")[4] for key in expected if key.split("|")[2] == "property"} == {
        "product_id"
    }
    assert min(cw + dw for cw, dw, _, _ in expected.values()) >= 3


def test_a_bad_drivers_setting_fails_with_its_name(
    built: tuple[Path, dict], tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built[0], db)
    for settings, message in [
        ({"drivers__properties": "category"}, "must be a list of property keys"),
        ({"drivers__properties": ["cat'egory"]}, "is not a plain key"),
        ({"drivers__min_support": -1}, "drivers__min_support -1 is not a positive integer"),
    ]:
        proc = run_dbt(db, "run", "--select", "agg_conversion_drivers", vars=settings, check=False)
        assert proc.returncode != 0 and message in proc.stdout, (settings, proc.stdout[-2000:])
