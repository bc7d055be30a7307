"""Funnel attempts in the ground truth: which steps each attempt at a declared funnel reached,
by the rules dbt_project/README.md documents, computed from the true events (never by the SQL).

Covers the opt-in features too: optional steps, first-time steps, exclusions and held-constant
properties (README "Funnel features").
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipelines.generated_event import Event


@dataclass(frozen=True)
class FunnelStep:
    kind: str  # event | page_path | screen
    value: str
    properties: tuple[tuple[str, str], ...]
    optional: bool = False
    first_time: bool = False

    def matches(self, e: Event) -> bool:
        if self.kind == "event":
            hit = e.type == "track" and e.body.get("event") == self.value
        elif self.kind == "page_path":
            hit = e.type == "page" and page_path(e) == self.value
        else:
            hit = e.type == "screen" and e.body.get("name") == self.value
        props = e.body.get("properties") or {}
        # the docs: property values "must all be equal (compared as text)"
        return hit and all(key in props and as_text(props[key]) == v for key, v in self.properties)


@dataclass(frozen=True)
class Exclusion:
    event: FunnelStep  # what the excluding event must be
    after: int  # step positions, 0-based
    before: int


@dataclass(frozen=True)
class Funnel:
    name: str
    scope: str  # session | user
    order: str  # sequential | strict | any
    window: timedelta
    steps: tuple[FunnelStep, ...]
    labels: tuple[str, ...]  # the step labels the marts use (declared_funnels)
    exclusions: tuple[Exclusion, ...] = ()
    hold_constant: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attempt:
    at: tuple[datetime | None, ...]  # when each step position was reached (None: not reached)
    converted: bool
    excluded: bool
    held: tuple[str, ...] | None  # the held properties' values (hold_constant)
    window_ends: datetime
    broken: bool  # strict order: another event broke the sequence before it converted

    @property
    def reached(self) -> tuple[bool, ...]:
        """Per step position, whether the attempt reached it."""
        return tuple(t is not None for t in self.at)

    def is_still_open(self, watermark: datetime) -> bool:
        """It may still convert: not converted, excluded nor broken, and its window ends after
        the latest event seen (`watermark`)."""
        return (
            not self.converted
            and not self.excluded
            and not self.broken
            and self.window_ends > watermark
        )


def declared_funnel(f: dict[str, Any], name: str, labels: tuple[str, ...]) -> Funnel:
    """The truth's view of one declaration of vars.funnels__definitions (already validated by
    dbt's funnel_definitions: an invalid one never builds)."""
    steps = tuple(
        FunnelStep(
            kind,
            str(s[kind]),
            _properties(s),
            optional=bool(s.get("optional", False)),
            first_time=bool(s.get("first_time", False)),
        )
        for s in f["steps"]
        for kind in [next(k for k in ("event", "page_path", "screen") if k in s)]
    )
    names = [s["name"] for s in f["steps"]]
    exclusions = tuple(
        Exclusion(
            FunnelStep("event", str(x["event"]), _properties(x)),
            names.index(x["after"]),
            names.index(x["before"]),
        )
        for x in f.get("exclusions") or []
    )
    return Funnel(
        name=name,
        scope=f.get("scope") or "session",
        order=f.get("order") or "sequential",
        window=timedelta(minutes=int(f["window_minutes"])),
        steps=steps,
        labels=labels,
        exclusions=exclusions,
        hold_constant=tuple(f.get("hold_constant") or ()),
    )


def funnel_truth(f: Funnel, entities: list[list[Event]], users: list[list[Event]]) -> dict:
    """Attempts reaching each step of `f` over `entities` (each one entity's events in order),
    and what each feature did: attempts excluded, optional steps skipped (a later required step
    reached without them), entities with parallel attempts for several held values, and the
    repeats a first-time step ignored. `users` is every user's whole history."""
    first_ids = first_time_ids(f, users)
    repeats = Counter(
        label
        for step, label in zip(f.steps, f.labels, strict=True)
        if step.first_time
        for history in users
        for e in history
        if step.matches(e) and e.message_id not in first_ids
    )
    reached = [0] * len(f.steps)
    skipped: Counter[str] = Counter()
    excluded = converted = parallel = 0
    for evs in entities:
        attempts = funnel_attempts(evs, f, first_ids)
        parallel += len({a.held for a in attempts}) > 1
        for a in attempts:
            if a.excluded:
                excluded += 1
                continue
            converted += a.converted
            for k, hit in enumerate(a.reached):
                reached[k] += hit
                later_required = any(
                    a.reached[q] for q in range(k + 1, len(f.steps)) if not f.steps[q].optional
                )
                skipped[f.labels[k]] += f.steps[k].optional and not hit and later_required
    return {
        "steps": list(f.labels),
        "reached": reached,
        "converted": converted,
        "excluded": excluded,
        "optional_skipped": {
            f.labels[k]: skipped[f.labels[k]] for k, step in enumerate(f.steps) if step.optional
        },
        "parallel_entities": parallel,
        "first_time_repeats": dict(repeats),
    }


