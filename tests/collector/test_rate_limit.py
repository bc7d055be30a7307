"""COLLECTOR_RATE_LIMIT: the token bucket on a clock the test moves, a request refused whole with
429 and Retry-After, and a flood from concurrent clients against a live collector and broker: the
limit holds, everything answered 200 is in Kafka once, nothing answered 429 is."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from pipelines.broker import EmbeddedBroker
from pipelines.collector import CollectorSettings, SettingsError
from pipelines.collector.ratelimit import RateLimiter
from tests.collector.conftest import collector_settings
from tests.collector.helpers import (
    SERVER_KEY,
    WEB_KEY,
    LiveCollector,
    basic,
    drain,
    events,
    metric,
)

pytestmark = pytest.mark.timeout(120)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the bucket


def test_a_request_takes_all_its_tokens_or_none() -> None:
    clock = Clock()
    limiter = RateLimiter(10, ["a", "b"], clock)
    assert limiter.burst == 10  # one second's worth
    assert limiter.take("a", 8) == 0
    # 2 tokens left: a request of 5 is refused whole, and takes nothing
    assert limiter.take("a", 5) == 1  # (5 - 2) / 10 s, in whole seconds
    assert limiter.take("a", 2) == 0
    assert limiter.take("a", 1) == 1
    # another key has its own bucket
    assert limiter.take("b", 10) == 0
    clock.now += 0.5  # 5 tokens back
    assert limiter.take("a", 6) == 1
    assert limiter.take("a", 5) == 0
    clock.now += 60  # refills to the burst, not beyond
    assert limiter.take("a", 15) == 0  # a full bucket admits even more than the burst...
    clock.now += 0.5
    assert limiter.take("a", 1) == 1  # ...and is in debt: -5 + 5 = 0 tokens after 0.5 s
    clock.now += 0.125  # 1.25 tokens
    assert limiter.take("a", 1) == 0


def test_retry_after_is_the_wait_for_the_tokens_in_whole_seconds() -> None:
    clock = Clock()
    limiter = RateLimiter(0.25, ["a"], clock)
    assert limiter.burst == 1  # at least one event, whatever the rate
    assert limiter.take("a", 1) == 0
    assert limiter.take("a", 1) == 4
    clock.now += 3.5
    assert limiter.take("a", 1) == 1  # 0.125 s to go: rounded up, never 0
    # a request larger than the bucket waits for a full one, not for ever
    assert limiter.take("a", 50) == 1
    clock.now += 0.5
    assert limiter.take("a", 50) == 0


def test_tokens_of_events_the_broker_did_not_take_are_given_back() -> None:
    clock = Clock()
    limiter = RateLimiter(5, ["a"], clock)
    assert limiter.take("a", 5) == 0
    limiter.give_back("a", 5)
    assert limiter.take("a", 5) == 0
    limiter.give_back("a", 50)  # never above the burst
    assert limiter.take("a", 5) == 0
    assert limiter.take("a", 1) == 1


def test_the_setting() -> None:
    assert CollectorSettings.from_env({"COLLECTOR_WRITE_KEYS": "k"}).rate_limit is None
    env = {"COLLECTOR_WRITE_KEYS": "k", "COLLECTOR_RATE_LIMIT": ""}
    assert CollectorSettings.from_env(env).rate_limit is None
    env["COLLECTOR_RATE_LIMIT"] = "2.5"
    assert CollectorSettings.from_env(env).rate_limit == 2.5
    for bad in ("0", "-1", "fast"):
        env["COLLECTOR_RATE_LIMIT"] = bad
        with pytest.raises(SettingsError, match="COLLECTOR_RATE_LIMIT"):
            CollectorSettings.from_env(env)


# -- a live collector


def batch(n: int) -> tuple[dict[str, object], list[str]]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    body = {
        "batch": [
            {"type": "track", "event": "flood", "anonymousId": "a1", "messageId": i} for i in ids
        ]
    }
    return body, ids


# a hundred seconds per event: whatever the machine's load, nothing refills during the test
@pytest.mark.parametrize("settings", [{"rate_limit": 0.01}], indirect=True)
def test_over_the_limit_is_429_whole_with_retry_after(
    client: httpx.Client, settings: CollectorSettings
) -> None:
    # an invalid request costs nothing
    invalid = client.post("/v1/batch", json={"batch": [{"type": "track"}]}, headers=basic(WEB_KEY))
    assert invalid.status_code == 400
    first, first_ids = batch(1)
    assert client.post("/v1/batch", json=first, headers=basic(WEB_KEY)).status_code == 200

    refused, refused_ids = batch(3)
    r = client.post("/v1/batch", json=refused, headers=basic(WEB_KEY))
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited" and r.json()["success"] is False
    assert 90 <= int(r.headers["Retry-After"]) <= 100  # the one token, at 0.01/s
    single = client.post(
        "/v1/track", json={"event": "x", "anonymousId": "a1"}, headers=basic(WEB_KEY)
    )
    assert single.status_code == 429
    # another write key has a bucket of its own
    other, other_ids = batch(1)
    assert client.post("/v1/batch", json=other, headers=basic(SERVER_KEY)).status_code == 200

    stored = [
        e["messageId"] for e in events(drain(settings.kafka.bootstrap_servers, settings.topic))
    ]
    assert sorted(stored) == sorted(first_ids + other_ids)
    text = client.get("/metrics").text
    assert metric(text, "trackflow_collector_rate_limited_events_total", source="web") == 4
    requests = "trackflow_collector_requests_total"
    assert metric(text, requests, endpoint="/v1/batch", status="429") == 1
    assert metric(text, requests, endpoint="/v1/track", status="429") == 1
    assert metric(text, "trackflow_collector_events_total", outcome="accepted", source="web") == 1


# -- a flood

LIMIT = 40.0  # events per second per write key; the burst is one second's worth
FLOOD_S = 3.0
FLOODERS = 5
BATCH = 4  # events per request, within the burst


@dataclass
class Outcome:
    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    refused_requests: int = 0
    other: list[int] = field(default_factory=list)


def flood(url: str, key: str, until: float, pause_s: float = 0.0) -> Outcome:
    """Post batches as fast as answers come (or every pause_s), each with new messageIds."""
    outcome = Outcome()
    with httpx.Client(base_url=url, timeout=30, headers=basic(key)) as client:
        while time.monotonic() < until:
            body, ids = batch(BATCH)
            r = client.post("/v1/batch", json=body)
            if r.status_code == 200:
                outcome.accepted += ids
            elif r.status_code == 429:
                assert r.json()["code"] == "rate_limited"
                assert int(r.headers["Retry-After"]) >= 1
                outcome.refused += ids
                outcome.refused_requests += 1
            else:
                outcome.other.append(r.status_code)
            time.sleep(pause_s)
    return outcome


def test_a_flood_is_held_to_the_limit_and_kafka_holds_exactly_what_was_accepted(
    broker: EmbeddedBroker, topic: str
) -> None:
    settings = collector_settings(broker.bootstrap, topic, rate_limit=LIMIT)
    with LiveCollector(settings) as live, ThreadPoolExecutor(FLOODERS + 1) as pool:
        started = time.monotonic()
        until = started + FLOOD_S
        flooders = [pool.submit(flood, live.url, WEB_KEY, until) for _ in range(FLOODERS)]
        # another source at a tenth of the limit meanwhile: never refused
        calm = pool.submit(flood, live.url, SERVER_KEY, until, BATCH / (LIMIT / 10))
        web = [f.result() for f in flooders]
        elapsed = time.monotonic() - started
        server = calm.result()
        metrics = httpx.get(f"{live.url}/metrics").text

    accepted = [i for o in web for i in o.accepted]
    refused = [i for o in web for i in o.refused]
    assert [s for o in web for s in o.other] == []
    assert refused, "the flood should have exceeded the limit"
    # the bucket's promise over the window, whatever the machine's speed: at most the burst plus
    # the rate for the time the flood lasted (measured around every request, so an upper bound)
    burst = LIMIT
    assert burst <= len(accepted) <= LIMIT * elapsed + burst, (len(accepted), elapsed)
    assert server.refused == [] and server.other == [] and server.accepted

    stored = Counter(e["messageId"] for e in events(drain(broker.bootstrap, topic, timeout=60)))
    assert set(stored) == set(accepted) | set(server.accepted)
    assert set(stored.values()) == {1}, "an event answered 200 is in Kafka exactly once"
    assert not set(refused) & set(stored)

    assert metric(metrics, "trackflow_collector_rate_limited_events_total", source="web") == len(
        refused
    )
    assert metric(
        metrics, "trackflow_collector_requests_total", endpoint="/v1/batch", status="429"
    ) == sum(o.refused_requests for o in web)
    assert metric(
        metrics, "trackflow_collector_events_total", outcome="accepted", source="web"
    ) == len(accepted)
