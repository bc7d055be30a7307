"""Broker outages: the collector answers 503 with Retry-After, stores nothing it cannot persist,
recovers by itself, and a graceful shutdown finishes what is in flight.

Each test owns its broker, since stopping the session one would disturb every other test."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pipelines.broker import EmbeddedBroker
from tests.collector.conftest import collector_settings
from tests.collector.helpers import WEB_KEY, LiveCollector, basic, drain, events, metric

pytestmark = pytest.mark.timeout(90)

TOPIC = "outage.events"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    yield broker
    if broker.proc is not None:
        os.kill(broker.proc.pid, signal.SIGCONT)
    broker.stop()


def track(client: httpx.Client, name: str, n: int = 1) -> httpx.Response:
    batch = [{"type": "track", "event": name, "anonymousId": f"a{i}"} for i in range(n)]
    return client.post("/v1/batch", json={"batch": batch}, headers=basic(WEB_KEY))


def wait_until_accepted(client: httpx.Client, name: str, timeout: float = 20.0) -> int:
    """Send `name` until it is answered 200; return how many attempts were refused first."""
    deadline = time.monotonic() + timeout
    refused = 0
    while time.monotonic() < deadline:
        r = track(client, name)
        if r.status_code == 200:
            return refused
        assert r.status_code == 503, r.text
        refused += 1
        time.sleep(0.2)
    raise AssertionError(f"collector still refusing after {timeout}s")


def until(condition: Callable[[], object], failure: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.02)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_stopped_broker_means_503_and_nothing_stored(own_broker: EmbeddedBroker) -> None:
    settings = collector_settings(own_broker.bootstrap, TOPIC, produce_timeout_ms=2000.0)
    with LiveCollector(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        assert track(client, "before").status_code == 200
        own_broker.stop()

        started = time.monotonic()
        r = track(client, "during", n=5)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "7"
        assert r.json()["success"] is False
        # at the deadline, not after a client's own timeout; twice the deadline leaves room
        # for a loaded host without hiding a wait of its own
        assert time.monotonic() - started < 2 * settings.produce_timeout_s
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json() == {"status": "unavailable"}
        assert client.get("/health/details").json()["broker"] == "unreachable"
        assert "Retry-After" in health.headers
        metrics = client.get("/metrics").text
        assert (
            metric(metrics, "trackflow_collector_events_total", outcome="failed", source="web") == 5
        )
        requests = "trackflow_collector_requests_total"
        assert metric(metrics, requests, endpoint="/v1/batch", status="503") == 1

        # same port, empty memory: the collector finds it again without a restart of its own
        own_broker.start()
        wait_until_accepted(client, "after")
        assert client.get("/health").status_code == 200

    names = [e["event"] for e in events(drain(own_broker.bootstrap, TOPIC))]
    assert "after" in names
    assert "during" not in names


def test_frozen_broker_answers_503_at_the_deadline(own_broker: EmbeddedBroker) -> None:
    settings = collector_settings(own_broker.bootstrap, TOPIC, produce_timeout_ms=2000.0)
    assert own_broker.proc is not None
    with LiveCollector(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        assert track(client, "before").status_code == 200
        os.kill(own_broker.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            r = track(client, "slow", n=3)
            elapsed = time.monotonic() - started
            assert r.status_code == 503
            assert "Retry-After" in r.headers
            # a frozen broker takes the whole deadline: no earlier answer, none much later
            assert settings.produce_timeout_s <= elapsed < 2 * settings.produce_timeout_s
            assert client.get("/health").status_code == 503
        finally:
            os.kill(own_broker.proc.pid, signal.SIGCONT)
        wait_until_accepted(client, "after")


def test_collector_starts_without_a_broker_and_serves_once_it_appears(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    settings = collector_settings(broker.bootstrap, TOPIC, produce_timeout_ms=1000.0)
    try:
        with LiveCollector(settings) as live, httpx.Client(base_url=live.url, timeout=30) as c:
            assert track(c, "early").status_code == 503
            assert c.get("/health").status_code == 503
            broker.start()
            wait_until_accepted(c, "late")
            assert c.get("/health").status_code == 200
        names = [e["event"] for e in events(drain(broker.bootstrap, TOPIC))]
        assert names == ["late"]
    finally:
        broker.stop()


def test_graceful_shutdown_finishes_requests_in_flight(own_broker: EmbeddedBroker) -> None:
    settings = collector_settings(own_broker.bootstrap, TOPIC, produce_timeout_ms=10_000.0)
    assert own_broker.proc is not None
    live = LiveCollector(settings).start()
    server = live.server
    assert server is not None
    with httpx.Client(base_url=live.url, timeout=30) as client:
        assert track(client, "warm-up").status_code == 200

    answers: list[httpx.Response] = []
    os.kill(own_broker.proc.pid, signal.SIGSTOP)
    try:
        sender = threading.Thread(
            target=lambda: answers.append(
                track(httpx.Client(base_url=live.url, timeout=30), "in-flight", n=20)
            )
        )
        sender.start()
        until(lambda: server.server_state.tasks, "the request never reached the collector")
        stopper = threading.Thread(target=live.stop)
        stopper.start()
        until(lambda: not listening(live.port), "the collector kept listening after stop()")
        # the server is draining: it waits for the request, which waits for the broker's acks
        assert stopper.is_alive() and not answers
    finally:
        os.kill(own_broker.proc.pid, signal.SIGCONT)
    sender.join(20)
    stopper.join(20)
    assert not stopper.is_alive()
    assert [a.status_code for a in answers] == [200]
    names = [e["event"] for e in events(drain(own_broker.bootstrap, TOPIC))]
    assert names.count("in-flight") == 20
