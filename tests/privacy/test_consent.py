"""Consent false: the person is absent from sessions, users and funnels; nobody else changes."""

from __future__ import annotations

import json

import duckdb

from pipelines.events import dumps
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce
from pipelines.warehouse import DuckDBFile
from tests.helpers import dbt_build, settings_for


def _build(broker, make_topic, warehouse: DuckDBFile, messages) -> None:
    topic = make_topic(partitions=2)
    settings = settings_for(broker.bootstrap, topic)
    produce(messages, settings, topic)
    ingest(settings, warehouse)
    dbt_build(warehouse)


def test_withdrawn_consent_removes_only_that_person(broker, make_topic, tmp_path) -> None:
    traffic = generate(events=3_000, users=120, days=2, seed=33)
    events = [json.loads(v) for _, v, _ in traffic.messages]
    # a logged-in person with a checkout attempt, who says no on their very first event
    buyers = {e.get("userId") for e in events if e.get("event") == "Product Viewed"}
    person = sorted(u for u in buyers if u)[0]
    devices = {e["anonymousId"] for e in events if e.get("userId") == person}
    first = min(
        (e for e in events if e["anonymousId"] in devices),
        key=lambda e: (e["timestamp"], e["messageId"]),
    )
    consented = []
    for (key, value, ts), e in zip(traffic.messages, events, strict=True):
        if e["messageId"] == first["messageId"]:
            e["context"]["consent"] = {"analytics": False}
            value = dumps(e)
        consented.append((key, value, ts))

    base, withdrawn = tmp_path / "base" / "w.duckdb", tmp_path / "withdrawn" / "w.duckdb"
    base.parent.mkdir()
    withdrawn.parent.mkdir()
    _build(broker, make_topic, DuckDBFile(base), traffic.messages)
    _build(broker, make_topic, DuckDBFile(withdrawn), consented)

    con = duckdb.connect()
    con.execute(f"attach '{base}' as base (read_only)")
    con.execute(f"attach '{withdrawn}' as withdrawn (read_only)")

    def count(db: str, sql: str) -> int:
        return con.execute(sql.format(db=db)).fetchone()[0]

    assert (
        count(
            "base",
            f"select count(*) from {{db}}.analytics.fct_sessions where user_key = '{person}'",
        )
        > 0
    )
    for table, key in (
        ("fct_sessions", "user_key"),
        ("dim_users", "user_key"),
        ("fct_funnel_progress", "user_key"),
    ):
        assert (
            count(
                "withdrawn",
                f"select count(*) from {{db}}.analytics.{table} where {key} = '{person}'",
            )
            == 0
        ), table
        # everyone else's rows are exactly the same
        for a, b in (("base", "withdrawn"), ("withdrawn", "base")):
            diff = count(
                a,
                f"""select count(*) from (
                select * from {a}.analytics.{table} where {key} <> '{person}'
                except
                select * from {b}.analytics.{table} where {key} <> '{person}')""",
            )
            assert diff == 0, (table, a, b)
