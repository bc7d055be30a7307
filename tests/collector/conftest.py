"""Collector fixtures: settings for a fresh topic on the session broker, a live collector."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pipelines.broker import EmbeddedBroker
from pipelines.collector import CollectorSettings
from pipelines.config import KafkaSettings
from tests.collector.helpers import SERVER_KEY, WEB_KEY, LiveCollector

ALLOWED_ORIGIN = "http://shop.example"


def collector_settings(bootstrap: str, topic: str, **overrides: object) -> CollectorSettings:
    values: dict[str, object] = {
        "write_keys": {WEB_KEY: "web", SERVER_KEY: "backend"},
        "kafka": KafkaSettings(bootstrap_servers=bootstrap, topics=(topic,)),
        "cors_origins": (ALLOWED_ORIGIN,),
        "retry_after_s": 7,
    }
    # the settings ignore unknown names, so a misspelt override would silently test the default
    unknown = set(overrides) - set(CollectorSettings.model_fields)
    assert not unknown, f"not CollectorSettings fields: {sorted(unknown)}"
    values.update(overrides)
    return CollectorSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def topic(make_topic) -> str:  # type: ignore[no-untyped-def]
    return str(make_topic(4, prefix="collector"))


@pytest.fixture
def settings(
    broker: EmbeddedBroker, topic: str, request: pytest.FixtureRequest
) -> CollectorSettings:
    """The collector's settings for a test; `parametrize("settings", [{...}], indirect=True)`
    overrides some."""
    overrides: dict[str, object] = getattr(request, "param", {})
    return collector_settings(broker.bootstrap, topic, **overrides)


@pytest.fixture
def live(settings: CollectorSettings) -> Iterator[LiveCollector]:
    with LiveCollector(settings) as collector:
        yield collector


@pytest.fixture
def client(live: LiveCollector) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=15) as c:
        yield c
