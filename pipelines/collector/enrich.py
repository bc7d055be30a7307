"""What the collector adds to each event before it goes to Kafka: receipt time, ids, ip, agent."""

from __future__ import annotations

import functools
import ipaddress
import uuid
from datetime import UTC, datetime
from typing import Any

from pipelines.collector.settings import IpMode


def utc_now_iso() -> str:
    """UTC ISO-8601 with milliseconds and Z, the envelope's format for receivedAt."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def truncate_ip(raw: str) -> str | None:
    """Zero the last octet of IPv4 and the last 80 bits of IPv6; None if it is not an address."""
    try:
        ip = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def _record_ip(context: dict[str, Any], client_ip: str | None, mode: IpMode) -> None:
    # an ip sent by a server-side client (the end user's) wins over the connection's address
    given = context.get("ip")
    raw = given if isinstance(given, str) and given.strip() else client_ip
    context.pop("ip", None)
    if mode == "none" or not raw:
        return
    recorded = _full_ip(raw) if mode == "full" else truncate_ip(raw)
    if recorded:
        context["ip"] = recorded


@functools.lru_cache(maxsize=4096)
def _full_ip(raw: str) -> str | None:
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


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
        if isinstance(value, int | float) and not isinstance(value, bool):
            event[name] = str(value)
    context = dict(batch_context or {})
    context.update(event.get("context") or {})
    _record_ip(context, client_ip, ip_mode)
    if user_agent and not context.get("userAgent"):
        context["userAgent"] = user_agent
    event["context"] = context
    return event


def partition_key(event: dict[str, Any]) -> bytes:
    """anonymousId (else userId): one visitor's events keep their order in one partition."""
    key = event.get("anonymousId") or event.get("userId")
    return str(key).encode("utf-8")
