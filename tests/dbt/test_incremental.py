"""Partition runs (late data arriving between them) end with the same marts as one full refresh."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from pipelines.generator import generate
from pipelines.names import MARTS
from tests.dbt.fixtures import as_accepted, raw_row
from tests.dbt.warehouse import (
    accepted_rows,
    append_raw,
    arrival_batches,
    batch_range,
    query,
    run_dbt,
    utc,
)


def load_and_build_days(db: Path, runs: list[tuple[list[dict], list[str]]]) -> None:
    """Each (rows, days) in turn: append the rows as one load, then a one-day build per day."""
    for i, (rows, days) in enumerate(runs):
        append_raw(db, as_accepted(rows), f"load-{i}")
        for day in days:
            run_dbt(db, "build", vars={"min_date": day, "max_date": day})


def snapshot_marts(db: Path) -> None:
    con = duckdb.connect(str(db))
    try:
        con.execute("create schema if not exists incremental_result")
        for table in MARTS:
            con.execute(
                f"create or replace table incremental_result.{table} as "
                f"select * from analytics.{table}"
            )
    finally:
        con.close()


def assert_same_as_full_refresh(db: Path) -> None:
    snapshot_marts(db)
    run_dbt(db, "build", "--full-refresh")
    for table in MARTS:
        [(full, incremental, only_full, only_incremental)] = query(
            db,
            f"""
            select
                (select count(*) from analytics.{table}),
                (select count(*) from incremental_result.{table}),
                (select count(*) from (
                    select * from analytics.{table}
                    except all
                    select * from incremental_result.{table}
                )),
                (select count(*) from (
                    select * from incremental_result.{table}
                    except all
                    select * from analytics.{table}
                ))
            """,
        )
        assert (only_full, only_incremental) == (0, 0), (
            f"{table}: full refresh has {full} rows, the incremental runs {incremental}; "
            f"{only_full} rows only in the full refresh, {only_incremental} only incremental"
        )


def test_generator_batches_by_arrival_day_equal_full_refresh(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    traffic = generate(
        events=3000,
        users=150,
        days=3,
        seed=17,
        start=date(2024, 3, 1),
        faults={"duplicates", "late", "skew", "malformed"},
        identity_scenarios=True,
        journeys=True,
    )
    batches = arrival_batches(accepted_rows(traffic))
    assert len(batches) >= 4, "expected late data arriving after the last generated day"
    for i, batch in enumerate(batches):
        append_raw(db, batch, f"load-{i}")
        run_dbt(db, "build", vars=batch_range(batch))
    assert_same_as_full_refresh(db)
    [(sessions,)] = query(db, "select count(*) from analytics.fct_sessions")
    assert sessions == traffic.truth["sessions"]
    # the drivers were compared with rows in them (a table rebuilt on every run from the marts
    # above), and they are the truth's
    [(drivers,)] = query(db, "select count(*) from analytics.agg_conversion_drivers")
    assert drivers == len(traffic.truth["drivers"]) > 0


def test_day_by_day_runs_with_late_bridge_and_late_login(tmp_path: Path) -> None:
    """Day partitions run one at a time, the way a daily schedule and a backfill would."""
    db = tmp_path / "warehouse.duckdb"
    day1 = utc(2024, 3, 1)
    late = timedelta(days=2)
    # day 1 as it arrives on day 1: two sessions 50 minutes apart, an anonymous visit, and a
    # visit that crosses midnight into day 2
    on_day1 = [
        raw_row(type="page", at=day1 + timedelta(hours=10), anonymous_id="a1", path="/"),
        raw_row(
            type="page",
            at=day1 + timedelta(hours=10, minutes=20),
            anonymous_id="a1",
            path="/pricing",
        ),
        raw_row(
            type="page", at=day1 + timedelta(hours=11, minutes=10), anonymous_id="a1", path="/"
        ),
        raw_row(type="page", at=day1 + timedelta(hours=9), anonymous_id="b1", path="/"),
        raw_row(
            type="page", at=day1 + timedelta(hours=9, minutes=5), anonymous_id="b1", path="/signup"
        ),
        raw_row(
            type="page",
            at=day1 + timedelta(hours=23, minutes=50),
            anonymous_id="c1",
            path="/",
            skew=timedelta(hours=-3),
        ),
        raw_row(
            at=day1 + timedelta(hours=23, minutes=55),
            anonymous_id="c1",
            event="Product Viewed",
            skew=timedelta(hours=-3),
        ),
    ]
    on_day2 = [
        raw_row(
            at=day1 + timedelta(days=1, minutes=10),
            anonymous_id="c1",
            event="Product Added",
            skew=timedelta(hours=-3),
        ),
        raw_row(type="page", at=day1 + timedelta(days=1, hours=8), user_id="u-b", path="/"),
    ]
    # arriving on day 3: an offline phone's event from day 1 that bridges a1's two sessions,
    # b1's login (so its day-1 visit belongs to u-b), u-b signing up, and a redelivery
    on_day3 = [
        raw_row(
            type="screen",
            name="Home",
            at=day1 + timedelta(hours=10, minutes=45),
            anonymous_id="a1",
            delay=late,
        ),
        raw_row(
            type="identify", at=day1 + timedelta(days=2, hours=9), anonymous_id="b1", user_id="u-b"
        ),
        raw_row(
            at=day1 + timedelta(days=2, hours=9, minutes=1),
            anonymous_id="b1",
            user_id="u-b",
            event="Signed Up",
        ),
        {**on_day1[0], "_kafka_offset": 10_000, "received_at": day1 + timedelta(days=2)},
    ]
    runs = [
        (on_day1, ["2024-03-01"]),
        (on_day2, ["2024-03-01", "2024-03-02"]),
        (on_day3, ["2024-03-01", "2024-03-03"]),
    ]
    load_and_build_days(db, runs)

    sessions = query(
        db,
        "select user_key, strftime(session_date, '%Y-%m-%d'), event_count "
        "from analytics.fct_sessions order by all",
    )
    assert sessions == [
        ("a1", "2024-03-01", 4),  # bridged into one session by the late screen view
        ("c1", "2024-03-01", 3),  # over midnight: belongs to its first day
        ("u-b", "2024-03-01", 2),  # the anonymous visit, stitched after the late login
        ("u-b", "2024-03-02", 1),
        ("u-b", "2024-03-03", 1),
    ]
    [(anonymous_ids, session_count)] = query(
        db, "select anonymous_ids, session_count from analytics.dim_users where user_key = 'u-b'"
    )
    assert (anonymous_ids, session_count) == (["b1"], 3)
    [(stale,)] = query(db, "select count(*) from analytics.dim_users where user_key = 'b1'")
    assert stale == 0
    assert_same_as_full_refresh(db)


def test_late_alias_merging_two_histories_equals_full_refresh(tmp_path: Path) -> None:
    """A late alias merges two histories already sessionized apart; a device identified as one
    person and, a day later, as another is shared. Day partitions, run as a schedule would."""
    db = tmp_path / "warehouse.duckdb"
    day1 = utc(2024, 3, 1)
    day2 = day1 + timedelta(days=1)

    def visit(at: datetime, **ids: str) -> list[dict]:
        return [raw_row(type="page", at=at + timedelta(minutes=m), path="/", **ids) for m in (0, 5)]

    on_day1 = [
        # u-old on the phone p1; the device s1 anonymous, then logged in as u-a
        raw_row(type="identify", at=day1 + timedelta(hours=8), anonymous_id="p1", user_id="u-old"),
        *visit(day1 + timedelta(hours=8, minutes=1), anonymous_id="p1", user_id="u-old"),
        *visit(day1 + timedelta(hours=9), anonymous_id="s1"),
        raw_row(
            type="identify",
            at=day1 + timedelta(hours=9, minutes=6),
            anonymous_id="s1",
            user_id="u-a",
        ),
    ]
    on_day2 = [
        # u-new on the laptop l1, a history of its own so far; u-b logs in on s1
        *visit(day2 + timedelta(hours=10), anonymous_id="l1"),
        raw_row(
            type="identify",
            at=day2 + timedelta(hours=10, minutes=6),
            anonymous_id="l1",
            user_id="u-new",
        ),
        raw_row(type="identify", at=day2 + timedelta(hours=14), anonymous_id="s1", user_id="u-b"),
        *visit(day2 + timedelta(hours=15), anonymous_id="s1"),
    ]
    # sent two days late: the alias u-old -> u-new of day 2
    on_day3 = [
        raw_row(
            type="alias",
            at=day2 + timedelta(hours=12),
            user_id="u-new",
            previous_id="u-old",
            delay=timedelta(days=2),
        ),
    ]
    runs = [(on_day1, ["2024-03-01"]), (on_day2, ["2024-03-02"]), (on_day3, ["2024-03-02"])]
    load_and_build_days(db, runs)

    sessions = query(
        db,
        "select user_key, strftime(started_at, '%d %H:%M'), event_count "
        "from analytics.fct_sessions order by all",
    )
    assert sessions == [
        ("u-a", "01 09:00", 2),  # anonymous on s1 before any login: the first person's
        ("u-b", "02 15:00", 2),  # anonymous on s1 after u-b's login there
        ("u-old", "01 08:01", 2),  # the merged person's key: its user id seen first
        ("u-old", "02 10:00", 2),  # u-new's laptop, merged in by the late alias
    ]
    [(stale,)] = query(db, "select count(*) from analytics.dim_users where user_key = 'u-new'")
    assert stale == 0
    assert_same_as_full_refresh(db)


def test_late_events_change_first_time_steps_and_exclusions(tmp_path: Path) -> None:
    """A late earlier order makes a converted first_order attempt's order a repeat, and a late
    removal between adding and ordering excludes a checkout_per_product attempt: the partition
    runs of the late events' days rewrite them, ending equal to a full refresh."""
    db = tmp_path / "warehouse.duckdb"
    day2 = utc(2024, 3, 2)
    product = {"product_id": "sku-001"}
    on_time = [
        raw_row(
            at=day2 + timedelta(hours=10), user_id="u-1", event="Product Viewed", properties=product
        ),
        raw_row(
            at=day2 + timedelta(hours=10, minutes=1),
            user_id="u-1",
            event="Product Added",
            properties=product,
        ),
        raw_row(
            at=day2 + timedelta(hours=10, minutes=5),
            user_id="u-1",
            event="Order Completed",
            properties=product,
        ),
    ]
    late = [
        # an order of the day before, sent by an offline phone two days later
        raw_row(
            at=day2 - timedelta(days=1),
            user_id="u-1",
            event="Order Completed",
            properties={"product_id": "sku-009"},
            delay=timedelta(days=2),
        ),
        # a removal between adding and ordering, sent a day later
        raw_row(
            at=day2 + timedelta(hours=10, minutes=3),
            user_id="u-1",
            event="Product Removed",
            properties={**product, "reason": "changed_mind"},
            delay=timedelta(days=1),
        ),
    ]

    def attempts() -> list[tuple]:
        return query(
            db,
            "select funnel_name, is_converted, is_excluded from analytics.fct_funnel_progress "
            "where funnel_name in ('first_order', 'checkout_per_product') order by 1",
        )

    append_raw(db, as_accepted(on_time), "load-0")
    run_dbt(db, "build", vars={"min_date": "2024-03-02", "max_date": "2024-03-02"})
    assert attempts() == [("checkout_per_product", True, False), ("first_order", True, False)]
    append_raw(db, as_accepted(late), "load-1")
    for day in ("2024-03-01", "2024-03-02"):
        run_dbt(db, "build", vars={"min_date": day, "max_date": day})
    assert attempts() == [("checkout_per_product", False, True), ("first_order", False, False)]
    assert_same_as_full_refresh(db)
