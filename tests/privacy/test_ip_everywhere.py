"""No stored value keeps an address's host bits: the shared table of cases sent through the
collector and straight to Kafka, ingested, built with dbt, then every cell of the warehouse read."""

from __future__ import annotations

import json

import httpx

from pipelines.events import dumps
from pipelines.ingest import ingest
from pipelines.producer import produce
from tests.collector.conftest import collector_settings
from tests.collector.helpers import WEB_KEY, LiveCollector, basic
from tests.helpers import dbt_build, every_cell, query, settings_for
from tests.shared.ip_cases import IP_CASES


def _event(i: int, ip: str, via: str) -> dict[str, object]:
    return {
        "messageId": f"{via}-{i}",
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": f"{via}-visitor-{i}",
        "timestamp": "2026-03-01T10:00:00.000Z",
        # the address where it belongs, and the same datum somewhere else in the event
        "context": {"ip": ip, "page": {"path": "/p", "url": "https://shop.example/p"}},
        "properties": {"client_address": ip},
    }


def test_no_host_bits_anywhere_in_the_warehouse(broker, make_topic, warehouse) -> None:
    topic = make_topic(partitions=2)
    cases = [c for c in IP_CASES if c.raw.strip()]  # a blank ip means "use the connection's"
    # straight to Kafka: ingestion's SQL pass applies the rule
    direct = [
        (f"direct-visitor-{i}".encode(), dumps(_event(i, c.raw, "direct")), 1_772_359_200_000)
        for i, c in enumerate(cases)
    ]
    produce(direct, settings_for(broker.bootstrap, topic), topic)
    # through the collector: it applies the rule before Kafka
    with LiveCollector(collector_settings(broker.bootstrap, topic)) as live:
        batch = {"batch": [_event(i, c.raw, "collector") for i, c in enumerate(cases)]}
        answer = httpx.post(f"{live.url}/v1/batch", json=batch, headers=basic(WEB_KEY))
        assert answer.status_code == 200, answer.text

    result = ingest(settings_for(broker.bootstrap, topic), warehouse)
    assert (result.loaded, result.rejected) == (2 * len(cases), 0)
    dbt_build(warehouse)

    # each stored address is the rule's answer (or nothing, for what is not an address)
    stored = dict(
        query(warehouse, "select message_id, context::json->>'ip' from raw.tracking_events")
    )
    for i, case in enumerate(cases):
        assert stored[f"direct-{i}"] == case.truncated, case
        assert stored[f"collector-{i}"] == case.truncated, case
    staged = dict(query(warehouse, "select message_id, ip from staging.stg_raw__tracking_events"))
    assert staged == stored
    # and no table, raw or built, holds an address with its host part, in any column
    secrets = {c.raw.strip() for c in cases if c.has_host_bits}
    secrets |= {json.dumps(c.raw)[1:-1] for c in cases if c.has_host_bits}
    leaks = [(table, s) for table, text in every_cell(warehouse) for s in secrets if s in text]
    assert leaks == [], sorted(set(leaks))
