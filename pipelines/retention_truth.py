"""The ground truth of analytics.agg_retention, from the true sessions of the generated events.

The rules are the ones dbt_project/README.md ("Retention") states, applied in Python to the
sessions generator_truth builds (so the entities follow the same identity stitching): an
entity's cohort is the day (or Monday-based week) its first session starts, its platform and
channel those of that session; it is retained in period k when it does a returning event on day
cohort + k (week cohorts: in week cohort + 7k). Periods run from 0 to the configured maximum, but
none starts after the latest day with activity; a period that reaches that day is incomplete.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pipelines.generated_event import Event

GRAIN_DAYS = {"day": 1, "week": 7}


@dataclass(frozen=True)
class RetentionRules:
    returning_events: frozenset[str]  # track event names; empty: any track/page/screen event
    max_periods: dict[str, int]  # per cohort grain (day, week)


def declared_retention(dbt_vars: dict[str, Any]) -> RetentionRules:
    """The retention settings of dbt_project.yml's vars (or of a run's --vars)."""
    return RetentionRules(
        returning_events=frozenset(dbt_vars.get("retention__returning_events") or ()),
        max_periods={
            grain: int(dbt_vars[f"retention__max_{grain}_periods"]) for grain in GRAIN_DAYS
        },
    )


def platform(e: Event) -> str:
    """The staging rule: a screen or an app context is mobile; a page, a page URL or a user
    agent is web; anything else is server."""
    context = e.body.get("context") or {}
    if e.type == "screen" or (context.get("app") or {}).get("name"):
        return "mobile"
    if e.type == "page" or (context.get("page") or {}).get("url") or context.get("userAgent"):
        return "web"
    return "server"


def cohort_start(day: date, grain: str) -> date:
    return day if grain == "day" else day - timedelta(days=day.weekday())


def retention_truth(
    sessions: Sequence[tuple[str, list[Event]]], channels: Sequence[str], rules: RetentionRules
) -> dict[str, list[Any]]:
    """`grain|cohort_date|period|platform|channel` -> [cohort_size, retained_entities,
    is_period_complete] for every row agg_retention must hold. `sessions` are (entity, events
    in time order) and `channels[i]` is the channel of `sessions[i]`."""
    first: dict[str, tuple[Any, int]] = {}  # entity -> (sort key of its first session, index)
    active: dict[str, set[date]] = defaultdict(set)
    watermark: date | None = None
    for i, (key, events) in enumerate(sessions):
        start = (events[0].at, events[0].message_id)
        if key not in first or start < first[key][0]:
            first[key] = (start, i)
        for e in events:
            day = e.at.date()
            watermark = day if watermark is None or day > watermark else watermark
            if not rules.returning_events or (
                e.type == "track" and e.body.get("event") in rules.returning_events
            ):
                active[key].add(day)
    if watermark is None:
        return {}
    sizes: Counter[tuple[str, date, str, str]] = Counter()
    retained: Counter[tuple[str, date, str, str, int]] = Counter()
    for key, (_, i) in first.items():
        first_event = sessions[i][1][0]
        breakdown = (platform(first_event), channels[i])
        for grain, days in GRAIN_DAYS.items():
            cohort = cohort_start(first_event.at.date(), grain)
            sizes[(grain, cohort, *breakdown)] += 1
            for period in {(day - cohort).days // days for day in active[key]}:
                retained[(grain, cohort, *breakdown, period)] += 1
    rows: dict[str, list[Any]] = {}
    for (grain, cohort, plat, channel), size in sizes.items():
        days = GRAIN_DAYS[grain]
        for period in range(rules.max_periods[grain] + 1):
            if cohort + timedelta(days=period * days) > watermark:
                break
            complete = cohort + timedelta(days=(period + 1) * days) <= watermark
            name = f"{grain}|{cohort.isoformat()}|{period}|{plat}|{channel}"
            rows[name] = [size, retained[(grain, cohort, plat, channel, period)], complete]
    return dict(sorted(rows.items()))
