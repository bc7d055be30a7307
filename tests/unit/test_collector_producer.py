"""When a request's acknowledgements miss the deadline, the collector drops its shared producer
only if the brokers have stopped acknowledging altogether: a slow broker must not fail every other
request in flight on the same producer. A fake kafka-python producer reaches that edge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from pipelines.collector.producer import BrokerUnavailable, EventProducer
from pipelines.config import CollectorSettings, KafkaSettings


class FakeFuture:
    def __init__(self, producer: FakeProducer) -> None:
        self.producer = producer
        self.callbacks: list[Callable[[Any], None]] = []

    def add_callback(self, fn: Callable[[Any], None]) -> None:
        if self.producer.acknowledging:
            fn(None)
        else:
            self.callbacks.append(fn)

    def add_errback(self, fn: Callable[[BaseException], None]) -> None:
        pass


class FakeProducer:
    """Acknowledges at once while `acknowledging`, else never."""

    def __init__(self) -> None:
        self.acknowledging = False
        self.closed = False

    def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def send(self, topic: str, **_record: Any) -> FakeFuture:
        return FakeFuture(self)

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def producer_with(fake: FakeProducer) -> EventProducer:
    settings = CollectorSettings(
        write_keys={"k": "web"},
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9", topics=("t",)),
        produce_timeout_ms=300.0,
    )
    events = EventProducer(settings)
    events._producer = fake  # type: ignore[assignment]
    return events


async def _slow_request_beside_a_fast_one(fake: FakeProducer) -> EventProducer:
    events = producer_with(fake)
    slow = asyncio.ensure_future(events.send([(b"k", b"slow")], []))
    await asyncio.sleep(0.05)  # the slow request's record is out, unacknowledged
    fake.acknowledging = True
    await events.send([(b"k", b"fast")], [])  # another request, acknowledged
    with pytest.raises(BrokerUnavailable, match="no acknowledgement"):
        await slow
    return events


async def _nothing_acknowledged(fake: FakeProducer) -> EventProducer:
    events = producer_with(fake)
    with pytest.raises(BrokerUnavailable, match="no acknowledgement"):
        await events.send([(b"k", b"lost")], [])
    await asyncio.gather(*events._closing)
    return events


def test_a_timeout_while_the_brokers_acknowledge_keeps_the_producer() -> None:
    fake = FakeProducer()
    events = asyncio.run(_slow_request_beside_a_fast_one(fake))
    assert events._producer is fake
    assert not fake.closed


def test_a_timeout_with_no_acknowledgement_at_all_rebuilds_the_producer() -> None:
    fake = FakeProducer()
    events = asyncio.run(_nothing_acknowledged(fake))
    assert events._producer is None
    assert fake.closed
