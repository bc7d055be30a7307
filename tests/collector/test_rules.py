"""The collector's rules without a broker: validation, stamping, ip truncation, settings, auth."""

from __future__ import annotations

import re

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from pipelines.collector.auth import key_from_authorization
from pipelines.collector.enrich import enrich, partition_key, utc_now_iso
from pipelines.collector.metrics import Metrics
from pipelines.collector.server import Collector, create_app
from pipelines.collector.validation import validate_event
from pipelines.config import CollectorSettings, SettingsError
from tests.collector.helpers import basic, metric

pytestmark = pytest.mark.timeout(30)


def fields(event: object) -> set[str]:
    return {p.field for p in validate_event(event, 0)}


def test_valid_events_of_every_type_pass() -> None:
    ok = [
        {"type": "track", "event": "Signed Up", "userId": "u1", "properties": {"plan": "pro"}},
        {"type": "page", "anonymousId": "a1", "name": "Home", "timestamp": "2026-01-02T03:04:05Z"},
        {"type": "screen", "anonymousId": "a1", "sentAt": "2026-01-02T03:04:05.123+02:00"},
        {"type": "identify", "userId": 42, "traits": {"email": "x@example.com"}},
        {"type": "group", "userId": "u1", "groupId": "g1"},
        {"type": "alias", "userId": "u1", "previousId": "a1"},
    ]
    for event in ok:
        assert validate_event(event, 0) == [], event


def test_each_problem_names_index_and_field() -> None:
    problems = validate_event(
        {
            "type": "track",
            "messageId": 7,
            "timestamp": "yesterday",
            "properties": [1],
            "context": "web",
        },
        3,
    )
    assert {p.index for p in problems} == {3}
    assert {p.field for p in problems} == {
        "event",
        "anonymousId",
        "messageId",
        "timestamp",
        "properties",
        "context",
    }


def test_type_and_call_specific_requirements() -> None:
    assert fields({"type": "button_click", "anonymousId": "a"}) == {"type"}
    assert fields("not an object") == {""}
    assert fields({"type": "group", "userId": "u"}) == {"groupId"}
    assert fields({"type": "alias", "anonymousId": "a"}) == {"previousId", "userId"}
    assert fields({"type": "page", "anonymousId": "a", "name": 5}) == {"name"}
    assert fields({"type": "track", "event": "x", "anonymousId": "", "userId": True}) == {
        "anonymousId",
        "userId",
    }
    assert fields({"type": "track", "event": "x", "anonymousId": "a", "messageId": None}) == set()


def test_enrich_stamps_and_cleans() -> None:
    event = {"type": "track", "event": "x", "anonymousId": 12, "writeKey": "secret"}
    out = enrich(
        event,
        received_at=utc_now_iso(),
        client_ip="198.51.100.23",
        user_agent="UA/1",
        ip_mode="truncate",
        batch_context={"library": {"name": "analytics-python"}, "locale": "en"},
        batch_sent_at="2026-01-01T00:00:00.000Z",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out["receivedAt"])
    assert out["messageId"] and "writeKey" not in out
    assert out["anonymousId"] == "12"
    assert out["sentAt"] == "2026-01-01T00:00:00.000Z"
    assert out["context"] == {
        "library": {"name": "analytics-python"},
        "locale": "en",
        "ip": "198.51.100.0",
        "userAgent": "UA/1",
    }
    assert partition_key(out) == b"12"


def test_enrich_keeps_client_fields_and_honours_ip_mode() -> None:
    base = {
        "type": "track",
        "event": "x",
        "userId": "u9",
        "messageId": "m-1",
        "sentAt": "2026-01-01T00:00:00Z",
        "context": {"ip": "192.0.2.200", "userAgent": "server-side"},
    }
    common = {"received_at": "t", "client_ip": "10.1.2.3", "user_agent": "UA"}
    truncated = enrich(dict(base, context=dict(base["context"])), ip_mode="truncate", **common)
    assert truncated["messageId"] == "m-1" and truncated["sentAt"] == "2026-01-01T00:00:00Z"
    # the end user's ip sent by a server-side client wins over the connection's address
    assert truncated["context"] == {"ip": "192.0.2.0", "userAgent": "server-side"}
    full = enrich(dict(base, context=dict(base["context"])), ip_mode="full", **common)
    assert full["context"]["ip"] == "192.0.2.200"
    none = enrich(dict(base, context=dict(base["context"])), ip_mode="none", **common)
    assert "ip" not in none["context"]
    assert partition_key(none) == b"u9"


