"""The event envelope v1: its types, limits and the error codes of what is refused. Imports nothing.

Both doors check against this: the warehouse's batch validator (`pipelines/events.py`) and the
collector (`pipelines/collector/validation.py`), so a refusal has the same code at either.
Envelope (Segment tracking spec compatible): messageId, type, event, name, anonymousId, userId,
timestamp, sentAt, receivedAt, context, properties, traits. The original sketch's shape
`{"type": "button_click", "timestamp": ..., "details": {...}}` is a track event named by `type`,
with `details` as properties.
"""

from __future__ import annotations

from typing import Final

ENVELOPE_TYPES: Final = ("track", "page", "screen", "identify", "group", "alias")

MAX_DEPTH: Final = 32
MAX_PROPERTY_KEYS: Final = 1000
MAX_ID_LENGTH: Final = 256
MIN_YEAR: Final = 2000
MAX_YEAR: Final = 2100

# stable error codes (the dead-letter table's `error_code`), in the order they are checked
ERROR_CODES: Final[dict[str, str]] = {
    "null_value": "the Kafka message has no value (tombstone)",
    "too_large": "the message is larger than TRACKFLOW_MAX_EVENT_BYTES",
    "bad_key": "the Kafka message key is not valid UTF-8",
    "not_utf8": "the message value is not valid UTF-8",
    "not_json": "the message value is not valid JSON",
    "not_object": "the message is valid JSON but not an object",
    "too_deep": f"the message nests objects/arrays deeper than {MAX_DEPTH} levels",
    "duplicate_keys": "a key appears twice in the same JSON object",
    "nul_byte": "the message contains a NUL character",
    "bad_type": "type is missing or not one of " + "|".join(ENVELOPE_TYPES),
    "missing_message_id": "messageId is missing or empty",
    "bad_message_id": f"messageId is not a string of at most {MAX_ID_LENGTH} characters",
    "bad_identity": f"anonymousId/userId is not a string of at most {MAX_ID_LENGTH} characters",
    "missing_identity": "neither anonymousId nor userId is set",
    "missing_event": "a track call has no event name",
    "bad_field": "a field has the wrong JSON type",
    "bad_timestamp": f"a timestamp is not ISO-8601 or lies outside {MIN_YEAR}..{MAX_YEAR}",
    "too_many_properties": f"properties has more than {MAX_PROPERTY_KEYS} keys",
}
