"""Check a micro-batch of accepted events against the tracking plan.

The hot path: events are grouped by (type, name) so each group meets its compiled validators
once, only the parts the plan declares are parsed, and identical parts within a group (the same
`properties` text, common in real traffic) are validated once. Under `flag` every event is kept
and each violation becomes a row of raw.tracking_plan_violations; under `block` an event that
breaks its plan goes to the dead letters as `plan_violation` instead (its violations are still
recorded, action `blocked`). An event the plan does not list is at most flagged, never blocked.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.tracking_plan.describe import location, sentence, unplanned_sentence
from pipelines.tracking_plan.plan import SECTIONS, PlannedEvent, TrackingPlan

PLAN_VIOLATION: Final = "plan_violation"  # the dead letters' error_code of a blocked event
# enough to see what is wrong with an event; a payload breaking hundreds of rules adds nothing
MAX_VIOLATIONS_PER_EVENT: Final = 20

Mode = Literal["flag", "block"]

VIOLATIONS_SCHEMA: Final = pa.schema(
    [
        ("message_id", pa.string()),
        ("type", pa.string()),
        ("event", pa.string()),  # the track event's name, or the page / screen name
        ("rule", pa.string()),  # the JSON Schema keyword that failed, or `unplanned`
        ("schema_path", pa.string()),  # where in the plan: events/<name>/properties/...
        ("field", pa.string()),  # where in the event: properties.total
        ("message", pa.string()),
        ("plan_version", pa.string()),
        ("action", pa.string()),  # kept | blocked
        ("timestamp", pa.timestamp("us", tz="UTC")),  # the event's time, for daily rates
        ("detected_at", pa.timestamp("us", tz="UTC")),
        ("_kafka_topic", pa.string()),
        ("_kafka_partition", pa.int32()),
        ("_kafka_offset", pa.int64()),
    ]
)

_SECTION_OF: Final = {kind: section for section, kind in SECTIONS.items()}
_CHECKED_TYPES: Final = frozenset(SECTIONS.values())

# (rule, schema path, field, sentence) of one violation
Finding = tuple[str, str, str, str]


@dataclass(frozen=True)
class PlanOutcome:
    kept: pa.Table  # accepted events that stay accepted
    blocked: pa.Table  # dead-letter rows (the rejected table's columns), `block` mode only
    violations: pa.Table  # VIOLATIONS_SCHEMA

    @property
    def violating_events(self) -> int:
        return len(set(self.violations.column("message_id").to_pylist()))


def _findings(entry: PlannedEvent, parts: dict[str, Any]) -> list[Finding]:
    found: list[Finding] = []
    for part, validator in entry.validators:
        instance = parts.get(part)
        for error in validator.iter_errors({} if instance is None else instance):
            schema_path = "/".join(
                [_SECTION_OF[entry.kind], entry.name, part, *map(str, error.schema_path)]
            )
            found.append(
                (str(error.validator), schema_path, location(part, error), sentence(part, error))
            )
            if len(found) >= MAX_VIOLATIONS_PER_EVENT:
                return found
    return found


def check_event(event: dict[str, Any], plan: TrackingPlan) -> tuple[bool, list[Finding]]:
    """One envelope (a dict) against the plan: (is it planned, its violations). The collector's
    check; ingestion checks batches with `check_batch`."""
    kind = event.get("type")
    if kind not in _CHECKED_TYPES:
        return False, []
    name = event.get("event") if kind == "track" else event.get("name")
    entry = plan.lookup(str(kind), name if isinstance(name, str) else None)
    if entry is None:
        if plan.flags_unplanned(str(kind)):
            return False, [
                ("unplanned", _SECTION_OF[str(kind)], "", unplanned_sentence(str(kind), name))
            ]
        return False, []
    return True, _findings(entry, {part: event.get(part) for part, _ in entry.validators})


def _group(accepted: pa.Table) -> dict[tuple[str, str], list[int]]:
    kinds = accepted.column("type").to_pylist()
    events = accepted.column("event").to_pylist()
    names = accepted.column("name").to_pylist()
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, kind in enumerate(kinds):
        if kind in _CHECKED_TYPES:
            groups[(kind, (events[i] if kind == "track" else names[i]) or "")].append(i)
    return groups


def check_batch(accepted: pa.Table, plan: TrackingPlan, mode: Mode) -> PlanOutcome:
    """Split accepted events (pipelines.events.ACCEPTED_COLUMNS) by the plan; see the module."""
    rows: list[tuple[int, Finding, str]] = []  # (row index, finding, action)
    blocked: list[int] = []
    for (kind, name), indexes in _group(accepted).items():
        entry = plan.lookup(kind, name)
        if entry is None:
            if plan.flags_unplanned(kind):
                finding = ("unplanned", _SECTION_OF[kind], "", unplanned_sentence(kind, name))
                # an unplanned call is flagged, never blocked: the plan says nothing of it
                rows.extend((i, finding, "kept") for i in indexes)
            continue
        parts = [part for part, _ in entry.validators]
        columns = {part: accepted.column(part).take(indexes).to_pylist() for part in parts}
        seen: dict[tuple[str | None, ...], list[Finding]] = {}
        for pos, i in enumerate(indexes):
            texts = {part: columns[part][pos] for part in parts}
            key = tuple(texts.values())
            findings = seen.get(key)
            if findings is None:
                # Segment: a missing part is an empty object
                parsed = {part: orjson.loads(text) for part, text in texts.items() if text}
                findings = seen[key] = _findings(entry, parsed)
            if findings:
                action = "blocked" if mode == "block" else "kept"
                rows.extend((i, f, action) for f in findings)
                if mode == "block":
                    blocked.append(i)
    violations = _violations(accepted, rows, plan.version)
    if not blocked:
        return PlanOutcome(accepted, _dead_letters(accepted.slice(0, 0), {}), violations)
    mask = pc.invert(pc.is_in(pa.array(range(accepted.num_rows)), pa.array(blocked)))
    sentences: dict[int, list[str]] = defaultdict(list)
    for i, finding, _ in rows:
        sentences[i].append(finding[3])
    out = accepted.take(pa.array(sorted(blocked)))
    reasons = {pos: sentences[i] for pos, i in enumerate(sorted(blocked))}
    return PlanOutcome(accepted.filter(mask), _dead_letters(out, reasons), violations)


def violations_of_rows(violations: pa.Table, *tables: pa.Table) -> pa.Table:
    """The violations whose event is still a row of one of `tables` (by Kafka coordinates):
    what is left after the rows of erased people were dropped."""
    kept = {
        (t, p, o)
        for table in tables
        for t, p, o in zip(
            table.column("_kafka_topic").to_pylist(),
            table.column("_kafka_partition").to_pylist(),
            table.column("_kafka_offset").to_pylist(),
            strict=True,
        )
    }
    coordinates = zip(
        violations.column("_kafka_topic").to_pylist(),
        violations.column("_kafka_partition").to_pylist(),
        violations.column("_kafka_offset").to_pylist(),
        strict=True,
    )
    return violations.filter(pa.array([c in kept for c in coordinates], pa.bool_()))


def _violations(accepted: pa.Table, rows: list[tuple[int, Finding, str]], version: str) -> pa.Table:
    if not rows:
        return VIOLATIONS_SCHEMA.empty_table()
    at = [i for i, _, _ in rows]
    picked = accepted.select(
        ["message_id", "type", "timestamp", "_kafka_topic", "_kafka_partition", "_kafka_offset"]
    ).take(pa.array(at))
    kinds = picked.column("type").to_pylist()
    names = accepted.select(["event", "name"]).take(pa.array(at))
    event_names = pc.if_else(
        pc.equal(picked.column("type"), "track"), names.column("event"), names.column("name")
    )
    now = datetime.now(UTC)
    return pa.table(
        {
            "message_id": picked.column("message_id"),
            "type": pa.array(kinds, pa.string()),
            "event": event_names,
            "rule": pa.array([f[0] for _, f, _ in rows], pa.string()),
            "schema_path": pa.array([f[1] for _, f, _ in rows], pa.string()),
            "field": pa.array([f[2] for _, f, _ in rows], pa.string()),
            "message": pa.array([f[3] for _, f, _ in rows], pa.string()),
            "plan_version": pa.array([version] * len(rows), pa.string()),
            "action": pa.array([a for _, _, a in rows], pa.string()),
            "timestamp": pc.cast(picked.column("timestamp"), pa.timestamp("us", tz="UTC")),
            "detected_at": pa.array([now] * len(rows), pa.timestamp("us", tz="UTC")),
            "_kafka_topic": picked.column("_kafka_topic"),
            "_kafka_partition": pc.cast(picked.column("_kafka_partition"), pa.int32()),
            "_kafka_offset": pc.cast(picked.column("_kafka_offset"), pa.int64()),
        },
        schema=VIOLATIONS_SCHEMA,
    )


def _dead_letters(events: pa.Table, reasons: dict[int, list[str]]) -> pa.Table:
    """Blocked events as rows of the rejected table: the stored payload, replayable as is."""
    messages = [
        "breaks the tracking plan: " + "; ".join(reasons.get(pos, []))[:1000]
        for pos in range(events.num_rows)
    ]
    return pa.table(
        {
            "_kafka_topic": events.column("_kafka_topic"),
            "_kafka_partition": events.column("_kafka_partition"),
            "_kafka_offset": events.column("_kafka_offset"),
            "_kafka_timestamp": events.column("_kafka_timestamp"),
            "_kafka_key": events.column("_kafka_key"),
            "key_bytes": pc.cast(events.column("_kafka_key"), pa.binary()),
            "payload": pc.cast(events.column("payload"), pa.binary()),
            "error_code": pa.array([PLAN_VIOLATION] * events.num_rows, pa.string()),
            "error_message": pa.array(messages, pa.string()),
        }
    )
