"""What the collector shows to whoever asks (issue 19): no demo page (and its write key) unless
asked for, a terse /health with the broker's details for this machine only, no broker address in
any answer, and X-Forwarded-For believed only from the proxies it is told to trust."""

from __future__ import annotations

import json

import httpx
import pytest

from pipelines.broker import EmbeddedBroker, free_port
from pipelines.collector import CollectorSettings
from tests.collector.conftest import collector_settings
from tests.collector.helpers import WEB_KEY, LiveCollector, basic, drain

pytestmark = pytest.mark.timeout(60)


def test_the_demo_page_is_off_unless_asked_for(client: httpx.Client) -> None:
    assert client.get("/demo").status_code == 404
    assert client.get("/", follow_redirects=False).status_code == 404
    assert client.get("/tracker.js").status_code == 200


@pytest.mark.parametrize("settings", [{"demo_page": True}], indirect=True)
def test_the_demo_page_when_asked_for(client: httpx.Client) -> None:
    assert f'data-write-key="{WEB_KEY}"' in client.get("/demo").text
    assert client.get("/", follow_redirects=False).headers["location"] == "/demo"


def test_health_is_terse_and_details_are_for_this_machine(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    details = client.get("/health/details")
    assert details.json() == {"status": "ok", "broker": "reachable", "topic": settings.topic}
    # a request through a proxy is not from this machine, whatever the socket says
    proxied = client.get("/health/details", headers={"X-Forwarded-For": "198.51.100.7"})
    assert proxied.status_code == 403
    assert settings.topic not in proxied.text


def test_no_answer_names_the_broker_when_it_is_down(broker: EmbeddedBroker, topic: str) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    settings = collector_settings(nowhere, topic, produce_timeout_ms=1000.0)
    with LiveCollector(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json() == {"status": "unavailable"}
        event = {"event": "e", "anonymousId": "a"}
        refused = client.post("/v1/track", json=event, headers=basic(WEB_KEY))
        assert refused.status_code == 503
        for answer in (health, refused):
            assert nowhere not in answer.text
            assert "KAFKA_BOOTSTRAP_SERVERS" not in answer.text
        details = client.get("/health/details").json()
        assert details["broker"] == "unreachable"
        assert nowhere in details["error"]


def _recorded_ip(client: httpx.Client, settings: CollectorSettings) -> str:
    event = {"event": "e", "anonymousId": "a"}
    headers = {**basic(WEB_KEY), "X-Forwarded-For": "203.0.113.77"}
    assert client.post("/v1/track", json=event, headers=headers).status_code == 200
    [record] = drain(settings.kafka.bootstrap_servers, settings.topic)
    return str(json.loads(record.value)["context"]["ip"])


def test_forwarded_for_is_ignored_by_default(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    # anyone can write the header; the socket's address is what is known
    assert _recorded_ip(client, settings) == "127.0.0.0"


@pytest.mark.parametrize("settings", [{"trusted_proxies": ("10.0.0.0/8",)}], indirect=True)
def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    assert _recorded_ip(client, settings) == "127.0.0.0"


@pytest.mark.parametrize("settings", [{"trusted_proxies": ("127.0.0.1", "::1")}], indirect=True)
def test_forwarded_for_from_a_trusted_proxy_is_believed(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    assert _recorded_ip(client, settings) == "203.0.113.0"
