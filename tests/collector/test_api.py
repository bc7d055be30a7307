"""The Segment-compatible API against a live collector and the session broker: every endpoint,
every error status, auth and CORS, and what exactly lands in Kafka."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import httpx
import pytest

from pipelines.collector import CollectorSettings
from tests.collector.conftest import ALLOWED_ORIGIN, collector_settings
from tests.collector.helpers import (
    SERVER_KEY,
    WEB_KEY,
    LiveCollector,
    basic,
    drain,
    events,
    metric,
)

pytestmark = pytest.mark.timeout(60)

ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

SINGLE_CALLS: dict[str, dict[str, Any]] = {
    "track": {"event": "Order Completed", "properties": {"revenue": 12.5}},
    "page": {"name": "Pricing", "properties": {"path": "/pricing"}},
    "screen": {"name": "Home"},
    "identify": {"traits": {"email": "ada@example.com"}},
    "group": {"groupId": "acme", "traits": {"plan": "enterprise"}},
    "alias": {"previousId": "anon-1"},
}


def test_every_single_event_endpoint_lands_in_kafka(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    for name, call in SINGLE_CALLS.items():
        body = {"userId": f"user-{name}", **call}
        r = client.post(f"/v1/{name}", json=body, headers=basic(SERVER_KEY))
        assert r.status_code == 200, r.text
        assert r.json() == {"success": True}

    records = drain(settings.kafka.bootstrap_servers, settings.topic)
    by_type = {json.loads(r.value)["type"]: r for r in records}
    assert set(by_type) == set(SINGLE_CALLS)
    for kind, record in by_type.items():
        event = json.loads(record.value)
        assert record.key == f"user-{kind}".encode()
        assert dict(record.headers) == {"source": b"backend"}
        assert ISO_MS_Z.fullmatch(event["receivedAt"])
        assert event["messageId"]
        assert event["context"]["ip"] == "127.0.0.0"
        assert event["context"]["userAgent"].startswith("python-httpx")
    assert json.loads(by_type["track"].value)["properties"] == {"revenue": 12.5}


def test_endpoint_decides_the_type_and_one_letter_aliases_work(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    r = client.post(
        "/v1/t",
        json={"type": "page", "event": "Clicked", "anonymousId": "a1"},
        headers=basic(WEB_KEY),
    )
    assert r.status_code == 200
    [event] = events(drain(settings.kafka.bootstrap_servers, settings.topic))
    assert event["type"] == "track"


# the collector sits behind a proxy on this machine, which it is told to trust
@pytest.mark.parametrize("settings", [{"trusted_proxies": ("127.0.0.1",)}], indirect=True)
def test_batch_keeps_client_fields_and_merges_batch_context(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    batch = {
        "batch": [
            {
                "type": "track",
                "event": "A",
                "anonymousId": "anon-7",
                "messageId": "m-1",
                "timestamp": "2026-03-01T10:00:00.000Z",
                "context": {"locale": "fr-FR"},
            },
            {"type": "identify", "userId": "u-7", "anonymousId": "anon-7", "traits": {"n": 1}},
            {"type": "track", "event": "B", "userId": "u-8", "sentAt": "2026-03-01T10:00:02Z"},
        ],
        "context": {"library": {"name": "analytics-python", "version": "2.3"}, "locale": "en"},
        "sentAt": "2026-03-01T10:00:01.000Z",
    }
    r = client.post(
        "/v1/batch",
        json=batch,
        headers={**basic(SERVER_KEY), "X-Forwarded-For": "203.0.113.77"},
    )
    assert r.status_code == 200, r.text
    records = drain(settings.kafka.bootstrap_servers, settings.topic)
    assert len(records) == 3
    by_event = {json.loads(r.value).get("event") or "identify": r for r in records}
    a = json.loads(by_event["A"].value)
    assert a["messageId"] == "m-1"
    assert a["timestamp"] == "2026-03-01T10:00:00.000Z"
    assert a["sentAt"] == "2026-03-01T10:00:01.000Z"
    # the event's own context wins over the batch's
    assert a["context"]["locale"] == "fr-FR"
    assert a["context"]["library"] == {"name": "analytics-python", "version": "2.3"}
    # behind a trusted proxy the forwarded client address is recorded, truncated
    assert a["context"]["ip"] == "203.0.113.0"
    # anonymousId is the key even when userId is known, so a visitor stays in one partition
    assert by_event["identify"].key == b"anon-7"
    assert by_event["B"].key == b"u-8"
    assert json.loads(by_event["B"].value)["sentAt"] == "2026-03-01T10:00:02Z"


def test_write_key_in_body_as_browsers_send_it(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    body = {"batch": [{"type": "page", "anonymousId": "a"}], "writeKey": WEB_KEY}
    r = client.post("/v1/batch", content=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    r = client.post("/v1/track", json={"event": "x", "anonymousId": "a", "writeKey": WEB_KEY})
    assert r.status_code == 200
    records = drain(settings.kafka.bootstrap_servers, settings.topic)
    assert len(records) == 2
    for record in records:
        assert "writeKey" not in json.loads(record.value)
        assert dict(record.headers) == {"source": b"web"}


def test_gzip_bodies_are_accepted(client: httpx.Client, settings: CollectorSettings) -> None:
    body = gzip.compress(json.dumps({"batch": [{"type": "page", "anonymousId": "z"}]}).encode())
    r = client.post(
        "/v1/batch",
        content=body,
        headers={**basic(WEB_KEY), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert len(drain(settings.kafka.bootstrap_servers, settings.topic)) == 1


def test_auth_is_required(client: httpx.Client, settings: CollectorSettings) -> None:
    event = {"event": "x", "anonymousId": "a"}
    missing = client.post("/v1/track", json=event)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    assert client.post("/v1/track", json=event, headers=basic("nope")).status_code == 401
    assert client.post("/v1/track", json={**event, "writeKey": "nope"}).status_code == 401
    assert client.post("/v1/batch", json={"batch": [event]}).status_code == 401
    # a wrong header key is not rescued by a right body key
    r = client.post("/v1/track", json={**event, "writeKey": WEB_KEY}, headers=basic("nope"))
    assert r.status_code == 401
    assert drain(settings.kafka.bootstrap_servers, settings.topic) == []


def test_invalid_events_are_listed_by_index_and_field_and_nothing_is_stored(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    batch = {
        "batch": [
            {"type": "track", "event": "fine", "anonymousId": "a"},
            {"type": "button_click", "anonymousId": "a"},
            {"type": "track", "event": "x"},
            {"type": "page", "anonymousId": "a", "timestamp": "soon", "properties": []},
        ]
    }
    r = client.post("/v1/batch", json=batch, headers=basic(WEB_KEY))
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False
    assert {(e["index"], e["field"]) for e in body["errors"]} == {
        (1, "type"),
        (2, "anonymousId"),
        (3, "timestamp"),
        (3, "properties"),
    }
    assert all(e["message"] for e in body["errors"])

    single = client.post("/v1/track", json={"anonymousId": "a"}, headers=basic(WEB_KEY))
    assert single.status_code == 400
    assert single.json()["errors"] == [
        {
            "index": 0,
            "field": "event",
            "code": "missing_event",
            "message": "a track call needs the event name as a non-empty string",
        }
    ]
    for bad_body, what in [
        (b"{not json", "not valid JSON"),
        (b'{"batch": [{"type": "page", "anonymousId": "a", "properties": {"v": NaN}}]}', "NaN"),
        (b"[1, 2]", "JSON object"),
        (b'{"batch": []}', "invalid batch"),
        (b'{"batch": {"type": "track"}}', "invalid batch"),
    ]:
        r = client.post("/v1/batch", content=bad_body, headers=basic(WEB_KEY))
        assert r.status_code == 400 and what in r.text, (bad_body, r.text)
    assert drain(settings.kafka.bootstrap_servers, settings.topic) == []


def test_size_limits_answer_413(client: httpx.Client, settings: CollectorSettings) -> None:
    big = "x" * (33 * 1024)
    r = client.post(
        "/v1/track",
        json={"event": "x", "anonymousId": "a", "properties": {"blob": big}},
        headers=basic(WEB_KEY),
    )
    assert r.status_code == 413

    # each event of a batch is held to 32 KB even when the batch is under 500 KB
    batch = {
        "batch": [
            {"type": "track", "event": "ok", "anonymousId": "a"},
            {"type": "track", "event": "x", "anonymousId": "a", "properties": {"blob": big}},
        ]
    }
    r = client.post("/v1/batch", json=batch, headers=basic(WEB_KEY))
    assert r.status_code == 413
    assert [e["index"] for e in r.json()["errors"]] == [1]

    # 20 events of 30 KB: each within its limit, together over 500 KB
    piece = "y" * (30 * 1024)
    batch = {
        "batch": [
            {"type": "track", "event": "x", "anonymousId": "a", "properties": {"p": piece}}
            for _ in range(20)
        ]
    }
    r = client.post("/v1/batch", json=batch, headers=basic(WEB_KEY))
    assert r.status_code == 413

    # a small gzip that inflates past the limit is stopped at the limit
    bomb = gzip.compress(b'{"batch": [' + b" " * (5 * 1024 * 1024) + b"]}")
    r = client.post(
        "/v1/batch", content=bomb, headers={**basic(WEB_KEY), "Content-Encoding": "gzip"}
    )
    assert r.status_code == 413
    assert drain(settings.kafka.bootstrap_servers, settings.topic) == []


def test_unknown_endpoint_and_wrong_method(client: httpx.Client) -> None:
    assert client.post("/v1/nope", json={}, headers=basic(WEB_KEY)).status_code == 404
    assert client.get("/v1/track").status_code == 405
    r = client.post(
        "/v1/track", content=b"{}", headers={**basic(WEB_KEY), "Content-Encoding": "br"}
    )
    assert r.status_code == 415


def test_cors_allow_list(client: httpx.Client, settings: CollectorSettings) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    ok = client.options(
        "/v1/batch",
        headers={
            "Origin": ALLOWED_ORIGIN,
            **preflight,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Authorization" in ok.headers["Access-Control-Allow-Headers"]
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]

    refused = client.options("/v1/batch", headers={"Origin": "https://evil.example", **preflight})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers

    event = {"type": "track", "event": "x", "anonymousId": "a", "writeKey": WEB_KEY}
    # a simple (no preflight) request from an unlisted origin is refused too, not just unreadable
    r = client.post(
        "/v1/track",
        content=json.dumps(event),
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
    )
    assert r.status_code == 403
    assert drain(settings.kafka.bootstrap_servers, settings.topic) == []

    r = client.post(
        "/v1/track",
        content=json.dumps(event),
        headers={"Origin": ALLOWED_ORIGIN, "Content-Type": "text/plain"},
    )
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]

    # the collector's own pages (the demo) are same-origin
    same = client.post(
        "/v1/track",
        content=json.dumps(event),
        headers={"Origin": str(client.base_url).rstrip("/")},
    )
    assert same.status_code == 200
    assert len(drain(settings.kafka.bootstrap_servers, settings.topic)) == 2


def test_any_origin_when_configured(broker, topic: str) -> None:  # type: ignore[no-untyped-def]
    settings = collector_settings(broker.bootstrap, topic, cors_origins=("*",))
    with LiveCollector(settings) as live:
        r = httpx.options(
            f"{live.url}/v1/batch",
            headers={"Origin": "https://anywhere.example", "Access-Control-Request-Method": "POST"},
        )
        assert r.status_code == 204
        assert r.headers["Access-Control-Allow-Origin"] == "https://anywhere.example"


@pytest.mark.parametrize("settings", [{"demo_page": True}], indirect=True)
def test_health_metrics_tracker_and_demo(client: httpx.Client, settings: CollectorSettings) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    # terse for anyone; the broker and topic only for this machine
    assert health.json() == {"status": "ok"}
    details = client.get("/health/details")
    assert details.json() == {"status": "ok", "broker": "reachable", "topic": settings.topic}

    client.post("/v1/track", json={"event": "x", "anonymousId": "a"}, headers=basic(WEB_KEY))
    client.post("/v1/track", json={"anonymousId": "a"}, headers=basic(WEB_KEY))
    client.post("/v1/track", json={"event": "x", "anonymousId": "a"})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = metrics.text
    requests = "trackflow_collector_requests_total"
    for status in ("200", "400", "401"):
        assert metric(text, requests, endpoint="/v1/track", status=status) == 1, status
    assert metric(text, "trackflow_collector_events_total", outcome="accepted", source="web") == 1
    assert metric(text, "trackflow_collector_events_total", outcome="rejected", source="web") == 1
    assert metric(text, "trackflow_collector_produce_latency_seconds_count") == 1

    tracker = client.get("/tracker.js")
    assert tracker.status_code == 200
    assert tracker.headers["content-type"].startswith("application/javascript")
    assert "sendBeacon" in tracker.text

    demo = client.get("/demo")
    assert demo.status_code == 200
    assert 'id="myButton"' in demo.text
    assert f'data-write-key="{WEB_KEY}"' in demo.text


def test_demo_page_can_be_switched_off(broker, topic: str) -> None:  # type: ignore[no-untyped-def]
    settings = collector_settings(broker.bootstrap, topic, demo_page=False)
    with LiveCollector(settings) as live:
        assert httpx.get(f"{live.url}/demo").status_code == 404
        assert httpx.get(f"{live.url}/tracker.js").status_code == 200