def first_time_ids(f: Funnel, users: list[list[Event]]) -> set[str]:
    """The message ids of each user's first ever event matching each first-time step of `f`
    (`users`: every user's whole history in order): the only events such a step matches."""
    return {
        e.message_id
        for step in f.steps
        if step.first_time
        for history in users
        for e in [next((e for e in history if step.matches(e)), None)]
        if e is not None
    }


def funnel_attempts(
    events: Sequence[Event], f: Funnel, first_ids: frozenset[str] | set[str] = frozenset()
) -> list[Attempt]:
    """Each attempt at `f` of one entity (events in (time, message_id) order). With
    hold_constant, the events carrying every held property are split by their values and each
    value is an entity of its own, so attempts for several values may run in parallel."""
    if not f.hold_constant:
        return _attempts(events, f, first_ids, None)
    by_value: dict[tuple[str, ...], list[Event]] = defaultdict(list)
    for e in events:
        props = e.body.get("properties") or {}
        if all(props.get(key) is not None for key in f.hold_constant):
            by_value[tuple(as_text(props[key]) for key in f.hold_constant)].append(e)
    return [a for held, evs in by_value.items() for a in _attempts(evs, f, first_ids, held)]


def _attempts(
    events: Sequence[Event],
    f: Funnel,
    first_ids: frozenset[str] | set[str],
    held: tuple[str, ...] | None,
) -> list[Attempt]:
    """The documented rules: an attempt begins at an event that can start the funnel (a step-1
    event; in `any` order an event of any step), the entity's first, then the first after the
    previous attempt closed. `sequential`: each required step is the first matching event after
    the previous required step; an optional step is its first event after the required step
    before it and before the required step after it (or the window's end when that one is not
    reached). `strict`: each step is the very next event; `any`: the steps are the distinct
    steps done, in any order. Only events within the window (inclusive) of the first step count.
    A first-time step matches only the user's first ever matching event (`first_ids`). An
    attempt closes after its last step's event when it converts, in strict order as soon as the
    sequence breaks, otherwise when its window has passed. It is excluded when an exclusion
    event comes after its step `after` and before its step `before`, both reached."""
    n = len(f.steps)
    hits = [
        {
            k
            for k, step in enumerate(f.steps)
            if step.matches(e) and (not step.first_time or e.message_id in first_ids)
        }
        for e in events
    ]
    required = [k for k, step in enumerate(f.steps) if not step.optional]
    attempts: list[Attempt] = []
    i = 0
    while True:
        start = next(
            (j for j in range(i, len(events)) if (hits[j] if f.order == "any" else 0 in hits[j])),
            None,
        )
        if start is None:
            return attempts
        window_ends = events[start].at + f.window
        last_in_window = start
        while last_in_window + 1 < len(events) and events[last_in_window + 1].at <= window_ends:
            last_in_window += 1
        at: dict[int, int] = {}  # step position -> index of its event
        if f.order == "any":
            first: dict[int, int] = {}
            for j in range(start, last_in_window + 1):
                for k in hits[j]:
                    first.setdefault(k, j)
            converted, last = len(first) == n, max(first.values())
            # step k of the output is the moment the k-th distinct step was first done
            done = sorted(events[j].at for j in first.values())
            times = tuple(done[k] if k < len(done) else None for k in range(n))
            broken = False
        else:
            at[0], last, r, broken = start, start, 1, False
            for j in range(start + 1, last_in_window + 1):
                if r == len(required):
                    break
                if required[r] in hits[j]:
                    at[required[r]], last, r = j, j, r + 1
                elif f.order == "strict":
                    broken = True
                    break
            converted = r == len(required)
            for k in range(n):
                if f.steps[k].optional and max(q for q in required if q < k) in at:
                    after = at[max(q for q in required if q < k)]
                    until = at.get(min(q for q in required if q > k), last_in_window + 1)
                    taken = next((j for j in range(after + 1, until) if k in hits[j]), None)
                    if taken is not None:
                        at[k] = taken
            times = tuple(events[at[k]].at if k in at else None for k in range(n))
        excluded = any(
            x.after in at
            and x.before in at
            and any(x.event.matches(events[j]) for j in range(at[x.after] + 1, at[x.before]))
            for x in f.exclusions
        )
        attempts.append(Attempt(times, converted, excluded, held, window_ends, broken))
        i = last + 1 if converted or f.order == "strict" else last_in_window + 1


def _properties(declared: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((k, as_text(v)) for k, v in (declared.get("properties") or {}).items())


def page_path(e: Event) -> str | None:
    path: str | None = ((e.body.get("context") or {}).get("page") or {}).get("path")
    return path


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
