"""What the collector adds to each event before it goes to Kafka: receipt time, ids, ip, agent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pipelines.ip import IpMode, apply_ip_rule, replace_values


def utc_now_iso() -> str:
    """UTC ISO-8601 with milliseconds and Z, the envelope's format for receivedAt."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record_ip(context: dict[str, Any], client_ip: str | None, mode: IpMode) -> str | None:
    """Set context.ip by the rule; returns the address the event itself carried, if any."""
    # an ip sent by a server-side client (the end user's) wins over the connection's address
    given = context.get("ip")
    raw = given if isinstance(given, str) and given.strip() else client_ip
    context.pop("ip", None)
    recorded = apply_ip_rule(raw, mode)  # pipelines/ip.py: the rule ingestion applies too
    if recorded:
        context["ip"] = recorded
    return given if isinstance(given, str) and given != recorded else None


def enrich(
    event: dict[str, Any],
    *,
    received_at: str,
    client_ip: str | None,
    user_agent: str | None,
    ip_mode: IpMode,
    batch_context: dict[str, Any] | None = None,
    batch_sent_at: str | None = None,
) -> dict[str, Any]:
    """Stamp one validated event in place and return it."""
    # a write key is a credential; it never travels further than the door
    event.pop("writeKey", None)
    event["receivedAt"] = received_at
    if not event.get("messageId"):
        event["messageId"] = str(uuid.uuid4())
    if batch_sent_at and not event.get("sentAt"):
        event["sentAt"] = batch_sent_at
    for name in ("anonymousId", "userId", "groupId", "previousId"):
        value = event.get(name)
        # an integer id is kept as its exact digits (the door refuses other numbers as ids)
        if isinstance(value, int) and not isinstance(value, bool):
            event[name] = str(value)
    context = dict(batch_context or {})
    context.update(event.get("context") or {})
    carried = _record_ip(context, client_ip, ip_mode)
    if carried is not None:
        # the address is the same personal datum wherever else the event repeats it
        # (ingestion rewrites it the same way for producers that skip the collector)
        for name in ("properties", "traits"):
            if isinstance(event.get(name), dict):
                event[name] = replace_values(event[name], carried, context.get("ip"))
        context = replace_values(context, carried, context.get("ip"))
    if user_agent and not context.get("userAgent"):
        context["userAgent"] = user_agent
    event["context"] = context
    return event


def partition_key(event: dict[str, Any]) -> bytes:
    """anonymousId (else userId): one visitor's events keep their order in one partition."""
    key = event.get("anonymousId") or event.get("userId")
    return str(key).encode("utf-8")
