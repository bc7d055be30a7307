"""Synthetic clickstream with ground truth.

Visitors (web and mobile) come back over several days; each visit is a run of page/screen views,
clicks and form submissions, sometimes the e-commerce path (product viewed -> added -> checkout
started -> order completed) with drop-off at every step, sometimes a login (identify) after which
events carry the userId. Referrers and UTM campaigns give every visit a channel; a few bots crawl.
With `journeys=True`, one more visitor per 300 events follows products in parallel
(pipelines/generator_journeys.py: the traffic of the funnel features), from a random stream of its
own, on top of the `events`. With `identity_scenarios=True`
the scenarios of pipelines/generator_identity.py (an alias chain, several devices, shared devices,
a runaway alias component) are part of the traffic too.

Faults (optional): `duplicates` (the same message delivered twice), `late` (mobile events sent
hours or days after they happened), `skew` (device clocks off by minutes to hours), `malformed`
(messages the validator must reject).

The ground truth (pipelines/generator_truth.py) is computed from the true event times with the
rules the marts document (dedup on messageId, skew-corrected time, the identity graph,
sessions, channels, every declared funnel with its features, bots excluded), independently of the
SQL that implements them. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipelines.events import dumps
from pipelines.generator_identity import Step, scenario_steps
from pipelines.generator_journeys import product_journeys
from pipelines.generator_truth import Event, ground_truth

FAULTS = ("duplicates", "late", "skew", "malformed")
CHECKOUT_STEPS = ("Product Viewed", "Product Added", "Checkout Started", "Order Completed")

_PAGES = [
    ("/", "Home"),
    ("/pricing", "Pricing"),
    ("/blog/launch", "Launch post"),
    ("/blog/guide", "Getting started"),
    ("/docs", "Docs"),
    ("/about", "About"),
]
_PRODUCTS = [
    (f"sku-{i:03d}", round(5 + i * 3.7, 2), c)
    for i, c in enumerate(["shoes", "shirts", "bags", "hats", "socks", "coats"] * 4)
]
_CAMPAIGNS = [
    ("newsletter", "email", "spring_sale"),
    ("google", "cpc", "brand"),
    ("facebook", "paid_social", "retargeting"),
    ("partner", "affiliate", "blog_swap"),
]
_REFERRERS = {
    "search": ["https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/"],
    "social": ["https://twitter.com/", "https://www.facebook.com/", "https://www.linkedin.com/"],
    "referral": ["https://news.ycombinator.com/", "https://blog.example.org/post"],
}
_WEB_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
]
_BOT_AGENTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0)",
]
HOST = "shop.example.com"


@dataclass
class Traffic:
    """Kafka messages in arrival order and what the generator knows about them."""

    messages: list[tuple[bytes, bytes, int]]  # (key, value, kafka timestamp ms)
    truth: dict[str, Any]
    valid_ids: frozenset[str] = frozenset()  # messageIds of the valid events
    # the valid events as they truly happened: a truth under other rules is computed from them
    events: list[Event] = field(default_factory=list)


@dataclass
class _Visitor:
    anonymous_id: str
    user_id: str | None
    platform: str  # web | ios | android
    is_bot: bool
    skew: timedelta
    agent: str


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class _Builder:
    def __init__(self, rng: random.Random, faults: set[str]) -> None:
        self.rng = rng
        self.faults = faults
        self.events: list[Event] = []

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def visitor(self, i: int, people: list[str | None]) -> _Visitor:
        rng = self.rng
        is_bot = rng.random() < 0.02
        platform = "web" if is_bot or rng.random() < 0.65 else rng.choice(["ios", "android"])
        skew = timedelta(0)
        if "skew" in self.faults and rng.random() < 0.15:
            skew = timedelta(seconds=rng.choice([-1, 1]) * rng.randint(60, 6 * 3600))
        agent = (
            rng.choice(_BOT_AGENTS)
            if is_bot
            else (
                rng.choice(_WEB_AGENTS)
                if platform == "web"
                else f"ShopApp/4.2 ({platform}; build {rng.randint(100, 999)})"
            )
        )
        return _Visitor(
            anonymous_id=self.uid(),
            user_id=None if is_bot else people[i % len(people)],
            platform=platform,
            is_bot=is_bot,
            skew=skew,
            agent=agent,
        )

    def context(self, v: _Visitor, path: str, title: str, landing: dict[str, Any] | None) -> dict:
        ctx: dict[str, Any] = {
            "userAgent": v.agent,
            "locale": "en-US",
            "ip": f"203.0.113.{self.rng.randint(1, 254)}",
        }
        if v.platform == "web":
            search = landing.get("search", "") if landing else ""
            ctx["page"] = {
                "url": f"https://{HOST}{path}{search}",
                "path": path,
                "title": title,
                "search": search,
                "referrer": (landing or {}).get("referrer", ""),
            }
            ctx["library"] = {"name": "analytics.js", "version": "5.2.0"}
        else:
            ctx["app"] = {"name": "ShopApp", "version": "4.2.0"}
            ctx["device"] = {
                "type": v.platform,
                "model": "Pixel 8" if v.platform == "android" else "iPhone15,2",
            }
            ctx["os"] = {"name": "Android" if v.platform == "android" else "iOS"}
            ctx["library"] = {"name": f"analytics-{v.platform}", "version": "4.1.0"}
        if landing and landing.get("campaign"):
            ctx["campaign"] = landing["campaign"]
        return ctx

    def emit(
        self,
        v: _Visitor,
        kind: str,
        at: datetime,
        logged_in: bool,
        *,
        event: str | None = None,
        name: str | None = None,
        path: str = "/",
        props: dict | None = None,
        traits: dict | None = None,
        landing: dict | None = None,
        previous_id: str | None = None,
    ) -> None:
        rng = self.rng
        send_delay = timedelta(milliseconds=rng.randint(5, 4000))
        if "late" in self.faults and v.platform != "web" and rng.random() < 0.05:
            send_delay = timedelta(minutes=rng.randint(60, 3 * 24 * 60))  # offline phone
        received = at + send_delay
        body: dict[str, Any] = {
            "messageId": self.uid(),
            "type": kind,
            "anonymousId": v.anonymous_id,
            "timestamp": _iso(at + v.skew),
            "sentAt": _iso(received + v.skew),
            "receivedAt": _iso(received),
            "context": self.context(v, path, name or "", landing),
        }
        user_id = v.user_id if logged_in else None
        if user_id:
            body["userId"] = user_id
        if event:
            body["event"] = event
        if name:
            body["name"] = name
        if props is not None:
            body["properties"] = props
        if traits is not None:
            body["traits"] = traits
        if previous_id is not None:
            body["previousId"] = previous_id
        # what the event says about where the visit came from, in the docs' terms: a campaign
        # (UTM) wins; a referrer is sent only in a web page's context (an app has none, so an
        # app opened from a search is direct); without either, direct
        channel = "direct"
        if landing and landing.get("campaign"):
            channel = "campaign"
        elif landing and v.platform == "web" and landing.get("referrer"):
            channel = landing["channel"]
        self.events.append(
            Event(
                body["messageId"],
                v.anonymous_id,
                user_id,
                kind,
                at,
                received,
                v.is_bot,
                body,
                channel,
            )
        )

    def session(
        self, v: _Visitor, start: datetime, logged_in: bool, login_now: bool, budget: int
    ) -> tuple[datetime, bool]:
        """One visit; returns (time of its last event, logged in afterwards)."""
        rng = self.rng
        landing = self.landing()
        t = start
        n = 1 if rng.random() < 0.3 else min(2 + int(rng.expovariate(1 / 7)), 40)
        shopping = rng.random() < 0.35
        login_at = rng.randint(1, max(1, n - 1)) if login_now else -1
        emitted = 0
        path, title = rng.choice(_PAGES[:3]) if landing.get("campaign") else rng.choice(_PAGES)
        funnel_step = 0
        for i in range(n):
            if emitted >= budget:
                break
            if i == login_at and v.user_id:
                self.emit(
                    v,
                    "identify",
                    t,
                    True,
                    traits={
                        "plan": rng.choice(["free", "pro"]),
                        "email": f"{v.user_id}@example.com",
                    },
                )
                logged_in = True
                t += timedelta(seconds=rng.randint(1, 20))
            if i == 0 or rng.random() < 0.45:
                if v.platform == "web":
                    self.emit(
                        v,
                        "page",
                        t,
                        logged_in,
                        name=title,
                        path=path,
                        landing=landing if i == 0 else None,
                    )
                else:
                    self.emit(
                        v,
                        "screen",
                        t,
                        logged_in,
                        name=title,
                        path=path,
                        landing=landing if i == 0 else None,
                    )
                path, title = rng.choice(_PAGES)
            elif (
                shopping
                and funnel_step < len(CHECKOUT_STEPS)
                and (funnel_step == 0 or rng.random() < 0.6)
            ):
                sku, price, cat = rng.choice(_PRODUCTS)
                props = {"product_id": sku, "price": price, "category": cat}
                if CHECKOUT_STEPS[funnel_step] == "Order Completed":
                    props = {"order_id": self.uid()[:8], "revenue": price, "currency": "USD"}
                self.emit(
                    v,
                    "track",
                    t,
                    logged_in,
                    event=CHECKOUT_STEPS[funnel_step],
                    path=f"/products/{sku}",
                    props=props,
                )
                funnel_step += 1
            elif shopping and funnel_step < len(CHECKOUT_STEPS):
                shopping = False  # drop-off: no further funnel steps in this visit
                continue
            elif rng.random() < 0.5:
                self.emit(
                    v,
                    "track",
                    t,
                    logged_in,
                    event="Button Clicked",
                    path=path,
                    props={"buttonId": rng.choice(["cta", "menu", "share", "myButton"])},
                )
            else:
                self.emit(
                    v,
                    "track",
                    t,
                    logged_in,
                    event="Form Submitted",
                    path=path,
                    props={"formId": rng.choice(["newsletter", "contact", "search"])},
                )
            emitted += 1
            # steps of the checkout stay well inside its 60-minute window
            gap = rng.randint(5, 240) if funnel_step else rng.randint(5, 20 * 60)
            t += timedelta(seconds=gap)
        return t, logged_in

    def scenario_step(self, step: Step, devices: dict[str, _Visitor]) -> None:
        """One event of an identity scenario, on its device as its user (or anonymous)."""
        v = devices.get(step.device)
        if v is None:
            agent = (
                self.rng.choice(_WEB_AGENTS)
                if step.platform == "web"
                else f"ShopApp/4.2 ({step.platform}; build 400)"
            )
            v = devices[step.device] = _Visitor(
                step.device, None, step.platform, False, timedelta(0), agent
            )
        v.user_id = step.user_id
        view = step.kind in ("page", "screen")
        self.emit(
            v,
            step.kind,
            step.at,
            step.user_id is not None,
            event=step.event,
            name=step.path if view else None,
            path=step.path,
            previous_id=step.previous_id,
        )

    def landing(self) -> dict[str, Any]:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            src, medium, name = rng.choice(_CAMPAIGNS)
            return {
                "campaign": {"source": src, "medium": medium, "name": name},
                "search": f"?utm_source={src}&utm_medium={medium}&utm_campaign={name}",
                "referrer": "",
                "channel": "campaign",
            }
        # the channel each referrer stands for (the hosts are in the docs' search and social
        # lists, the referral ones in neither); it is not sent, only kept for the truth
        if r < 0.5:
            return {"referrer": rng.choice(_REFERRERS["search"]), "channel": "search"}
        if r < 0.62:
            return {"referrer": rng.choice(_REFERRERS["social"]), "channel": "social"}
        if r < 0.7:
            return {"referrer": rng.choice(_REFERRERS["referral"]), "channel": "referral"}
        return {"referrer": "", "channel": "direct"}


def _malformed(rng: random.Random, i: int, at: datetime) -> tuple[bytes | None, bytes]:
    good = {
        "messageId": f"bad-{i}",
        "type": "track",
        "event": "Clicked",
        "anonymousId": f"x{i}",
        "timestamp": _iso(at),
    }
    kinds: list[bytes] = [
        b"not json at all",
        b"[1, 2, 3]",
        dumps({k: v for k, v in good.items() if k != "messageId"}),
        dumps({k: v for k, v in good.items() if k != "anonymousId"}),
        dumps({**good, "type": "purchase!"}),
        dumps({**good, "timestamp": "yesterday"}),
        dumps({**good, "timestamp": "1900-01-01T00:00:00Z"}),
        b'{"messageId": "dup", "messageId": "dup2", "type": "track"}',
        b"\xff\xfe\x00garbage",
        dumps({**good, "properties": "not an object"}),
    ]
    return f"x{i}".encode(), kinds[i % len(kinds)]


def generate(
    events: int = 10_000,
    users: int = 500,
    days: int = 1,
    seed: int = 42,
    start: date | None = None,
    faults: Iterable[str] = (),
    identity_scenarios: bool = False,
    journeys: bool = False,
) -> Traffic:
    """Generate `events` valid messages (distinct messageIds). With `journeys`, the product
    journeys of one extra visitor per 300 events come on top (pipelines/generator_journeys.py);
    with `identity_scenarios`, the identity graph's scenarios take the first of the `events`."""
    faults = set(faults)
    unknown = faults - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; choose from {', '.join(FAULTS)}")
    if events < 1 or users < 1 or days < 1:
        raise ValueError("events, users and days must be positive")
    rng = random.Random(seed)
    start = start or (datetime.now(UTC).date() - timedelta(days=days))
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    b = _Builder(rng, faults)
    if identity_scenarios:
        # a random stream of their own: the rest of the traffic stays what the seed made it
        scenarios = _Builder(random.Random(seed + 1), faults)
        devices: dict[str, _Visitor] = {}
        for step in scenario_steps(scenarios.rng, t0, days):
            scenarios.scenario_step(step, devices)
        b.events.extend(scenarios.events)
    # people with accounts; visitors on two devices share one
    people: list[str | None] = [
        f"user-{i:05d}" if rng.random() < 0.45 else None for i in range(users)
    ]
    visitors = [b.visitor(i, people) for i in range(users)]
    for i in range(users // 10):  # a second device for some account holders
        if visitors[i].user_id and not visitors[i].is_bot:
            extra = b.visitor(i, people)
            extra.user_id = visitors[i].user_id
            visitors.append(extra)
    per_visitor = max(1, events // len(visitors))
    next_start = {
        v.anonymous_id: t0 + timedelta(seconds=rng.randint(0, 86_400 * days - 1)) for v in visitors
    }
    logged = {v.anonymous_id: False for v in visitors}
    horizon = t0 + timedelta(days=days)
    order = list(visitors)
    while len(b.events) < events:
        progressed = False
        rng.shuffle(order)
        for v in order:
            if len(b.events) >= events:
                break
            at = next_start[v.anonymous_id]
            if at >= horizon:
                continue
            login_now = bool(v.user_id) and not logged[v.anonymous_id] and rng.random() < 0.4
            budget = min(events - len(b.events), per_visitor)
            end, logged[v.anonymous_id] = b.session(
                v, at, logged[v.anonymous_id], login_now, budget
            )
            next_start[v.anonymous_id] = end + timedelta(
                seconds=rng.randint(35 * 60, max(36 * 60, int(86_400 * days / 3)))
            )
            progressed = True
        if not progressed:  # everyone ran past the horizon: allow more visits inside it
            for v in visitors:
                next_start[v.anonymous_id] = t0 + timedelta(
                    seconds=rng.randint(0, 86_400 * days - 1)
                )
    b.events = b.events[:events]
    # the funnel features' traffic, from a random stream of its own (the events above stay the
    # same for a seed): one journey visitor per 300 events
    journey_events = (
        product_journeys(
            _Builder(random.Random(f"journeys:{seed}"), faults), t0, days, max(1, events // 300)
        )
        if journeys
        else []
    )

    messages: list[tuple[datetime, bytes, bytes]] = [
        (e.received_at, e.anonymous_id.encode(), dumps(e.body)) for e in b.events + journey_events
    ]
    duplicates = 0
    if "duplicates" in faults:
        for e in rng.sample(b.events, k=max(1, len(b.events) // 50)):
            redelivered = e.received_at + timedelta(seconds=rng.randint(1, 600))
            messages.append((redelivered, e.anonymous_id.encode(), dumps(e.body)))
            duplicates += 1
    malformed = 0
    if "malformed" in faults:
        for i in range(max(1, len(b.events) // 100)):
            at = t0 + timedelta(seconds=rng.randint(0, 86_400 * days - 1))
            key, value = _malformed(rng, i, at)
            messages.append((at, key or b"", value))
            malformed += 1
    messages.sort(key=lambda m: m[0])
    truth = ground_truth(b.events + journey_events)
    truth.update(
        {
            "seed": seed,
            "faults": sorted(faults),
            "start": start.isoformat(),
            "days": days,
            "messages": len(messages),
            "valid_message_ids": len(b.events) + len(journey_events),
            "duplicate_deliveries": duplicates,
            "malformed": malformed,
        }
    )
    return Traffic(
        messages=[(k, v, int(t.timestamp() * 1000)) for t, k, v in messages],
        truth=truth,
        valid_ids=frozenset(e.message_id for e in b.events + journey_events),
        events=b.events + journey_events,
    )
