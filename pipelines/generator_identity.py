"""The identity graph in the generated traffic: scenarios with a known answer, and the rule.

Scenarios (`scenario_steps`), added to the generator's traffic: an alias chain (an anonymous
visitor signs up, `alias` previousId=anonymousId -> userId; a day later the account moves to a
new id, `alias` old userId -> new userId; the person then logs in on a phone), a person on three
devices, a shared device (identified as one person, hours later as another, anonymous events
before, between and after), the same on a device where the second login comes a day later,
and a runaway component (a client aliasing more user ids into one chain than the limit allows).

The rule (`IdentityTruth`) is dbt_project/README.md "Identity", written again in Python from
the events, never by running the SQL: only alias links merge user ids (connected components);
a component with more user ids than the limit is not merged; a person's key is the component's
user id seen first; a device linked to one person is that person's, one linked to several is
shared; an event's own userId always wins; an anonymous event on a shared device belongs to the
person whose link on the device came last before it (the first person's before any link).
Imports nothing of ours: the generator and its truth both import it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

# dbt_project.yml vars.identities__max_user_ids (the truth reads the declared value)
RUNAWAY_CHAIN_LENGTH = 22


@dataclass(frozen=True)
class Step:
    """One event of a scenario: on `device` (an anonymous id), as `user_id` (None: anonymous)."""

    device: str
    platform: str  # web | ios | android
    user_id: str | None
    kind: str  # page | screen | track | identify | alias
    at: datetime
    event: str | None = None
    path: str = "/"
    previous_id: str | None = None


def scenario_steps(rng: random.Random, t0: datetime, days: int) -> list[Step]:
    """The scenarios' events, all inside [t0, t0 + days)."""
    tag = f"{rng.getrandbits(32):08x}"
    span = timedelta(days=days)

    def at(fraction: float, minutes: float = 0) -> datetime:
        return t0 + span * fraction + timedelta(minutes=minutes)

    def visit(device: str, platform: str, user: str | None, start: datetime, n: int) -> list[Step]:
        kind = "page" if platform == "web" else "screen"
        return [
            Step(device, platform, user, kind, start + timedelta(minutes=2 * i), path=p)
            for i, p in zip(range(n), ["/", "/pricing", "/docs", "/about"] * n, strict=False)
        ]

    steps: list[Step] = []
    # an alias chain: anonymous -> signed up (alias) -> account renamed (alias) -> phone login
    anon, old, new, phone = f"ac-anon-{tag}", f"acct-old-{tag}", f"acct-new-{tag}", f"ac-ph-{tag}"
    steps += visit(anon, "web", None, at(0.05), 3)
    steps.append(Step(anon, "web", old, "alias", at(0.05, 7), previous_id=anon))
    steps.append(Step(anon, "web", old, "track", at(0.05, 8), event="Signed Up"))
    steps += visit(anon, "web", old, at(0.3), 2)
    steps.append(Step(anon, "web", new, "alias", at(0.4), previous_id=old))
    steps += visit(anon, "web", new, at(0.4, 1), 2)
    steps.append(Step(phone, "ios", new, "identify", at(0.6)))
    steps += visit(phone, "ios", new, at(0.6, 1), 3)
    # one person on three devices
    person = f"multi-{tag}"
    for i, platform in enumerate(("web", "ios", "android")):
        device = f"md-{i}-{tag}"
        steps += visit(device, platform, None, at(0.1 + 0.2 * i), 2)
        steps.append(Step(device, platform, person, "identify", at(0.1 + 0.2 * i, 5)))
        steps += visit(device, platform, person, at(0.1 + 0.2 * i, 6), 2)
    # a shared device: anonymous, A logs in, anonymous again (logged out), B logs in hours
    # later, anonymous again; and one where B comes a day later
    for name, gap in (("sd", timedelta(hours=5)), ("sd-day", timedelta(days=1, hours=1))):
        device, a, b = f"{name}-{tag}", f"{name}-a-{tag}", f"{name}-b-{tag}"
        start = at(0.02) if gap > timedelta(hours=6) else at(0.5)
        steps += visit(device, "web", None, start, 2)
        steps.append(Step(device, "web", a, "identify", start + timedelta(minutes=5)))
        steps += visit(device, "web", a, start + timedelta(minutes=6), 2)
        steps += visit(device, "web", None, start + timedelta(hours=2), 2)
        steps.append(Step(device, "web", b, "identify", start + gap))
        steps += visit(device, "web", b, start + gap + timedelta(minutes=1), 2)
        steps += visit(device, "web", None, start + gap + timedelta(hours=2), 2)
    # a runaway component: each user id has its own device and visit, and a client aliases them
    # all into one chain; more user ids than the limit, so they must stay apart
    for i in range(RUNAWAY_CHAIN_LENGTH):
        device, user = f"rw-dev-{i}-{tag}", f"rw-{i:02d}-{tag}"
        steps.append(Step(device, "web", user, "identify", at(0.15, 10 * i)))
        steps += visit(device, "web", user, at(0.15, 10 * i + 1), 2)
        if i:
            alias_at = at(0.15, 10 * i + 5)
            previous = f"rw-{i - 1:02d}-{tag}"
            steps.append(Step(device, "web", user, "alias", alias_at, previous_id=previous))
    return [s for s in steps if t0 <= s.at < t0 + span]


