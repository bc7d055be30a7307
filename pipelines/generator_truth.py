"""The generator's ground truth: what the marts must hold, from the true events.

Computed from the true event times and what the generator put in each event, with the rules the
docs state (README.md, dbt_project/README.md: dedup on messageId, skew-corrected time,
the identity graph, sessions, channels, funnel attempts), never by running the SQL
that implements them. The parameters the docs leave to configuration (session timeout and
maximum length, engagement, conversion events, the declared funnels) are read from
dbt_project.yml, so a funnel declared there has a truth without anyone writing one.

The faults do not change the truth: a duplicate delivery is deduplicated, a late one keeps its
event time, a skewed clock is corrected and a malformed message never becomes an event.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from pipelines.dbt import DBT_PROJECT_DIR
from pipelines.drivers_truth import DriverRules, declared_drivers, funnel_drivers
from pipelines.funnel_truth import (
    Funnel,
    declared_funnel,
    first_time_ids,
    funnel_truth,
    page_path,
)
from pipelines.generated_event import Event
from pipelines.generator_identity import IdentityTruth
from pipelines.report.warehouse import declared_funnels
from pipelines.retention_truth import RetentionRules, declared_retention, retention_truth

# identify (and group/alias) calls are not activity: they join no session and no funnel
SESSION_EVENT_TYPES = ("track", "page", "screen")


@dataclass(frozen=True)
class Rules:
    inactivity: timedelta
    max_length: timedelta
    engaged: timedelta
    conversion_events: frozenset[str]
    funnels: tuple[Funnel, ...]
    max_user_ids: int  # identities__max_user_ids
    retention: RetentionRules
    drivers: DriverRules


def declared_rules(project_dir: Path = DBT_PROJECT_DIR) -> Rules:
    """The session parameters and the funnels that dbt_project.yml declares. A funnel's name,
    scope, order, window and step labels are read as the report reads them; only what an event
    must be to match a step is read here."""
    config = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8"))["vars"]
    funnels = tuple(
        declared_funnel(f, declared.name, declared.step_names)
        for declared, f in zip(
            declared_funnels(project_dir), config["funnels__definitions"], strict=True
        )
    )
    return Rules(
        inactivity=timedelta(minutes=int(config["sessions__inactivity_minutes"])),
        max_length=timedelta(hours=int(config["sessions__max_length_hours"])),
        engaged=timedelta(seconds=int(config["sessions__engaged_seconds"])),
        conversion_events=frozenset(config["sessions__conversion_events"]),
        funnels=funnels,
        max_user_ids=int(config["identities__max_user_ids"]),
        retention=declared_retention(config),
        drivers=declared_drivers(config),
    )


def session_id(first_message_id: str) -> str:
    """The documented id: md5('session:' || message_id of the first event)."""
    return hashlib.md5(f"session:{first_message_id}".encode()).hexdigest()


def ground_truth(events: Sequence[Event], rules: Rules | None = None) -> dict[str, Any]:
    """Sessions (which events, whose, which channel), users, per-day counts and every declared
    funnel's steps, from the distinct valid events the generator emitted."""
    rules = rules or declared_rules()
    per_day = Counter(e.at.date().isoformat() for e in events)
    # identity: the graph's rule (generator_identity.py, README "Identity")
    identity = IdentityTruth(events, rules.max_user_ids)
    by_entity: dict[str, list[Event]] = defaultdict(list)
    identified: set[str] = set()
    for e in events:
        if e.is_bot or e.type not in SESSION_EVENT_TYPES:
            continue
        person = identity.person_of(e)
        key = person or e.anonymous_id
        by_entity[key].append(e)
        if person:
            identified.add(key)
    sessions: list[tuple[str, list[Event]]] = []
    for key, evs in by_entity.items():
        evs.sort(key=lambda e: (e.at, e.message_id))
        current = [evs[0]]
        for prev, e in zip(evs, evs[1:], strict=False):
            # strictly more than the timeout or the maximum length starts a new session
            if e.at - prev.at > rules.inactivity or e.at - current[0].at > rules.max_length:
                sessions.append((key, current))
                current = []
            current.append(e)
        sessions.append((key, current))

    identities = identity.identities()
    by_id: dict[str, dict[str, Any]] = {}
    daily: dict[str, Counter[str]] = defaultdict(Counter)
    daily_users: dict[str, set[str]] = defaultdict(set)
    channels: Counter[str] = Counter()
    channel_users: dict[str, set[str]] = defaultdict(set)
    landing_pages: Counter[str] = Counter()
    session_channels: list[str] = []
    views = 0
    for key, s in sessions:
        channel = _session_channel(s)
        session_channels.append(channel)
        by_id[session_id(s[0].message_id)] = {
            "user_key": key,
            "channel": channel,
            "message_ids": sorted(e.message_id for e in s),
        }
        day = s[0].at.date().isoformat()  # a session belongs to the day it starts on
        n_views = sum(1 for e in s if e.type in ("page", "screen"))
        tracks = sum(1 for e in s if e.type == "track")
        conversions = sum(
            1 for e in s if e.type == "track" and e.body.get("event") in rules.conversion_events
        )
        views += n_views
        daily[day]["sessions"] += 1
        daily[day]["bounces"] += n_views == 1 and tracks == 0
        daily[day]["engaged"] += (
            s[-1].at - s[0].at >= rules.engaged or n_views >= 2 or conversions > 0
        )
        daily[day]["converted"] += conversions > 0
        daily_users[day].add(key)
        channels[channel] += 1
        channel_users[channel].add(key)
        landing_pages[_landing_page(s)] += 1

    return {
        "events_per_day": dict(sorted(per_day.items())),
        "session_events": sum(len(s) for _, s in sessions),
        "session_views": views,
        "sessions": len(sessions),
        "sessions_daily": {
            d: {
                "sessions": daily[d]["sessions"],
                "users": len(daily_users[d]),
                "bounces": daily[d]["bounces"],
                "engaged": daily[d]["engaged"],
                "converted": daily[d]["converted"],
            }
            for d in sorted(daily)
        },
        # a user is an entity with at least one session (dim_users' grain)
        "users": len(by_entity),
        "identified_users": len(identified),
        # the persons int_identities__mapped names, and its answer for every linked id
        "users_stitched": len({person for person, *_ in identities.values() if person}),
        "identities": identities,
        "bot_events": sum(1 for e in events if e.is_bot),
        "channels": {
            c: {"sessions": channels[c], "users": len(channel_users[c])} for c in sorted(channels)
        },
        "landing_pages": dict(sorted(landing_pages.items())),
        "sessions_by_id": by_id,
        "funnels": {f.name: _funnel_truth(f, sessions) for f in rules.funnels},
        "drivers": _drivers_truth(rules, sessions),
        "retention": retention_truth(sessions, session_channels, rules.retention),
    }


