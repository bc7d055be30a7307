"""The marts equal the generator's ground truth on a multi-day dataset with every fault."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.generator import generate
from tests.dbt.warehouse import accepted_rows, append_raw, query, run_dbt

FAULTS = {"duplicates", "late", "skew", "malformed"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("truth")
    db = work / "warehouse.duckdb"
    traffic = generate(
        events=6000, users=300, days=3, seed=5, start=date(2024, 3, 1), faults=FAULTS
    )
    append_raw(db, accepted_rows(traffic), "load-1")
    run_dbt(db, "build")
    return db, traffic.truth


def test_staging_deduplicates_to_the_valid_messages(built: tuple[Path, dict]) -> None:
    db, truth = built
    assert truth["duplicate_deliveries"] > 0
    [(rows, distinct)] = query(
        db, "select count(*), count(distinct message_id) from staging.stg_raw__tracking_events"
    )
    assert rows == distinct == truth["valid_message_ids"]


def test_sessions_match_truth(built: tuple[Path, dict]) -> None:
    db, truth = built
    [(sessions, events)] = query(
        db, "select count(*), sum(event_count) from analytics.fct_sessions"
    )
    assert sessions == truth["sessions"]
    assert events == truth["session_events"]
    per_day = dict(
        query(
            db,
            "select strftime(session_date, '%Y-%m-%d'), count(*) from analytics.fct_sessions "
            "group by all",
        )
    )
    assert per_day == truth["sessions_per_day"]


def test_identities_match_truth(built: tuple[Path, dict]) -> None:
    db, truth = built
    [(users,)] = query(db, "select count(distinct user_id) from staging.int_identities__mapped")
    assert users == truth["users_stitched"]


def test_checkout_funnel_matches_truth(built: tuple[Path, dict]) -> None:
    db, truth = built
    steps = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed"]
    [reached] = query(
        db,
        "select count(step_1_at), count(step_2_at), count(step_3_at), count(step_4_at) "
        "from analytics.fct_funnel_progress where funnel_name = 'checkout'",
    )
    assert dict(zip(steps, reached, strict=True)) == truth["funnels"]["checkout"]
    daily = query(
        db,
        "select sum(attempts_reached) from analytics.agg_funnel_daily "
        "where funnel_name = 'checkout' group by step_number order by step_number",
    )
    assert [n for (n,) in daily] == list(reached)


def test_bots_are_kept_in_staging_and_dropped_from_marts(built: tuple[Path, dict]) -> None:
    db, truth = built
    [(bots,)] = query(db, "select count(*) from staging.stg_raw__tracking_events where is_bot")
    assert bots == truth["bot_events"] > 0
    [(leaked,)] = query(
        db,
        "select count(*) from staging.stg_raw__tracking_events as e "
        "inner join analytics.fct_sessions as s on list_contains(s.anonymous_ids, e.anonymous_id) "
        "where e.is_bot",
    )
    assert leaked == 0


def test_a_windowed_run_tests_the_rows_of_its_window(
    built: tuple[Path, dict], tmp_path: Path
) -> None:
    """With min_date/max_date a data test reads only that window (macros/tests/window.sql);
    without them every row."""
    db, _ = built
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(db, copy)
    with duckdb.connect(str(copy)) as con:
        # a duplicated session on the first day: the unique test must see it in that day only
        con.execute(
            "insert into analytics.fct_sessions select * from analytics.fct_sessions "
            "where session_date = date '2024-03-01' limit 1"
        )
    unique = ("test", "--select", "unique_fct_sessions_session_id")
    other_day = run_dbt(copy, *unique, vars={"min_date": "2024-03-02", "max_date": "2024-03-02"})
    assert "PASS=1" in other_day.stdout
    same_day = run_dbt(
        copy, *unique, vars={"min_date": "2024-03-01", "max_date": "2024-03-01"}, check=False
    )
    assert same_day.returncode != 0 and "FAIL 1 unique_fct_sessions_session_id" in same_day.stdout
    whole = run_dbt(copy, *unique, check=False)
    assert whole.returncode != 0 and "FAIL 1 unique_fct_sessions_session_id" in whole.stdout
