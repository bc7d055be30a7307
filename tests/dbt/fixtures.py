"""Hand-made rows of `raw.tracking_events` for edge cases the generator does not aim at."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from pipelines.events import ACCEPTED_COLUMNS, messages_table, validate

_offsets: dict[int, int] = {}


def raw_row(
    *,
    type: str = "track",
    at: datetime,
    anonymous_id: str | None = None,
    user_id: str | None = None,
    event: str | None = None,
    name: str | None = None,
    path: str | None = None,
    referrer: str | None = None,
    user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
    properties: dict[str, Any] | None = None,
    skew: timedelta = timedelta(0),
    delay: timedelta = timedelta(seconds=1),
    message_id: str | None = None,
    partition: int = 0,
    campaign: dict[str, str] | None = None,
    load_id: str = "load-1",
    previous_id: str | None = None,
) -> dict[str, Any]:
    """One raw row. `at` is the true (server) time; the device clock runs `skew` ahead."""
    device_ts = at + skew
    sent_at = device_ts + delay
    received_at = at + delay
    context: dict[str, Any] = {"userAgent": user_agent, "library": {"name": "fixture"}}
    if type == "page" or path is not None:
        url = f"https://shop.example.com{path or '/'}"
        context["page"] = {"url": url, "path": path or "/", "referrer": referrer}
    if type == "screen":
        context["app"] = {"name": "shop"}
        context["os"] = {"name": "iOS"}
    if campaign:
        context["campaign"] = campaign
    offset = _offsets.get(partition, 0)
    _offsets[partition] = offset + 1
    mid = message_id or str(uuid.uuid4())
    return {
        "_kafka_topic": "tracking.events",
        "_kafka_partition": partition,
        "_kafka_offset": offset,
        "_kafka_timestamp": received_at,
        "_kafka_key": anonymous_id or user_id,
        "message_id": mid,
        "type": type,
        "event": event,
        "name": name,
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "timestamp": device_ts,
        "sent_at": sent_at,
        "received_at": received_at,
        "context": json.dumps(context),
        "properties": json.dumps(properties or {}),
        "traits": "{}",
        # staging reads an alias call's previousId from the payload
        "payload": json.dumps({"previousId": previous_id} if previous_id else {}),
        "_dlt_load_id": load_id,
    }


def as_accepted(rows: list[dict]) -> pa.Table:
    """Rows of raw_row as the table ingestion lands."""
    schema = validate(messages_table([]))[0].schema  # the columns ingestion lands
    return pa.Table.from_pylist([{c: r[c] for c in ACCEPTED_COLUMNS} for r in rows], schema=schema)
