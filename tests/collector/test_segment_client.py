"""Segment's own Python client (segment-analytics-python) pointed at the collector by host alone.

segment-analytics-python is a dev dependency, so this always runs."""

from __future__ import annotations

import pytest
import segment.analytics as analytics

from pipelines.collector import CollectorSettings
from tests.collector.helpers import SERVER_KEY, LiveCollector, wait_for_events

pytestmark = pytest.mark.timeout(60)


def test_analytics_python_every_call_and_gzip(
    live: LiveCollector, settings: CollectorSettings
) -> None:
    errors: list[Exception] = []
    analytics.write_key = SERVER_KEY
    analytics.host = live.url
    analytics.on_error = lambda error, batch: errors.append(error)
    analytics.default_client = None
    try:
        analytics.track("user-1", "Order Completed", {"revenue": 9.5})
        analytics.identify("user-1", {"email": "ada@example.com"})
        analytics.page("user-1", "Docs", "Install")
        analytics.screen("user-1", "Home", "Main")
        analytics.group("user-1", "acme", {"plan": "pro"})
        analytics.alias("anon-1", "user-1")
        analytics.flush()
        analytics.gzip = True
        analytics.default_client = None
        analytics.track("user-2", "Gzipped")
        analytics.flush()
    finally:
        analytics.shutdown()
        analytics.gzip = False
        analytics.default_client = None

    found = wait_for_events(
        settings.kafka.bootstrap_servers, settings.topic, lambda es: len(es) >= 7
    )
    assert errors == []
    assert sorted(e["type"] for e in found) == sorted(
        ["track", "identify", "page", "screen", "group", "alias", "track"]
    )
    for event in found:
        assert event["context"]["library"]["name"] == "analytics-python"
        assert event["sentAt"] and event["receivedAt"] and event["messageId"]
