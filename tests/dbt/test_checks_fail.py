"""Every custom dbt check passes on the built warehouse and fails on one planted violation.

The checks are our generic tests (macros/tests/: expression_is_true, no_overlapping_intervals,
non_increasing_along, unique_combination) wherever a model declares them, and the singular tests
(tests/). A check that cannot fail protects nothing, so each one is run by the real dbt CLI on a
copy of the warehouse with exactly one row made wrong, and must report that row.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import duckdb
import pytest

from tests.dbt.warehouse import run_dbt


class Plant(NamedTuple):
    check: str  # the dbt test's name
    sql: str  # makes exactly one violation of it in the warehouse: the check returns one row


PLANTS = {
    "session_ends_before_it_starts": Plant(
        "expression_is_true_fct_sessions_ended_at_started_at",
        """
        update analytics.fct_sessions set ended_at = started_at - interval 1 second
        where session_id = (select min(session_id) from analytics.fct_sessions)
        """,
    ),
    # two sessions: one exactly at the 24 h maximum (allowed), one a second over it
    "session_longer_than_the_maximum": Plant(
        "expression_is_true_fct_sessions_ended_at_started_at_interval_var_sessions__max_length_hours_hour",
        """
        update analytics.fct_sessions set ended_at = started_at + interval 24 hour
        where session_id = (select min(session_id) from analytics.fct_sessions);
        update analytics.fct_sessions
        set ended_at = started_at + interval 24 hour + interval 1 second
        where session_id = (select max(session_id) from analytics.fct_sessions);
        """,
    ),
    "user_without_sessions": Plant(
        "expression_is_true_dim_users_session_count__session_count_1",
        """
        update analytics.dim_users set session_count = 0
        where user_key = (select min(user_key) from analytics.dim_users)
        """,
    ),
    "attempt_past_the_last_step": Plant(
        "expression_is_true_fct_funnel_progress_furthest_step__furthest_step_between_1_and_funnel_step_count",
        """
        update analytics.fct_funnel_progress set furthest_step = funnel_step_count + 1
        where funnel_attempt_id = (select min(funnel_attempt_id) from analytics.fct_funnel_progress)
        """,
    ),
    "more_reached_than_entered": Plant(
        "expression_is_true_agg_funnel_daily_attempts_reached_attempts_entered",
        """
        update analytics.agg_funnel_daily set attempts_reached = attempts_entered + 1
        where funnel_daily_id = (select min(funnel_daily_id) from analytics.agg_funnel_daily)
        """,
    ),
    # an entity's session starts the moment its previous one ends: closed intervals share it
    "sessions_of_an_entity_touch": Plant(
        "no_overlapping_intervals_fct_sessions_ended_at__user_key__started_at",
        """
        update analytics.fct_sessions set started_at = planted.previous_ended_at
        from (
            select
                session_id,
                lag(ended_at) over (partition by user_key order by started_at) as previous_ended_at
            from analytics.fct_sessions
            qualify previous_ended_at is not null
            order by session_id
            limit 1
        ) as planted
        where fct_sessions.session_id = planted.session_id
        """,
    ),
    "step_two_reached_more_than_step_one": Plant(
        "non_increasing_along_agg_funnel_daily_attempts_reached__funnel_name__attempt_date__platform__channel__step_number",
        """
        update analytics.agg_funnel_daily as second
        set attempts_reached = first.attempts_reached + 1
        from analytics.agg_funnel_daily as first
        where
            second.funnel_daily_id = (
                -- a required step: the check leaves optional steps out (the step after an
                -- optional one may be reached by more attempts than it)
                select min(funnel_daily_id) from analytics.agg_funnel_daily
                where step_number = 2 and not is_optional_step
            )
            and first.step_number = 1
            and first.funnel_name = second.funnel_name
            and first.attempt_date = second.attempt_date
            and first.platform is not distinct from second.platform
            and first.channel is not distinct from second.channel
        """,
    ),
    # a second row for the same funnel, day, step, platform and channel (its own primary key)
    "daily_funnel_row_twice": Plant(
        "unique_combination_agg_funnel_daily_funnel_name__attempt_date__step_number__platform__channel",
        """
        insert into analytics.agg_funnel_daily
        select * replace ('planted' as funnel_daily_id) from analytics.agg_funnel_daily
        order by funnel_daily_id
        limit 1
        """,
    ),
    "more_retained_than_the_cohort": Plant(
        "expression_is_true_agg_retention_retained_entities_between_0_and_cohort_size",
        """
        update analytics.agg_retention set retained_entities = cohort_size + 1
        where retention_id = (select min(retention_id) from analytics.agg_retention)
        """,
    ),
    "retention_rate_above_one": Plant(
        "expression_is_true_agg_retention_retention_rate_between_0_and_1",
        """
        update analytics.agg_retention set retention_rate = 1.5
        where retention_id = (select min(retention_id) from analytics.agg_retention)
        """,
    ),
    "week_cohort_not_on_a_monday": Plant(
        "expression_is_true_agg_retention_cohort_grain_day_or_dayofweek_cohort_date_1",
        """
        update analytics.agg_retention set cohort_date = cohort_date + 1
        where retention_id = (
            select min(retention_id) from analytics.agg_retention where cohort_grain = 'week'
        )
        """,
    ),
    "retention_cell_twice": Plant(
        "unique_combination_agg_retention_cohort_grain__cohort_date__period_number__platform__channel",
        """
        insert into analytics.agg_retention
        select * replace ('planted' as retention_id) from analytics.agg_retention
        order by retention_id
        limit 1
        """,
    ),
    "driver_seen_by_more_than_all": Plant(
        "expression_is_true_agg_conversion_drivers_converted_with_converted_total_and_dropped_with_dropped_total",
        """
        update analytics.agg_conversion_drivers set dropped_with = dropped_total + 1
        where driver_id = (select min(driver_id) from analytics.agg_conversion_drivers)
        """,
    ),
    "driver_below_the_support": Plant(
        "expression_is_true_agg_conversion_drivers_converted_with_dropped_with_var_drivers__min_support_",
        """
        update analytics.agg_conversion_drivers set converted_with = 0, dropped_with = 1
        where driver_id = (select min(driver_id) from analytics.agg_conversion_drivers)
        """,
    ),
    "odds_ratio_outside_its_interval": Plant(
        "expression_is_true_agg_conversion_drivers_odds_ratio_ci_lower_odds_ratio_and_odds_ratio_odds_ratio_ci_upper_and_odds_ratio_ci_lower_0",
        """
        update analytics.agg_conversion_drivers set odds_ratio = odds_ratio_ci_upper * 2
        where driver_id = (select min(driver_id) from analytics.agg_conversion_drivers)
        """,
    ),
    "driver_row_twice": Plant(
        "unique_combination_agg_conversion_drivers_funnel_name__from_step__feature_type__event_name__property_key__property_value",
        """
        insert into analytics.agg_conversion_drivers
        select * replace ('planted' as driver_id) from analytics.agg_conversion_drivers
        order by driver_id
        limit 1
        """,
    ),
    "event_in_no_session": Plant(
        "assert_session_events_in_exactly_one_session",
        """
        delete from analytics.fct_sessions
        where session_id = (
            select min(session_id) from analytics.fct_sessions where event_count = 1
        )
        """,
    ),
    # the anonymous id of one session now stitches to another user, as a late event revealing
    # an earlier login would make it
    "session_of_a_reattributed_anonymous_id": Plant(
        "assert_sessions_owned_by_stitched_entity",
        """
        update staging.int_identities__mapped set user_id = 'planted-other-user'
        where identifier = (
            select anonymous_id
            from (select unnest(anonymous_ids) as anonymous_id from analytics.fct_sessions)
            where anonymous_id in (
                select identifier from staging.int_identities__mapped where not is_shared_device
            )
            group by anonymous_id
            having count(*) = 1
            order by anonymous_id
            limit 1
        )
        """,
    ),
}

Outcomes = dict[str, tuple[str, int]]
RunChecks = Callable[..., tuple[int, Outcomes]]


@pytest.fixture(scope="module")
def run_checks(built: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> RunChecks:
    """run_checks(plant sql or None, *checks) -> (dbt's exit code, {check: (status, failures)})
    of a `dbt test` of the checks on a fresh copy of the built warehouse with the plant made.

    Every run copies the built warehouse to the same path: dbt re-parses the whole project when
    the profile (DUCKDB_PATH) changes, and reuses its parse otherwise (~2 s a run).
    """
    clean, _ = built
    work = tmp_path_factory.mktemp("planted")
    db = work / "warehouse.duckdb"

    def run(plant: str | None, *checks: str) -> tuple[int, Outcomes]:
        shutil.copyfile(clean, db)
        if plant:
            with duckdb.connect(str(db)) as con:
                con.execute(plant)
        run_results = work / "dbt_target" / "run_results.json"
        # a dbt that stops before writing it must not leave the previous run's results to read
        run_results.unlink(missing_ok=True)
        proc = run_dbt(db, "test", "--select", *checks, check=False)
        results = json.loads(run_results.read_text())["results"]
        # unique_id: test.<project>.<name>[.<hash of a generic test's arguments>]
        outcomes = {r["unique_id"].split(".")[2]: (r["status"], r["failures"]) for r in results}
        return proc.returncode, outcomes

    return run


def test_every_check_passes_on_the_built_warehouse(run_checks: RunChecks) -> None:
    checks = sorted({plant.check for plant in PLANTS.values()})
    returncode, outcomes = run_checks(None, *checks)
    assert outcomes == {check: ("pass", 0) for check in checks}
    assert returncode == 0


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_violation_fails_its_check(run_checks: RunChecks, plant: Plant) -> None:
    returncode, outcomes = run_checks(plant.sql, plant.check)
    assert outcomes == {plant.check: ("fail", 1)}
    assert returncode != 0
