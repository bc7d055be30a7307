"""Cheap per-event checks at the door, so a client learns at once what is wrong with a call.

The warehouse's batch validator (`pipelines/events.py`) stays the authority on what lands in raw
versus dead letters; this only refuses what no reading of the Segment spec could accept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pipelines.envelope import ENVELOPE_TYPES as EVENT_TYPES

OBJECT_FIELDS = ("context", "properties", "traits", "integrations")
TIME_FIELDS = ("timestamp", "sentAt", "originalTimestamp")


@dataclass(frozen=True)
class Problem:
    index: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_id(value: Any) -> bool:
    # segment clients send ids as strings, some send numbers; booleans are never ids
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value.strip() != ""
    return isinstance(value, int | float)


def _parses_as_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def validate_event(event: Any, index: int | None) -> list[Problem]:
    """Every problem with one event; an empty list means it may be produced."""
    if not isinstance(event, dict):
        return [Problem(index, "", "event must be a JSON object")]
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append(Problem(index, field, message))

    kind = event.get("type")
    if kind not in EVENT_TYPES:
        bad("type", f"type must be one of {', '.join(EVENT_TYPES)}; got {kind!r}")
    if not (_is_id(event.get("anonymousId")) or _is_id(event.get("userId"))):
        bad("anonymousId", "anonymousId or userId is required (non-empty string)")
    for name in ("anonymousId", "userId"):
        if event.get(name) is not None and not _is_id(event[name]):
            bad(name, f"{name} must be a non-empty string")
    message_id = event.get("messageId")
    if message_id is not None and not (isinstance(message_id, str) and message_id.strip()):
        bad("messageId", "messageId must be a non-empty string when present")
    for name in TIME_FIELDS:
        if event.get(name) is not None and not _parses_as_time(event[name]):
            bad(name, f"{name} must be an ISO-8601 date-time string; got {event[name]!r}")
    for name in OBJECT_FIELDS:
        if event.get(name) is not None and not isinstance(event[name], dict):
            bad(name, f"{name} must be a JSON object")

    if kind == "track" and not (isinstance(event.get("event"), str) and event["event"].strip()):
        bad("event", "a track call needs the event name as a non-empty string")
    if kind in ("page", "screen"):
        for name in ("name", "category"):
            if event.get(name) is not None and not isinstance(event[name], str):
                bad(name, f"{name} must be a string")
    if kind == "group" and not _is_id(event.get("groupId")):
        bad("groupId", "a group call needs groupId")
    if kind == "alias":
        if not _is_id(event.get("previousId")):
            bad("previousId", "an alias call needs previousId")
        if not _is_id(event.get("userId")):
            bad("userId", "an alias call needs userId")
    return problems
