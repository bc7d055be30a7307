"""Every error code of the envelope validator, and what accepted rows look like."""

from __future__ import annotations

import json

import pytest

from pipelines.config import DEFAULT_MAX_EVENT_BYTES as MAX_MESSAGE_BYTES
from pipelines.envelope import ERROR_CODES
from pipelines.events import dumps, messages_table, validate

GOOD = {
    "messageId": "m-1",
    "type": "track",
    "event": "Product Viewed",
    "anonymousId": "anon-1",
    "timestamp": "2026-05-01T10:00:00.000Z",
    "sentAt": "2026-05-01T10:00:05.000Z",
    "context": {"page": {"path": "/p"}},
    "properties": {"sku": "a"},
}

CASES: list[tuple[str, bytes | None, bytes | None]] = [
    ("null_value", b"k", None),
    ("too_large", b"k", dumps({**GOOD, "properties": {"blob": "x" * MAX_MESSAGE_BYTES}})),
    ("bad_key", b"\xff\xfe", dumps(GOOD)),
    ("not_utf8", b"k", b'{"messageId": "\xff"}'),
    ("not_json", b"k", b"{not json"),
    ("not_object", b"k", b'"just a string"'),
    ("too_deep", b"k", b'{"a":' * 40 + b"1" + b"}" * 40),
    ("duplicate_keys", b"k", b'{"messageId":"a","messageId":"b","type":"track"}'),
    ("nul_byte", b"k", dumps({**GOOD, "event": "a\u0000b"})),
    ("bad_type", b"k", dumps({**GOOD, "type": "purchase"})),
    ("missing_message_id", b"k", dumps({**GOOD, "messageId": ""})),
    ("bad_message_id", b"k", dumps({**GOOD, "messageId": 12345})),
    ("bad_identity", b"k", dumps({**GOOD, "anonymousId": {"id": 1}})),
    ("missing_identity", b"k", dumps({k: v for k, v in GOOD.items() if k != "anonymousId"})),
    ("missing_event", b"k", dumps({k: v for k, v in GOOD.items() if k != "event"})),
    ("bad_field", b"k", dumps({**GOOD, "context": [1, 2]})),
    ("bad_timestamp", b"k", dumps({**GOOD, "timestamp": "3000-01-01T00:00:00Z"})),
    ("too_many_properties", b"k", dumps({**GOOD, "properties": {f"p{i}": i for i in range(1001)}})),
]


def _run(rows: list[tuple[bytes | None, bytes | None]]):
    return validate(
        messages_table([("t", 0, i, 1_700_000_000_000, k, v) for i, (k, v) in enumerate(rows)])
    )


def test_every_error_code_is_exercised() -> None:
    assert {code for code, _, _ in CASES} == set(ERROR_CODES)


@pytest.mark.parametrize(("code", "key", "value"), CASES, ids=[c[0] for c in CASES])
def test_rejection_code_message_and_original_bytes(code, key, value) -> None:
    accepted, rejected = _run([(b"ok", dumps(GOOD)), (key, value)])
    assert accepted.num_rows == 1
    row = rejected.to_pylist()[0]
    assert row["error_code"] == code
    assert row["error_message"]  # a human sentence, not the code again
    assert row["error_message"] != code
    assert row["payload"] == value  # lossless
    assert row["key_bytes"] == key
    assert row["_kafka_offset"] == 1


def test_accepted_row_is_typed() -> None:
    accepted, rejected = _run([(b"anon-1", dumps({**GOOD, "userId": "u-9"}))])
    assert rejected.num_rows == 0
    row = accepted.to_pylist()[0]
    assert row["message_id"] == "m-1"
    assert (row["type"], row["event"], row["anonymous_id"], row["user_id"]) == (
        "track",
        "Product Viewed",
        "anon-1",
        "u-9",
    )
    assert row["timestamp"].isoformat() == "2026-05-01T10:00:00+00:00"
    assert row["sent_at"].isoformat() == "2026-05-01T10:00:05+00:00"
    # no receivedAt from a collector: the Kafka timestamp stands in
    assert row["received_at"].timestamp() == 1_700_000_000
    assert json.loads(row["properties"]) == {"sku": "a"}
    assert json.loads(row["payload"])["messageId"] == "m-1"


def test_missing_timestamp_defaults_to_received_at() -> None:
    body = {k: v for k, v in GOOD.items() if k not in ("timestamp", "sentAt")}
    body["receivedAt"] = "2026-05-02T00:00:00Z"
    row = _run([(b"k", dumps(body))])[0].to_pylist()[0]
    assert row["timestamp"] == row["received_at"]
    assert row["timestamp"].isoformat() == "2026-05-02T00:00:00+00:00"


def test_original_sketch_shape_is_a_track_event() -> None:
    legacy = dumps(
        {
            "type": "button_click",
            "timestamp": "2026-03-01T12:00:00Z",
            "details": {"buttonId": "myButton"},
        }
    )
    accepted, rejected = _run([(b"visitor-7", legacy), (b"visitor-7", legacy)])
    assert rejected.num_rows == 0
    a, b = accepted.to_pylist()
    assert (a["type"], a["event"], a["anonymous_id"]) == ("track", "button_click", "visitor-7")
    assert json.loads(a["properties"]) == {"buttonId": "myButton"}
    # the same bytes delivered twice get the same derived messageId: staging dedups them
    assert a["message_id"] == b["message_id"]
    assert a["message_id"].startswith("legacy-")


def test_a_bad_type_with_envelope_fields_is_not_mistaken_for_the_sketch_shape() -> None:
    _, rejected = _run([(b"k", dumps({**GOOD, "type": "button_click"}))])
    assert rejected.to_pylist()[0]["error_code"] == "bad_type"