def test_write_keys_and_settings_from_env() -> None:
    keys = CollectorSettings.from_env({"COLLECTOR_WRITE_KEYS": "k1, web:k2,,ios:k3"}).write_keys
    assert keys == {"k1": "source1", "k2": "web", "k3": "ios"}
    with pytest.raises(SettingsError, match="COLLECTOR_WRITE_KEYS is empty"):
        CollectorSettings.from_env({})
    s = CollectorSettings.from_env(
        {
            "COLLECTOR_WRITE_KEYS": "web:abc",
            "TRACKING_TOPIC": "first.topic,second.topic",
            "KAFKA_BOOTSTRAP_SERVERS": "10.0.0.1:9092",
            "COLLECTOR_CORS_ORIGINS": "https://a.example/, https://b.example",
            "COLLECTOR_IP_MODE": "full",
            "COLLECTOR_PRODUCE_TIMEOUT_MS": "2500",
            "COLLECTOR_DEMO_PAGE": "false",
        }
    )
    assert s.topic == "first.topic"
    assert s.kafka.bootstrap_servers == "10.0.0.1:9092"
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert (s.ip_mode, s.produce_timeout_s, s.demo_page) == ("full", 2.5, False)
    with pytest.raises(SettingsError, match="COLLECTOR_IP_MODE"):
        CollectorSettings.from_env({"COLLECTOR_WRITE_KEYS": "k", "COLLECTOR_IP_MODE": "half"})
    with pytest.raises(SettingsError, match="COLLECTOR_PRODUCE_TIMEOUT_MS"):
        CollectorSettings.from_env(
            {"COLLECTOR_WRITE_KEYS": "k", "COLLECTOR_PRODUCE_TIMEOUT_MS": "x"}
        )


def test_basic_auth_parsing() -> None:
    assert key_from_authorization(basic("abc")["Authorization"]) == "abc"
    assert key_from_authorization("Bearer abc") is None
    assert key_from_authorization("Basic !!!") is None
    assert key_from_authorization(None) is None


def test_metrics_render_prometheus_text() -> None:
    m = Metrics()
    m.request("/v1/track", 200)
    m.event_outcome("accepted", 'we"b', 3)
    m.produce_latency(0.003)
    body, content_type = m.render()
    text = body.decode()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert 'trackflow_collector_requests_total{endpoint="/v1/track",status="200"} 1.0' in text
    assert 'trackflow_collector_events_total{outcome="accepted",source="we\\"b"} 3.0' in text
    latency = "trackflow_collector_produce_latency_seconds"
    assert metric(text, f"{latency}_bucket", le="0.0025") == 0
    assert metric(text, f"{latency}_bucket", le="0.005") == 1
    assert metric(text, f"{latency}_count") == 1


def test_collector_settings_for_hostile_clients() -> None:
    defaults = CollectorSettings.from_env({"COLLECTOR_WRITE_KEYS": "k"})
    assert defaults.demo_page is False
    assert defaults.trusted_proxies == ()
    assert (defaults.max_batch_events, defaults.max_connections) == (2000, 1000)
    assert (defaults.idle_timeout_s, defaults.header_timeout_s, defaults.body_timeout_s) == (
        5.0,
        10.0,
        30.0,
    )
    s = CollectorSettings.from_env(
        {
            "COLLECTOR_WRITE_KEYS": "k",
            "COLLECTOR_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1,::1",
            "COLLECTOR_MAX_BATCH_EVENTS": "50",
            "COLLECTOR_IDLE_TIMEOUT_S": "2.5",
            "COLLECTOR_CPU_THREADS": "4",
        }
    )
    assert s.trusted_proxies == ("10.0.0.0/8", "192.0.2.1", "::1")
    assert (s.max_batch_events, s.idle_timeout_s, s.cpu_threads) == (50, 2.5, 4)
    with pytest.raises(SettingsError, match="COLLECTOR_TRUSTED_PROXIES entry 'proxy.example'"):
        CollectorSettings.from_env(
            {"COLLECTOR_WRITE_KEYS": "k", "COLLECTOR_TRUSTED_PROXIES": "proxy.example"}
        )
    with pytest.raises(SettingsError, match="COLLECTOR_MAX_CONNECTIONS"):
        CollectorSettings.from_env({"COLLECTOR_WRITE_KEYS": "k", "COLLECTOR_MAX_CONNECTIONS": "0"})


def test_a_failure_of_the_collector_is_a_counted_500(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette answers an unhandled exception outside every middleware an app adds; the
    collector answers it where its metrics see it."""

    async def broken(self: Collector, request: Request) -> Response:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Collector, "tracker", broken)
    settings = CollectorSettings(write_keys={"k": "web"})  # no broker: the lifespan is not run
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    r = client.get("/tracker.js")
    assert r.status_code == 500
    assert r.json()["code"] == "internal"
    assert "a bug" not in r.text
    metrics = client.get("/metrics").text
    requests = "trackflow_collector_requests_total"
    assert metric(metrics, requests, endpoint="/tracker.js", status="500") == 1
