"""Cheap per-event checks at the door: a client learns at once which field of which event is wrong.

They run before stamping. The warehouse's own validator (`pipelines/events.py`, run by `rules.py`
on the stamped events) then decides what ingestion would refuse; a problem found here carries the
same error code (`pipelines/envelope.py`) that validator gives, or one of the collector's own for
what only the Segment spec asks (COLLECTOR_CODES).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pipelines.envelope import ENVELOPE_TYPES as EVENT_TYPES

OBJECT_FIELDS = ("context", "properties", "traits", "integrations")
TIME_FIELDS = ("timestamp", "sentAt", "originalTimestamp")

# refusals the warehouse has no code for: the request as a whole, and Segment's call rules
COLLECTOR_CODES: Final[dict[str, str]] = {
    "unauthorised": "the write key is missing or unknown",
    "bad_encoding": "a Content-Encoding other than gzip",
    "bad_gzip": "the body is not valid gzip",
    "bad_number": "a number a double cannot hold exactly (send it as a string)",
    "bad_batch": "batch is not a non-empty array, or the batch context is not an object",
    "too_many_events": "a batch holds more events than COLLECTOR_MAX_BATCH_EVENTS",
    "missing_group_id": "a group call has no groupId",
    "missing_previous_id": "an alias call has no previousId",
    "missing_user_id": "an alias call has no userId",
    "timeout": "the request did not arrive within the header or body timeout",
    "disconnected": "the client closed the connection before its body arrived",
    "too_many_connections": "more open connections than COLLECTOR_MAX_CONNECTIONS",
    "internal": "the collector failed; nothing of the request was stored",
}


@dataclass(frozen=True)
class Problem:
    index: int | None
    field: str
    message: str
    code: str = "bad_field"

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "field": self.field,
            "code": self.code,
            "message": self.message,
        }


def _is_id(value: Any) -> bool:
    # segment clients send ids as strings, some send integers (kept as their exact digits);
    # booleans and non-integer numbers are never ids
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value.strip() != ""
    return isinstance(value, int)


def _parses_as_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def validate_event(event: Any, index: int | None) -> list[Problem]:
    """Every problem with one event; an empty list means it may be stamped."""
    if not isinstance(event, dict):
        return [Problem(index, "", "event must be a JSON object", "not_object")]
    problems: list[Problem] = []

    def bad(field: str, message: str, code: str) -> None:
        problems.append(Problem(index, field, message, code))

    kind = event.get("type")
    if kind not in EVENT_TYPES:
        shown = repr(kind)[:80]  # a reply echoes no more of a value than it needs to
        bad("type", f"type must be one of {', '.join(EVENT_TYPES)}; got {shown}", "bad_type")
    if not (_is_id(event.get("anonymousId")) or _is_id(event.get("userId"))):
        bad(
            "anonymousId",
            "anonymousId or userId is required (non-empty string)",
            "missing_identity",
        )
    for name in ("anonymousId", "userId"):
        if event.get(name) is not None and not _is_id(event[name]):
            bad(name, f"{name} must be a non-empty string (or an integer)", "bad_identity")
    message_id = event.get("messageId")
    if message_id is not None and not (isinstance(message_id, str) and message_id.strip()):
        bad("messageId", "messageId must be a non-empty string when present", "bad_message_id")
    for name in TIME_FIELDS:
        if event.get(name) is not None and not _parses_as_time(event[name]):
            shown = repr(event[name])[:80]
            bad(name, f"{name} must be an ISO-8601 date-time string; got {shown}", "bad_timestamp")
    for name in OBJECT_FIELDS:
        if event.get(name) is not None and not isinstance(event[name], dict):
            bad(name, f"{name} must be a JSON object", "bad_field")

    if kind == "track" and not (isinstance(event.get("event"), str) and event["event"].strip()):
        bad("event", "a track call needs the event name as a non-empty string", "missing_event")
    if kind in ("page", "screen"):
        for name in ("name", "category"):
            if event.get(name) is not None and not isinstance(event[name], str):
                bad(name, f"{name} must be a string", "bad_field")
    if kind == "group" and not _is_id(event.get("groupId")):
        bad("groupId", "a group call needs groupId", "missing_group_id")
    if kind == "alias":
        if not _is_id(event.get("previousId")):
            bad("previousId", "an alias call needs previousId", "missing_previous_id")
        if not _is_id(event.get("userId")):
            bad("userId", "an alias call needs userId", "missing_user_id")
    return problems
