"""The collector picks each record's partition itself (`partitioner.py`); it must be the one
kafka-python's default partitioner picks, so a visitor's events stay in one partition, in order."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable

import httpx
import pytest
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2 as kafka_murmur2

from pipelines.broker import EmbeddedBroker
from pipelines.collector.partitioner import murmur2, partition_for
from tests.collector.conftest import collector_settings
from tests.collector.helpers import WEB_KEY, LiveCollector, basic, drain

pytestmark = pytest.mark.timeout(90)


def test_murmur2_equals_kafka_pythons_for_every_tail_length() -> None:
    rng = random.Random(7)
    inputs = [bytes(rng.getrandbits(8) for _ in range(n)) for n in range(70) for _ in range(30)]
    inputs += ["visiteur-é".encode(), b"\xff" * 9, b"\x00" * 5, b""]
    for data in inputs:
        assert murmur2(data) == kafka_murmur2(data), data


def test_partition_for_takes_the_hash_modulo_the_sorted_partitions() -> None:
    # a key whose hash has the top bit set: kafka clears it before the modulo
    key = next(k for k in (f"k{i}".encode() for i in range(1000)) if kafka_murmur2(k) & 0x80000000)
    assert partition_for(key, [0, 1, 2]) == (kafka_murmur2(key) & 0x7FFFFFFF) % 3
    assert partition_for(key, [10, 11, 12]) == 10 + (kafka_murmur2(key) & 0x7FFFFFFF) % 3


def test_records_land_where_kafka_pythons_partitioner_puts_them_and_in_order(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    # 7 partitions: not a power of two, so the modulo matters
    topic, reference_topic = make_topic(7, prefix="partition"), make_topic(7, prefix="reference")
    keys = [f"anon-{i}" for i in range(60)] + ["visiteur-é", "u", "a-much-longer-anonymous-id-0"]
    batch = [
        {"type": "track", "event": "e", "anonymousId": key, "messageId": f"{key}/{n}"}
        for n in range(3)
        for key in keys
    ]
    settings = collector_settings(broker.bootstrap, topic)
    with LiveCollector(settings) as live, httpx.Client(base_url=live.url, timeout=15) as client:
        r = client.post("/v1/batch", json={"batch": batch}, headers=basic(WEB_KEY))
        assert r.status_code == 200, r.text

    # the same keys through kafka-python's own default partitioner
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for key in keys:
        producer.send(reference_topic, key=key.encode(), value=b"")
    producer.flush()
    producer.close()
    expected = {r.key: r.partition for r in drain(broker.bootstrap, reference_topic)}
    assert len(expected) == len(keys)
    assert len(set(expected.values())) > 3  # the keys spread: the check below means something

    records = drain(broker.bootstrap, topic)
    assert len(records) == len(batch)
    sequence: dict[bytes, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.partition == expected[record.key], record.key
        sequence[record.key].append(int(json.loads(record.value)["messageId"].split("/")[1]))
    # each visitor's events in one partition, in the order the batch gave them
    assert all(order == [0, 1, 2] for order in sequence.values()), sequence
