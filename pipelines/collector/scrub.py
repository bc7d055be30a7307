"""A write key never travels past the door, wherever a client puts it.

Removed from every event before Kafka: members named `writeKey` at any depth (the batch context,
the event's context, properties, traits...), and any member name, member value or array item equal
to the request's write key. Checking the serialised event for either is cheap; the walk that
removes them runs only for events that hold one.
"""

from __future__ import annotations

from typing import Any

from pipelines.collector.codec import dumps

WRITE_KEY_FIELD = "writeKey"


def credential_marks(write_key: str) -> tuple[bytes, bytes]:
    """What a serialised event holding a credential contains: either JSON string, verbatim.

    Both of the collector's serialisers escape a string the same way, so a string equal to the
    key always appears as this token (a token inside a longer string only costs a walk).
    """
    return dumps(WRITE_KEY_FIELD), dumps(write_key)


def holds_credential(value: bytes, marks: tuple[bytes, bytes]) -> bool:
    return marks[0] in value or marks[1] in value


def without_credentials(value: Any, write_key: str) -> Any:
    """`value` (parsed JSON, depth already bounded) with every trace of the credential removed."""
    if isinstance(value, dict):
        return {
            name: without_credentials(member, write_key)
            for name, member in value.items()
            if name not in (WRITE_KEY_FIELD, write_key) and member != write_key
        }
    if isinstance(value, list):
        return [without_credentials(item, write_key) for item in value if item != write_key]
    return value
