"""The ground truth of analytics.agg_conversion_drivers: per funnel and step transition, how many
converted and dropped-off attempts saw each event and property value.

The rules are the ones dbt_project/README.md ("Conversion drivers") states, applied to the
attempts funnel_truth finds (the funnel rules live there only). A transition goes from a required
step to the next required one (optional steps are skipped over). Its attempts reached the first
and either reached the second (converted) or are closed without it (dropped off); excluded and
still-open attempts are left out. What an attempt saw is its entity's track events from step 1
until the next step (converters, exclusive) or its window's end (drop-offs, inclusive). A feature
is a track event name that is none of the funnel's required step events, or an event name with
the value of a declared property; it is reported when at least `min_support` of those attempts
saw it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelines.funnel_truth import Funnel, as_text, funnel_attempts
from pipelines.generated_event import Event


@dataclass(frozen=True)
class DriverRules:
    properties: tuple[str, ...]  # event property keys whose values are candidate drivers
    min_support: int


def declared_drivers(dbt_vars: dict[str, Any]) -> DriverRules:
    """The drivers settings of dbt_project.yml's vars (or of a run's --vars)."""
    return DriverRules(
        properties=tuple(dbt_vars.get("drivers__properties") or ()),
        min_support=int(dbt_vars["drivers__min_support"]),
    )


def transitions(f: Funnel) -> list[tuple[int, int]]:
    """(from, to) step positions, 0-based: each required step to the next required one."""
    required = [k for k, step in enumerate(f.steps) if not step.optional]
    return list(zip(required, required[1:], strict=False))


def _features(e: Event, step_events: set[str], rules: DriverRules) -> set[tuple[str, ...]]:
    name = e.body.get("event")
    if e.type != "track" or not name:
        return set()
    found: set[tuple[str, ...]] = set()
    if name not in step_events:
        found.add(("event", name, "", ""))
    props = e.body.get("properties") or {}
    for key in rules.properties:
        value = props.get(key)
        if value is not None:
            found.add(("property", name, key, as_text(value)))
    return found


def funnel_drivers(
    f: Funnel,
    entities: Sequence[Sequence[Event]],
    first_ids: set[str],
    watermark: datetime,
    rules: DriverRules,
) -> dict[str, list[int]]:
    """`funnel|from_step|feature_type|event|property_key|property_value` -> [converted_with,
    dropped_with, converted_total, dropped_total] for `f` (steps numbered from 1); `entities`
    are each entity's events in (time, message_id) order, `first_ids` the events first-time
    steps may match (funnel_truth.first_time_ids)."""
    # an optional step may be skipped, so doing it is a candidate driver; a required one is not
    step_events = {s.value for s in f.steps if s.kind == "event" and not s.optional}
    totals: dict[int, Counter[bool]] = defaultdict(Counter)
    seen: dict[tuple[int, tuple[str, ...]], Counter[bool]] = defaultdict(Counter)
    for events in entities:
        for a in funnel_attempts(events, f, first_ids):
            if a.excluded:
                continue
            start = a.at[0]
            for p, q in transitions(f):
                reached_at, next_at = a.at[p], a.at[q]
                if reached_at is None or start is None:
                    continue
                converted = next_at is not None
                if not converted and a.is_still_open(watermark):
                    continue
                end = next_at if next_at is not None else a.window_ends
                totals[p][converted] += 1
                features: set[tuple[str, ...]] = set()
                for e in events:
                    # converters until the next step (exclusive), drop-offs until the window's
                    # end (inclusive); a held-constant attempt sees every event of its entity
                    if start <= e.at and (e.at < end if converted else e.at <= end):
                        features |= _features(e, step_events, rules)
                for feature in features:
                    seen[(p, feature)][converted] += 1
    rows: dict[str, list[int]] = {}
    for (p, feature), counts in seen.items():
        if counts[True] + counts[False] >= rules.min_support:
            key = "|".join([f.name, str(p + 1), *feature])
            rows[key] = [counts[True], counts[False], totals[p][True], totals[p][False]]
    return dict(sorted(rows.items()))
