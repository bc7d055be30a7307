"""A request's work between reading its body and the warehouse's check, off the event loop.

Inflate, parse, authenticate by body key, check each event, stamp, scrub the write key and
serialise: all CPU (zlib frees the GIL while it inflates). It runs in the collector's worker
threads, so a heavy request does not hold up the event loop, other requests' I/O or /health.
Everything it refuses raises RequestRefused; nothing here talks to the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.collector.auth import key_from_body, source_for
from pipelines.collector.codec import BadJson, dumps, loads
from pipelines.collector.enrich import enrich, partition_key, utc_now_iso
from pipelines.collector.intake import RequestRefused, gunzip, unauthorised
from pipelines.collector.producer import Record
from pipelines.collector.screen import vouched
from pipelines.collector.scrub import credential_marks, holds_credential, without_credentials
from pipelines.collector.validation import Problem, validate_event
from pipelines.config import CollectorSettings
from pipelines.tracking_plan import PLAN_VIOLATION, TrackingPlan
from pipelines.tracking_plan.check import check_event


@dataclass(frozen=True)
class Call:
    """A request as the event loop read it: nothing parsed yet."""

    kind: str | None  # the event type the endpoint implies; None for a batch
    body: bytes
    gzipped: bool
    header_key: str | None
    client_ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Stamped:
    source: str
    # the key the request was authenticated with, for its rate limit; it never reaches Kafka
    write_key: str
    records: list[Record]
    # indexes of the events the screen could not vouch for: the warehouse's validator decides
    unsure: list[int]
    # violations of the tracking plan the request is still accepted with (flag mode, unplanned)
    plan_warnings: list[Problem]


def _parse(call: Call, settings: CollectorSettings) -> dict[str, Any]:
    batch = call.kind is None
    limit = settings.max_batch_bytes if batch else settings.max_event_bytes
    body = (
        gunzip(call.body, limit, "a batch" if batch else "an event") if call.gzipped else call.body
    )
    try:
        parsed = loads(body)
    except BadJson as bad:
        error = f"body is not valid JSON: {bad.message}" if bad.code == "not_json" else bad.message
        raise RequestRefused(400, error, code=bad.code) from None
    if not isinstance(parsed, dict):
        raise RequestRefused(400, "body must be a JSON object", code="not_object")
    return parsed


def _items(
    body: dict[str, Any], kind: str | None, settings: CollectorSettings
) -> tuple[list[Any], dict[str, Any] | None, str | None]:
    """The request's events, the batch's context and sentAt."""
    if kind is not None:
        body["type"] = kind
        return [body], None, None
    items = body.get("batch")
    if not isinstance(items, list) or not items:
        raise RequestRefused(
            400,
            "invalid batch",
            [Problem(None, "batch", "batch must be a non-empty array", "bad_batch")],
            code="bad_batch",
        )
    limit = settings.max_batch_events
    if len(items) > limit:
        raise RequestRefused(
            413,
            f"a batch holds at most {limit} events; this one holds {len(items)}",
            events=len(items),
            code="too_many_events",
        )
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        raise RequestRefused(
            400,
            "invalid batch",
            [Problem(None, "context", "context must be a JSON object", "bad_batch")],
            events=len(items),
            code="bad_batch",
        )
    sent_at = body.get("sentAt") if isinstance(body.get("sentAt"), str) else None
    return items, context, sent_at


def _stamp(
    call: Call,
    settings: CollectorSettings,
    write_key: str,
    items: list[Any],
    batch_context: dict[str, Any] | None,
    sent_at: str | None,
    plan: TrackingPlan | None,
) -> tuple[list[Record], list[int], list[Problem]]:
    received_at = utc_now_iso()
    marks = credential_marks(write_key)
    records: list[Record] = []
    unsure: list[int] = []
    oversized: list[Problem] = []
    warnings: list[Problem] = []
    blocked: list[Problem] = []
    limit = settings.max_event_bytes
    for i, item in enumerate(items):
        event = enrich(
            item,
            received_at=received_at,
            client_ip=call.client_ip,
            user_agent=call.user_agent,
            ip_mode=settings.ip_mode,
            batch_context=batch_context,
            batch_sent_at=sent_at,
        )
        value = dumps(event)
        if holds_credential(value, marks):
            event = without_credentials(event, write_key)
            value = dumps(event)
        # the limit holds for the message as stored, the size the warehouse checks too
        if len(value) > limit:
            message = f"event is larger than the limit of {limit} bytes"
            oversized.append(Problem(i, "", message, "too_large"))
        if not vouched(event, value):
            unsure.append(i)
        records.append((partition_key(event), value))
        if plan is not None:  # on the event as it will be stored, as ingestion checks it
            planned, findings = check_event(event, plan)
            found = [Problem(i, f[2], f[3], PLAN_VIOLATION) for f in findings]
            block = planned and settings.tracking_plan.plan_mode == "block"
            (blocked if block else warnings).extend(found)
    if oversized:
        raise RequestRefused(
            413, "events too large", oversized, events=len(items), code="too_large"
        )
    if blocked:
        raise RequestRefused(
            400,
            f"events break the tracking plan {plan.version if plan else ''}",
            blocked,
            events=len(items),
            code=PLAN_VIOLATION,
        )
    return records, unsure, warnings


def prepare(call: Call, settings: CollectorSettings, plan: TrackingPlan | None = None) -> Stamped:
    """Authenticate, parse, check, stamp and serialise a request's events, or raise RequestRefused.

    A key in the Authorization header was already checked before the body was read. With a
    tracking plan, an event that breaks it refuses the request (400, `plan_violation`) under
    `block`; under `flag`, and for events the plan does not list, the request is accepted and
    the violations come back as warnings.
    """
    body = _parse(call, settings)
    write_key = call.header_key or key_from_body(body)
    source = source_for(settings.write_keys, write_key)
    if source is None or write_key is None:
        raise unauthorised()
    try:
        items, batch_context, sent_at = _items(body, call.kind, settings)
        problems = [p for i, item in enumerate(items) for p in validate_event(item, i)]
        if problems:
            raise RequestRefused(400, "invalid events", problems, events=len(items))
        records, unsure, warnings = _stamp(
            call, settings, write_key, items, batch_context, sent_at, plan
        )
    except RequestRefused as refused:
        refused.source = source
        raise
    return Stamped(source, write_key, records, unsure, warnings)
