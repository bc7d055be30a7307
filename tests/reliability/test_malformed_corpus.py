"""A corpus of 30+ malformed messages through the real broker: each is dead-lettered with its
code and original bytes, and the good messages of the same batch still load."""

from __future__ import annotations

import json

from pipelines.events import dumps
from pipelines.ingest import ingest
from pipelines.producer import produce
from tests.helpers import dbt_build, query, settings_for


def _good(i: int) -> dict:
    return {
        "messageId": f"good-{i}",
        "type": "track",
        "event": "Clicked",
        "anonymousId": f"a{i}",
        "timestamp": "2026-05-01T10:00:00Z",
    }


BASE = _good(0) | {"messageId": "base"}
CORPUS: dict[str, tuple[bytes | None, bytes | None, str]] = {
    "not json": (b"k", b"this is not json", "not_json"),
    "truncated json": (b"k", b'{"messageId": "x", "type": "tr', "not_json"),
    "invalid utf-8": (b"k", b'{"messageId": "\xc3\x28"}', "not_utf8"),
    "json array": (b"k", b"[1, 2]", "not_object"),
    "json string": (b"k", b'"hello"', "not_object"),
    "json number": (b"k", b"42", "not_object"),
    "json null body": (b"k", b"null", "not_object"),
    "empty body": (b"k", b"", "not_json"),
    "tombstone": (b"k", None, "null_value"),
    "non-utf8 key": (b"\x80\x81", dumps(BASE), "bad_key"),
    "missing messageId": (
        b"k",
        dumps({k: v for k, v in BASE.items() if k != "messageId"}),
        "missing_message_id",
    ),
    "null messageId": (b"k", dumps(BASE | {"messageId": None}), "missing_message_id"),
    "numeric messageId": (b"k", dumps(BASE | {"messageId": 7}), "bad_message_id"),
    "huge messageId": (b"k", dumps(BASE | {"messageId": "m" * 300}), "bad_message_id"),
    "missing both ids": (
        b"k",
        dumps({k: v for k, v in BASE.items() if k != "anonymousId"}),
        "missing_identity",
    ),
    "empty ids": (b"k", dumps(BASE | {"anonymousId": "", "userId": ""}), "missing_identity"),
    "object userId": (b"k", dumps(BASE | {"userId": {"id": 1}}), "bad_identity"),
    "array anonymousId": (b"k", dumps(BASE | {"anonymousId": ["a"]}), "bad_identity"),
    "missing type": (b"k", dumps({k: v for k, v in BASE.items() if k != "type"}), "bad_type"),
    "unknown type": (b"k", dumps(BASE | {"type": "purchase"}), "bad_type"),
    "numeric type": (b"k", dumps(BASE | {"type": 1}), "bad_type"),
    "track without event": (
        b"k",
        dumps({k: v for k, v in BASE.items() if k != "event"}),
        "missing_event",
    ),
    "numeric event": (b"k", dumps(BASE | {"event": 5}), "bad_field"),
    "string properties": (b"k", dumps(BASE | {"properties": "x"}), "bad_field"),
    "array context": (b"k", dumps(BASE | {"context": []}), "bad_field"),
    "numeric traits": (b"k", dumps(BASE | {"traits": 3}), "bad_field"),
    "object name": (b"k", dumps(BASE | {"name": {}}), "bad_field"),
    "unparseable timestamp": (b"k", dumps(BASE | {"timestamp": "last tuesday"}), "bad_timestamp"),
    "year 1900": (b"k", dumps(BASE | {"timestamp": "1900-01-01T00:00:00Z"}), "bad_timestamp"),
    "year 3000": (b"k", dumps(BASE | {"timestamp": "3000-01-01T00:00:00Z"}), "bad_timestamp"),
    "numeric timestamp": (b"k", dumps(BASE | {"timestamp": 1700000000}), "bad_timestamp"),
    "bad sentAt": (b"k", dumps(BASE | {"sentAt": "soon"}), "bad_timestamp"),
    "oversized": (b"k", dumps(BASE | {"properties": {"x": "y" * 40_000}}), "too_large"),
    "deeply nested": (b"k", b'{"messageId":"d","p":' + b"[" * 100 + b"]" * 100 + b"}", "too_deep"),
    "huge property map": (
        b"k",
        dumps(BASE | {"properties": {f"k{i}": i for i in range(1500)}}),
        "too_many_properties",
    ),
    "duplicate keys": (b"k", b'{"messageId":"a","type":"track","type":"page"}', "duplicate_keys"),
    "escaped NUL": (b"k", dumps(BASE | {"event": "nul\u0000here"}), "nul_byte"),
    "raw NUL byte": (b"k", b'{"messageId":"n","type":"track\x00"}', "not_json"),
}


def test_every_malformed_kind_is_dead_lettered_losslessly(broker, make_topic, warehouse) -> None:
    assert len(CORPUS) >= 30
    topic = make_topic(partitions=1)  # one partition: offsets give the order back
    messages: list[tuple[bytes | None, bytes | None, int | None]] = []
    expected: dict[int, tuple[str, bytes | None, bytes | None]] = {}
    good = 0
    for name, (key, value, code) in CORPUS.items():
        messages.append((b"g", dumps(_good(good)), None))
        good += 1
        expected[len(messages)] = (code, key, value)
        messages.append((key, value, None))
        del name
    settings = settings_for(broker.bootstrap, topic)
    produce(messages, settings, topic)

    result = ingest(settings, warehouse)
    assert (result.loaded, result.rejected) == (good, len(CORPUS))
    rows = {
        off: (code, key, payload, msg)
        for off, code, key, payload, msg in query(
            warehouse,
            "select _kafka_offset, error_code, key_bytes, payload, error_message "
            "from raw.tracking_events_rejected",
        )
    }
    assert set(rows) == set(expected)
    for offset, (code, key, value) in expected.items():
        got_code, got_key, got_payload, message = rows[offset]
        assert (got_code, got_key, got_payload) == (code, key, value), offset
        assert message
    loaded = {r[0] for r in query(warehouse, "select message_id from raw.tracking_events")}
    assert loaded == {f"good-{i}" for i in range(good)}


def test_schema_drift_keeps_loading(broker, make_topic, warehouse) -> None:
    topic = make_topic(partitions=1)
    settings = settings_for(broker.bootstrap, topic)
    batches = [
        [_good(0) | {"properties": {"price": 10}}],
        [_good(1) | {"properties": {"price": "ten", "new_key": True}}],  # type change + new key
        [_good(2) | {"context": {"brandNewField": {"x": 1}}, "traits": {"vip": True}}],
    ]
    for i, batch in enumerate(batches):
        produce([(b"k", dumps(e), None) for e in batch], settings, topic)
        assert ingest(settings, warehouse).loaded == 1, i
    props = dict(query(warehouse, "select message_id, properties from raw.tracking_events"))
    assert json.loads(props["good-1"]) == {"price": "ten", "new_key": True}
    assert json.loads(props["good-0"]) == {"price": 10}
    # and the models keep building on the drifted data
    dbt_build(warehouse)
    assert query(warehouse, "select count(*) from analytics.fct_sessions")[0][0] >= 1
