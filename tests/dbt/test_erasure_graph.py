"""`trackflow forget` erases the person the identity graph makes (README "Identity"): the user
ids an alias merged and their devices, and never the other person of a shared device."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb

from pipelines.erasure import forget
from pipelines.events import messages_table, validate
from pipelines.warehouse import DuckDBFile
from tests.dbt.fixtures import as_accepted, raw_row
from tests.dbt.warehouse import append_raw, query, run_dbt, utc


def test_forget_follows_aliases_and_stops_at_a_shared_device(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    t = utc(2024, 3, 1, 8)
    rows = [
        # one person: u-old on the phone p1, then an alias u-old -> u-new, u-new on the laptop l1
        raw_row(type="identify", at=t, anonymous_id="p1", user_id="u-old"),
        raw_row(type="page", at=t + timedelta(minutes=1), anonymous_id="p1", user_id="u-old"),
        raw_row(type="alias", at=t + timedelta(hours=1), user_id="u-new", previous_id="u-old"),
        raw_row(type="page", at=t + timedelta(hours=2), anonymous_id="l1", user_id="u-new"),
        # the shared device s1: u-new logs in there, hours later u-b does
        raw_row(type="identify", at=t + timedelta(hours=3), anonymous_id="s1", user_id="u-new"),
        raw_row(type="identify", at=t + timedelta(hours=6), anonymous_id="s1", user_id="u-b"),
        raw_row(type="page", at=t + timedelta(hours=6.1), anonymous_id="s1", user_id="u-b"),
        raw_row(type="page", at=t + timedelta(hours=7), anonymous_id="b2", user_id="u-b"),
    ]
    append_raw(db, as_accepted(rows), "load-1")
    with duckdb.connect(str(db)) as con:  # the dead-letter table ingestion creates, empty
        con.register("rejected", validate(messages_table([]))[1])
        con.execute("create table raw.tracking_events_rejected as select * from rejected")
    run_dbt(db, "build")

    result = forget(DuckDBFile(db), user_id="u-new", requested_via="test")

    # u-old came in through the alias, p1 and l1 as the person's devices; s1 is shared
    assert result.identities == 4
    assert result.rows_deleted["raw.tracking_events"] == 5
    left = query(db, "select anonymous_id, user_id from raw.tracking_events order by all")
    assert left == [("b2", "u-b"), ("s1", "u-b"), ("s1", "u-b")]
    assert query(db, "select distinct user_key from analytics.fct_sessions") == [("u-b",)]