def _session_channel(session: list[Event]) -> str:
    """The first event's channel, `internal` counted as `direct` (the docs' rule)."""
    channel = session[0].channel
    return "direct" if channel == "internal" else channel


def _landing_page(session: list[Event]) -> str:
    """The report's landing page: the first page view's path, else the first screen's name."""
    page = next((e for e in session if e.type == "page"), None)
    if page is not None:
        return page_path(page) or "/"
    screen = next((e for e in session if e.type == "screen"), None)
    return f"screen: {screen.body.get('name')}" if screen is not None else "(none)"


def _funnel_truth(f: Funnel, sessions: list[tuple[str, list[Event]]]) -> dict[str, Any]:
    """`f`'s attempts over every entity (a session, or a user's sessions)."""
    entities, users = _funnel_entities(f, sessions)
    return funnel_truth(f, entities, users)


def _drivers_truth(rules: Rules, sessions: list[tuple[str, list[Event]]]) -> dict[str, list[int]]:
    """Every declared funnel's conversion drivers (pipelines/drivers_truth.py), one dict."""
    # attempts are still open when their window ends after the latest event
    watermark = max(e.at for _, s in sessions for e in s)
    drivers: dict[str, list[int]] = {}
    for f in rules.funnels:
        entities, users = _funnel_entities(f, sessions)
        drivers.update(
            funnel_drivers(f, entities, first_time_ids(f, users), watermark, rules.drivers)
        )
    return dict(sorted(drivers.items()))


def _funnel_entities(
    f: Funnel, sessions: list[tuple[str, list[Event]]]
) -> tuple[list[list[Event]], list[list[Event]]]:
    """(the event lists `f` runs over: each session, or each user's sessions; every user's
    whole history, which first-time steps look back over)."""
    per_user: dict[str, list[Event]] = defaultdict(list)
    for key, s in sessions:  # each user's sessions are in time order already
        per_user[key].extend(s)
    users = list(per_user.values())
    return ([s for _, s in sessions] if f.scope == "session" else users), users
