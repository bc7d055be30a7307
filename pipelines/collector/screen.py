"""Which stamped events the warehouse's validator surely accepts, so that it need not be asked.

The validator (`pipelines.events.validate`, run by `rules.py`) is the one rule for what ingestion
takes, and every code a refusal carries comes from it or from the door's checks. But one run costs
about 12 ms of planning however few events it holds, which on the collector's benchmark halved the
events per second. So it is asked only about events this screen cannot vouch for: an event is
vouched for when each thing the validator checks is plainly within its limits (the same constants,
from `pipelines/envelope.py`), judged conservatively; anything less plain (a 17-digit fraction of a
second, an id of 300 bytes, 40 brackets, a NUL) goes to the validator, which decides and names it.

VOUCHED_CODES says how each of the validator's codes is ruled out. tests/collector/test_screen.py
fails when the warehouse gains a code this does not account for, and checks against the validator
itself that nothing vouched for here is refused there.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any, Final

from pipelines.envelope import (
    ENVELOPE_TYPES,
    MAX_DEPTH,
    MAX_ID_LENGTH,
    MAX_PROPERTY_KEYS,
    MAX_YEAR,
    MIN_YEAR,
)

# error code -> why a vouched-for event cannot have it
VOUCHED_CODES: Final[dict[str, str]] = {
    "null_value": "the collector always writes a value",
    "too_large": "the size is checked at the door (413) with the same limit",
    "bad_key": "the key is a Python string encoded as UTF-8",
    "not_utf8": "the value is a Python object serialised as UTF-8 JSON",
    "not_json": "ditto",
    "not_object": "the value is a JSON object",
    "too_deep": f"at most {MAX_DEPTH} brackets in the serialised event",
    "duplicate_keys": "a Python dict has no duplicate keys",
    "nul_byte": "neither a NUL byte nor the \\u0000 escape in the serialised event",
    "bad_type": "type is one of the envelope's types",
    "missing_message_id": "messageId is a non-empty string",
    "bad_message_id": f"messageId is at most {MAX_ID_LENGTH} bytes of UTF-8",
    "bad_identity": f"anonymousId/userId are absent or strings of at most {MAX_ID_LENGTH} bytes",
    "missing_identity": "anonymousId or userId is a non-empty string",
    "missing_event": "a track call has a non-empty event name",
    "bad_field": "event/name are absent or strings, context/properties/traits absent or objects",
    "bad_timestamp": "timestamps are absent or in the plain form below, within the years, in UTC",
    "too_many_properties": f"properties has at most {MAX_PROPERTY_KEYS} keys",
}

# the form every tracker writes (toISOString and the like); other forms DuckDB may also read go
# to the validator, which knows exactly
PLAIN_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")
TIME_FIELDS = ("timestamp", "sentAt", "receivedAt")


def _short_id(value: Any) -> bool:
    # bytes bound characters, however the validator counts them (a character is at most 4 bytes)
    if not isinstance(value, str):
        return False
    return len(value) <= MAX_ID_LENGTH // 4 or len(value.encode("utf-8")) <= MAX_ID_LENGTH


@functools.lru_cache(maxsize=4096)
def _plain_time_text(value: str) -> bool:
    # cached: the events of a request share receivedAt, and usually sentAt
    if not PLAIN_TIME.fullmatch(value):
        return False
    try:
        moment = datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:  # 2026-02-30, 24:00...
        return False
    return MIN_YEAR <= moment.year < MAX_YEAR


def vouched(event: dict[str, Any], value: bytes) -> bool:
    """True only when the warehouse's validator surely accepts `value`, the serialised `event`;
    False means: ask it. (Straight-line code: it runs for every event.)"""
    if b"\x00" in value or b"\\u0000" in value:
        return False
    if value.count(b"{") + value.count(b"[") > MAX_DEPTH:
        return False
    get = event.get
    kind = get("type")
    if not (isinstance(kind, str) and kind in ENVELOPE_TYPES):
        return False
    message_id = get("messageId")
    if not (message_id and _short_id(message_id)):
        return False
    anonymous_id, user_id = get("anonymousId"), get("userId")
    if not (anonymous_id or user_id):
        return False
    if anonymous_id is not None and not _short_id(anonymous_id):
        return False
    if user_id is not None and not _short_id(user_id):
        return False
    name = get("event")
    if name is None:
        if kind == "track":
            return False
    elif not (isinstance(name, str) and (name or kind != "track")):
        return False
    if not isinstance(get("name"), str | None):
        return False
    for field in ("context", "properties", "traits"):
        if not isinstance(get(field), dict | None):
            return False
    for field in TIME_FIELDS:
        moment = get(field)
        if moment is not None and not (isinstance(moment, str) and _plain_time_text(moment)):
            return False
    properties = get("properties")
    return properties is None or len(properties) <= MAX_PROPERTY_KEYS
