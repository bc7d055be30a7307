"""Erasure that really erases: after `forget`, no byte of the person is left in the warehouse's
files (free blocks of the DuckDB file, dlt's working directory), models rebuilt or not."""

from __future__ import annotations

import json

from pipelines.config import PrivacyConfig
from pipelines.erasure import forget
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce
from pipelines.warehouse import DuckDBFile
from tests.helpers import byte_leaks, scalar, settings_for


def test_no_byte_of_the_person_is_left_in_any_file(broker, make_topic, tmp_path) -> None:
    # stored uncompressed so that a byte scan can see the person at all: DuckDB's string
    # compression (dictionary + FSST) would hide them whether they were erased or not
    warehouse = DuckDBFile(
        tmp_path / "warehouse.duckdb", settings={"force_compression": "uncompressed"}
    )
    topic = make_topic(partitions=2)
    settings = settings_for(broker.bootstrap, topic)
    traffic = generate(events=4_000, users=150, days=2, seed=21)
    produce(traffic.messages, settings, topic)
    privacy = PrivacyConfig(pseudonym_key="erasure-test")
    assert ingest(settings, warehouse, privacy=privacy).loaded == 4_000
    events = [json.loads(v) for _, v, _ in traffic.messages]
    person = "user-00013"
    ids = {person} | {e["anonymousId"] for e in events if e.get("userId") == person}
    assert byte_leaks(warehouse, ids)  # they are there before, in the file and dlt's copies

    # no model rebuild: nothing gets written over the blocks the deleted rows freed
    result = forget(warehouse, user_id=person, rebuild=False, privacy=privacy)

    assert result.rows_deleted["raw.tracking_events"] > 0
    assert byte_leaks(warehouse, ids) == []
    # and everyone else is still there, readable
    assert scalar(warehouse, "select count(*) from raw.tracking_events") == (
        4_000 - result.rows_deleted["raw.tracking_events"]
    )
