"""Raw fixtures for the dbt tests: rows of `raw.tracking_events` written straight into DuckDB."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.tracking_events (
    _kafka_topic varchar,
    _kafka_partition integer,
    _kafka_offset bigint,
    _kafka_timestamp timestamptz,
    _kafka_key varchar,
    message_id varchar not null,
    type varchar,
    event varchar,
    name varchar,
    anonymous_id varchar,
    user_id varchar,
    timestamp timestamptz not null,
    sent_at timestamptz,
    received_at timestamptz not null,
    context varchar,
    properties varchar,
    traits varchar,
    payload varchar,
    _dlt_load_id varchar
);
"""

COLUMNS = [
    "_kafka_topic",
    "_kafka_partition",
    "_kafka_offset",
    "_kafka_timestamp",
    "_kafka_key",
    "message_id",
    "type",
    "event",
    "name",
    "anonymous_id",
    "user_id",
    "timestamp",
    "sent_at",
    "received_at",
    "context",
    "properties",
    "traits",
    "payload",
    "_dlt_load_id",
]

UTC = timezone.utc
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
        "payload": "{}",
        "_dlt_load_id": load_id,
    }


def write_raw(db_path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows to raw.tracking_events (created if missing)."""
    con = duckdb.connect(str(db_path))
    try:
        con.execute("set TimeZone='UTC'")
        con.execute(RAW_DDL)
        if rows:
            placeholders = ", ".join("?" for _ in COLUMNS)
            con.executemany(
                f"insert into raw.tracking_events ({', '.join(COLUMNS)}) values ({placeholders})",
                [[r[c] for c in COLUMNS] for r in rows],
            )
    finally:
        con.close()


@dataclass
class Synthetic:
    """A small multi-day clickstream with its own ground truth (same rules as the marts)."""

    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    sessions: int = 0
    checkout: dict[str, int] = field(default_factory=dict)


CHECKOUT = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed"]


def synthetic(days: int = 3, visitors: int = 40, seed: int = 7, start: date | None = None) -> Synthetic:
    """Visitors with well separated sessions (>= 2 h apart), duplicates, skew and late events.

    Returned in `batches`: batch i holds what arrives by the end of day i; late events of day d
    arrive in batch d + 2 (so a re-run of day d is needed to place them).
    """
    rnd = random.Random(seed)
    start = start or date(2024, 3, 1)
    out = Synthetic(batches=[[] for _ in range(days + 2)])
    out.checkout = dict.fromkeys(CHECKOUT, 0)
    for v in range(visitors):
        anon = f"anon-{v}"
        user = f"user-{v}" if v % 3 == 0 else None
        skew = timedelta(minutes=rnd.choice([0, 0, 0, 7, -90]))
        for d in range(days):
            day0 = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=d)
            n_sessions = rnd.randint(0, 3)
            for s in range(n_sessions):
                t = day0 + timedelta(hours=1 + 6 * s, minutes=rnd.randint(0, 50))
                out.sessions += 1
                steps = rnd.randint(0, 4)
                late_index = rnd.randint(1, 6) if rnd.random() < 0.2 else None
                events: list[dict[str, Any]] = []
                events.append(raw_row(type="page", at=t, anonymous_id=anon, path="/",
                                      referrer="https://www.google.com/", skew=skew))
                if user and s == 0 and d == 0:
                    t += timedelta(minutes=rnd.randint(1, 20))
                    events.append(raw_row(type="identify", at=t, anonymous_id=anon,
                                          user_id=user, skew=skew))
                for i in range(steps):
                    t += timedelta(minutes=rnd.randint(1, 10))
                    out.checkout[CHECKOUT[i]] += 1
                    events.append(raw_row(at=t, anonymous_id=anon, event=CHECKOUT[i], skew=skew,
                                          user_id=user if (user and d > 0) else None))
                for _ in range(rnd.randint(0, 3)):
                    t += timedelta(minutes=rnd.randint(1, 29))
                    events.append(raw_row(type="page", at=t, anonymous_id=anon, path="/blog",
                                          referrer="https://shop.example.com/", skew=skew))
                for i, ev in enumerate(events):
                    batch = d
                    if late_index is not None and i == late_index % len(events) and i > 0:
                        batch = d + 2
                    out.batches[batch].append(ev)
                    if rnd.random() < 0.1:  # at-least-once redelivery
                        dup = dict(ev)
                        dup["_kafka_offset"] = ev["_kafka_offset"] + 100000
                        dup["received_at"] = ev["received_at"] + timedelta(seconds=30)
                        out.batches[min(batch + 1, days + 1)].append(dup)
        # a bot that must not count
    for d in range(days):
        day0 = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=d)
        out.batches[d].append(raw_row(type="page", at=day0 + timedelta(hours=3), anonymous_id="bot-1",
                                      path="/", user_agent="Googlebot/2.1"))
    return out
