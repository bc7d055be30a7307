"""The marts equal the generator's ground truth on a multi-day dataset with every fault
(the `built` warehouse of conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import yaml

from tests.dbt.warehouse import DBT_PROJECT, query, run_dbt


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
    assert per_day == {d: v["sessions"] for d, v in truth["sessions_daily"].items()}


def test_identities_match_truth(built: tuple[Path, dict]) -> None:
    db, truth = built
    [(users,)] = query(db, "select count(distinct user_id) from staging.int_identities__mapped")
    assert users == truth["users_stitched"]
    [(entities, identified)] = query(
        db, "select count(*), count(*) filter (where is_identified) from analytics.dim_users"
    )
    assert (entities, identified) == (truth["users"], truth["identified_users"])


def test_identity_graph_matches_truth(built: tuple[Path, dict]) -> None:
    """Every linked id's person, shared-device and oversized flags equal the truth's rule
    (pipelines/generator_identity.py), on traffic with each scenario the rule is about."""
    db, truth = built
    got = {
        identifier: list(row)
        for identifier, *row in query(
            db,
            "select identifier, user_id, identifier_type, is_shared_device, "
            "is_in_oversized_component from staging.int_identities__mapped",
        )
    }
    expected = truth["identities"]
    wrong = {i: (got.get(i), v) for i, v in expected.items() if got.get(i) != v}
    assert not wrong and got.keys() == expected.keys(), (
        f"{len(wrong)} ids differ (marts, truth), e.g. {list(wrong.items())[:3]}; "
        f"{len(got.keys() - expected.keys())} ids only in the marts"
    )
    # the scenarios are there: a merge by alias, shared devices, a runaway component
    assert any(kind == "user_id" and person != i for i, (person, kind, *_) in expected.items())
    assert sum(shared for _, _, shared, _ in expected.values()) >= 2
    assert sum(oversized for *_, oversized in expected.values()) > 20


def test_every_declared_funnel_matches_truth(built: tuple[Path, dict]) -> None:
    db, truth = built
    declared = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text())["vars"]
    names = [f["name"] for f in declared["funnels__definitions"]]
    # the truth follows the declarations: a new funnel gets compared without touching this test
    assert list(truth["funnels"]) == names
    for name, expected in truth["funnels"].items():
        n = len(expected["reached"])
        counts = ", ".join(
            f"count(step_{k}_at) filter (where not is_excluded)" for k in range(1, n + 1)
        )
        [(*reached, converted, excluded, parallel)] = query(
            db,
            f"select {counts}, count(*) filter (where is_converted), "
            "count(*) filter (where is_excluded), "
            "(select count(*) from (select entity_id from analytics.fct_funnel_progress "
            f"where funnel_name = '{name}' group by entity_id "
            "having count(distinct held_values) > 1)) "
            f"from analytics.fct_funnel_progress where funnel_name = '{name}'",
        )
        assert reached == expected["reached"], name
        assert converted == expected["converted"] == expected["reached"][-1], name
        assert excluded == expected["excluded"], name
        assert parallel == expected["parallel_entities"], name
        daily = query(
            db,
            "select sum(attempts_reached), sum(attempts_excluded) from analytics.agg_funnel_daily "
            f"where funnel_name = '{name}' group by step_number order by step_number",
        )
        assert [count for count, _ in daily] == expected["reached"], name
        # an excluded attempt is counted on every step it reached, in attempts_excluded only
        assert daily[0][1] == expected["excluded"], name
        for label, skipped in expected["optional_skipped"].items():
            k = expected["steps"].index(label) + 1
            later = " or ".join(f"step_{q}_at is not null" for q in range(k + 1, n + 1))
            [(marts_skipped,)] = query(
                db,
                f"select count(*) from analytics.fct_funnel_progress where funnel_name = '{name}' "
                f"and not is_excluded and step_{k}_at is null and ({later})",
            )
            assert marts_skipped == skipped, (name, label)
    # the funnels whose truth has later steps really are exercised by the generator's traffic
    assert truth["funnels"]["checkout"]["reached"][-1] > 0
    assert truth["funnels"]["checkout_strict"]["reached"][-1] > 0
    # ...and so is each funnel feature: attempts excluded, the optional step both taken and
    # skipped, sessions with parallel attempts for several products, first orders repeated
    per_product = truth["funnels"]["checkout_per_product"]
    assert per_product["excluded"] > 0 and per_product["parallel_entities"] > 0
    assert per_product["reached"][1] > 0 and per_product["optional_skipped"]["reviews_read"] > 0
    assert per_product["reached"][-1] > 0
    first_order = truth["funnels"]["first_order"]
    assert first_order["reached"][-1] > 0
    assert first_order["first_time_repeats"]["first_order_completed"] > 0


def test_sessions_are_the_true_events(built: tuple[Path, dict]) -> None:
    """Which events form which session (and whose it is), not only how many: an event is in the
    session of its entity whose start and end enclose it (the marts' own mapping, see
    dbt_project/tests/assert_session_events_in_exactly_one_session.sql)."""
    db, truth = built
    got: dict[str, tuple[str, set[str]]] = {}
    for session, user_key, message_id in query(
        db,
        "select s.session_id, s.user_key, e.message_id from analytics.fct_sessions as s "
        "left join staging.int_events__stitched as e on e.is_session_event "
        "and e.user_key = s.user_key and e.event_at between s.started_at and s.ended_at",
    ):
        got.setdefault(session, (user_key, set()))[1].add(message_id)
    expected = {
        sid: (s["user_key"], set(s["message_ids"])) for sid, s in truth["sessions_by_id"].items()
    }
    missing = expected.keys() - got.keys()
    unexpected = got.keys() - expected.keys()
    different = [sid for sid in expected.keys() & got.keys() if got[sid] != expected[sid]]
    # a summary, not pytest's diff of two thousand-entry dicts
    assert not (missing or unexpected or different), (
        f"{len(missing)} true sessions missing, {len(unexpected)} sessions not in the truth, "
        f"{len(different)} with other events or owner; e.g. "
        f"{[(sid, got[sid], expected[sid]) for sid in different[:2]]}"
    )


def test_session_channels_match_truth(built: tuple[Path, dict]) -> None:
    db, truth = built
    got = dict(query(db, "select session_id, channel from analytics.fct_sessions"))
    expected = {sid: s["channel"] for sid, s in truth["sessions_by_id"].items()}
    wrong = {sid: (got.get(sid), c) for sid, c in expected.items() if got.get(sid) != c}
    assert not wrong and got.keys() == expected.keys(), (
        f"{len(wrong)} sessions with another channel (marts, truth), e.g. {list(wrong.items())[:3]}"
    )
    # every channel the generator aims at is present, so each rule is exercised
    assert set(truth["channels"]) == {"campaign", "direct", "search", "social", "referral"}


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
