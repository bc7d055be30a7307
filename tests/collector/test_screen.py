"""The screen never vouches for an event the warehouse's validator refuses, and it accounts for
every rule the validator has: the collector's fast path cannot drift from ingestion's rule."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pipelines.collector.codec import dumps
from pipelines.collector.screen import VOUCHED_CODES, vouched
from pipelines.envelope import ERROR_CODES, MAX_ID_LENGTH, MAX_PROPERTY_KEYS
from tests.collector.helpers import warehouse_verdict

pytestmark = pytest.mark.timeout(60)

RECEIVED = "2026-03-01T10:00:00.123Z"


def verdicts(events: list[dict[str, Any]]) -> list[str | None]:
    """The validator's code for each event as the collector serialises it (None: accepted)."""
    return warehouse_verdict([dumps(e) for e in events])


def test_every_code_of_the_validator_is_accounted_for() -> None:
    # a new rule in the warehouse fails here until the screen says how it rules it out
    assert set(VOUCHED_CODES) == set(ERROR_CODES)


def base() -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": "anon-1",
        "messageId": "m-1",
        "receivedAt": RECEIVED,
        "context": {"ip": "192.0.2.0", "library": {"name": "trackflow.js"}},
    }


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# each a field and values on both sides of the validator's limits
VARIANTS: dict[str, list[Any]] = {
    "type": ["track", "page", "identify", "alias", "button_click", 5, None, "Track"],
    "event": ["x", "", None, 7, {"a": 1}, " ", "a\u0000b"],
    "name": [None, "Home", 3, ["a"]],
    "messageId": [
        "m",
        "",
        None,
        "é" * MAX_ID_LENGTH,
        "m" * MAX_ID_LENGTH,
        "m" * (MAX_ID_LENGTH + 1),
        "\U0001f600" * (MAX_ID_LENGTH // 4),
        "\U0001f600" * (MAX_ID_LENGTH // 4 + 1),
        "e\u0301" * (MAX_ID_LENGTH // 2),
    ],
    "anonymousId": [
        "a",
        "",
        None,
        "a" * MAX_ID_LENGTH,
        "a" * (MAX_ID_LENGTH + 1),
        "ü" * (MAX_ID_LENGTH // 2 + 1),
        "\u0000",
        "a\\u0000",
    ],
    "userId": [None, "u", "", "u" * (MAX_ID_LENGTH + 1)],
    "timestamp": [
        None,
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:00:00.5Z",
        "2026-03-01T10:00:00.123456+02:00",
        "2026-03-01T10:00:00.1234567Z",
        "2026-03-01 10:00:00",
        "2026-03-01",
        "2026-02-30T10:00:00Z",
        "2026-03-01T24:00:00Z",
        "1999-12-31T23:59:59Z",
        "2000-01-01T00:30:00+01:00",
        "2099-12-31T23:59:59Z",
        "2099-12-31T23:30:00-01:00",
        "2100-01-01T00:00:00Z",
        "soon",
        12,
    ],
    "sentAt": [None, "2026-03-01T10:00:00.100Z", "garbage", "1970-01-01T00:00:00Z"],
    "properties": [
        None,
        {},
        {"revenue": 12.5, "path": "/p"},
        {f"p{i}": i for i in range(MAX_PROPERTY_KEYS)},
        {f"p{i}": i for i in range(MAX_PROPERTY_KEYS + 1)},
        {"deep": nested(29)},
        {"deep": nested(30)},
        {"deep": nested(31)},
        {"brackets": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["},
        {"nul": "\u0000"},
        {"big": 10**40},
        [1, 2],
        "text",
    ],
    "traits": [None, {"email": "a@example.com"}, [], "x"],
    "context": [{"ip": "192.0.2.0"}, {"page": {"path": "/"}}, "web"],
}


def corpus(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    # every value of every field once, on an otherwise plain event
    for field, values in VARIANTS.items():
        for value in values:
            event = base()
            if value is None:
                event.pop(field, None)
            else:
                event[field] = value
            events.append(event)
    # and random combinations of two to four fields
    for _ in range(n):
        event = base()
        for field in rng.sample(sorted(VARIANTS), rng.randint(2, 4)):
            value = rng.choice(VARIANTS[field])
            if value is None:
                event.pop(field, None)
            else:
                event[field] = value
        events.append(event)
    return events


def test_nothing_vouched_for_is_refused_by_the_validator() -> None:
    events = corpus(3000, seed=19)
    said = verdicts(events)
    wrong = [
        (e, code) for e, code in zip(events, said, strict=True) if code and vouched(e, dumps(e))
    ]
    assert wrong == [], wrong[:3]
    # and it is worth having: it vouches for most of what the validator takes
    accepted = [e for e, code in zip(events, said, strict=True) if code is None]
    vouched_for = [e for e in accepted if vouched(e, dumps(e))]
    assert len(vouched_for) > 0.5 * len(accepted), (len(vouched_for), len(accepted))


def test_what_trackers_send_is_vouched_for() -> None:
    tracker = {
        **base(),
        "timestamp": "2026-03-01T10:00:00.000Z",
        "sentAt": "2026-03-01T10:00:00.412Z",
        "properties": {"buttonId": "myButton", "price": 12.5, "items": [{"sku": "a"}]},
        "context": {
            "page": {"path": "/pricing", "url": "https://shop.example/pricing"},
            "library": {"name": "trackflow.js", "version": "1.0.0"},
            "campaign": {"source": "newsletter"},
            "ip": "192.0.2.0",
            "userAgent": "Mozilla/5.0",
        },
    }
    python_client = {
        **base(),
        "type": "identify",
        "userId": "user-1",
        "traits": {"email": "ada@example.com"},
        "timestamp": "2026-03-01T10:00:00.123456+00:00",
        "sentAt": "2026-03-01T10:00:00.223456+00:00",
    }
    page = {**base(), "type": "page", "name": "Docs", "event": None}
    for event in (tracker, python_client, page):
        assert vouched(event, dumps(event)), event
    assert verdicts([tracker, python_client, page]) == [None, None, None]