class IdentityEvent(Protocol):
    message_id: str
    anonymous_id: str
    user_id: str | None
    type: str
    at: datetime
    is_bot: bool
    body: dict[str, Any]


class IdentityTruth:
    """Who each event belongs to, by the documented rule (module docstring)."""

    def __init__(self, events: Iterable[IdentityEvent], max_user_ids: int) -> None:
        ordered = sorted((e for e in events if not e.is_bot), key=lambda e: (e.at, e.message_id))
        self.user_ids = {e.user_id for e in ordered if e.user_id}
        # links in time order: (linked id, user id, is alias, event)
        links: list[tuple[str, str, bool, IdentityEvent]] = []
        first_seen: dict[str, tuple[datetime, str]] = {}
        for e in ordered:
            previous = e.body.get("previousId") if e.type == "alias" else None
            if e.user_id:
                first_seen.setdefault(e.user_id, (e.at, e.message_id))
                if e.anonymous_id and e.anonymous_id != e.user_id:
                    links.append((e.anonymous_id, e.user_id, False, e))
                if previous and previous != e.user_id:
                    first_seen.setdefault(previous, (e.at, e.message_id))
                    links.append((previous, e.user_id, True, e))
        # connected components of the alias links (union-find); a component's id is its
        # smallest member, as the docs say
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            while parent.setdefault(x, x) != x:
                x = parent[x]
            return x

        for linked, user, is_alias, _ in links:
            if is_alias:
                ra, rb = find(linked), find(user)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
        members: dict[str, list[str]] = defaultdict(list)
        for node in list(parent):
            members[find(node)].append(node)
        self.component = {n: min(ms) for ms in members.values() for n in ms}
        self.oversized = {
            n
            for ms in members.values()
            if sum(m in self.user_ids for m in ms) > max_user_ids
            for n in ms
        }
        # the person of every user id: its component's first-seen user id, unless oversized
        self.person: dict[str, str] = {u: u for u in self.user_ids}
        for ms in members.values():
            users = [m for m in ms if m in self.user_ids]
            if users and not (set(ms) & self.oversized):
                key = min(users, key=lambda u: first_seen[u])
                self.person.update({u: key for u in users})
        # devices: the persons their links reach, and each device's links in time order
        self.reached: dict[str, set[str]] = defaultdict(set)
        self.device_links: dict[str, list[tuple[tuple[datetime, str], str]]] = defaultdict(list)
        self.linked_ids: set[str] = set()
        for linked, user, _, e in links:
            self.linked_ids |= {linked, user}
            if linked not in self.user_ids:
                self.reached[linked].add(self.person[user])
                self.device_links[linked].append(((e.at, e.message_id), self.person[user]))

    def is_shared(self, device: str) -> bool:
        return device not in self.user_ids and len(self.reached.get(device, ())) > 1

    def key_of(self, identifier: str) -> str | None:
        """The person an identifier belongs to as a whole (None: unlinked, or a shared device)."""
        if identifier in self.user_ids:
            return self.person[identifier]
        reached = self.reached.get(identifier, set())
        return next(iter(reached)) if len(reached) == 1 else None

    def person_of(self, e: IdentityEvent) -> str | None:
        """The person an event belongs to (None: a visitor never identified)."""
        if e.user_id:
            return self.person[e.user_id]
        if not self.is_shared(e.anonymous_id):
            return self.key_of(e.anonymous_id)
        timeline = self.device_links[e.anonymous_id]
        before = [person for when, person in timeline if when <= (e.at, e.message_id)]
        return before[-1] if before else timeline[0][1]

    def identities(self) -> dict[str, list[Any]]:
        """int_identities__mapped's answer: identifier -> [user_id (the person's key),
        identifier_type, is_shared_device, is_in_oversized_component]."""
        return {
            i: [
                self.key_of(i),
                "user_id" if i in self.user_ids else "anonymous_id",
                self.is_shared(i),
                i in self.oversized,
            ]
            for i in sorted(self.linked_ids)
        }
