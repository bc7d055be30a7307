"""Generator -> embedded broker -> ingestion -> DuckDB, checked against the ground truth."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce
from tests.helpers import limits, query, scalar, settings_for


def test_ingest_matches_ground_truth(broker, make_topic, warehouse: Path) -> None:
    topic = make_topic(partitions=4)
    traffic = generate(
        events=6_000, users=200, days=2, seed=7, faults={"duplicates", "malformed", "late", "skew"}
    )
    settings = settings_for(broker.bootstrap, topic)
    produce(traffic.messages, settings, topic)

    result = ingest(settings, warehouse)

    truth = traffic.truth
    assert result.messages == truth["messages"]
    assert result.loaded == truth["valid_message_ids"] + truth["duplicate_deliveries"]
    assert result.rejected == truth["malformed"]
    assert (
        scalar(warehouse, "select count(distinct message_id) from raw.tracking_events")
        == (truth["valid_message_ids"])
    )
    assert (
        scalar(warehouse, "select count(*) from raw.tracking_events_rejected")
        == (truth["malformed"])
    )
    # every Kafka coordinate lands exactly once, in one of the two tables
    rows = query(
        warehouse,
        """
        select count(*), count(distinct (_kafka_partition, _kafka_offset)) from (
          select _kafka_partition, _kafka_offset from raw.tracking_events
          union all
          select _kafka_partition, _kafka_offset from raw.tracking_events_rejected)""",
    )
    assert rows[0] == (truth["messages"], truth["messages"])
    assert result.total_lag == 0
    # the days touched, for the late-data sensor: the skew-corrected days of the events
    assert {d.isoformat() for d in result.event_days} == set(truth["events_per_day"])


def test_second_run_loads_nothing_then_exactly_the_new(broker, make_topic, warehouse) -> None:
    topic = make_topic(partitions=3)
    settings = settings_for(broker.bootstrap, topic)
    first = generate(events=1_000, users=50, seed=1)
    produce(first.messages, settings, topic)
    assert ingest(settings, warehouse).loaded == 1_000

    again = ingest(settings, warehouse)
    assert (again.messages, again.loaded, again.rejected) == (0, 0, 0)

    second = generate(events=700, users=40, seed=2)
    produce(second.messages, settings, topic)
    assert ingest(settings, warehouse).loaded == 700
    assert scalar(warehouse, "select count(distinct message_id) from raw.tracking_events") == 1_700
    assert scalar(warehouse, "select count(*) from raw.tracking_events") == 1_700


def test_a_run_starting_past_the_reported_end_still_reads(broker, make_topic, warehouse) -> None:
    """Tansu reports a partition's end as its last batch's base offset + 1: a lower bound only.

    Fifty events in one producer batch report an end of 1, so every run after the first starts
    "past the end"; each must still read what is there (a run once stopped at 0 messages here).
    """
    topic = make_topic(partitions=1)
    settings = settings_for(broker.bootstrap, topic)
    produce(generate(events=50, users=10, seed=5).messages, settings, topic)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    reported_end = consumer.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]
    consumer.close()
    assert reported_end < 20  # the premise: the broker under-reports the end

    runs = [ingest(settings, warehouse, limits=limits(max_messages=20)) for _ in range(4)]
    assert [r.messages for r in runs] == [20, 20, 10, 0]
    assert [r.stopped_because for r in runs] == ["max_messages"] * 2 + ["caught_up"] * 2
    assert scalar(warehouse, "select count(distinct _kafka_offset) from raw.tracking_events") == 50


def test_a_run_under_steady_traffic_stops_with_what_was_there(
    broker, make_topic, warehouse
) -> None:
    """Messages arriving every few milliseconds during the run (a quiet poll never comes): the
    run still ends caught up, not at max_seconds, having loaded at least what was on the topic
    when it started; the next run loads the rest, each message once."""
    topic = make_topic(partitions=2)
    settings = settings_for(broker.bootstrap, topic)
    backlog = generate(events=300, users=20, seed=8).messages
    produce(backlog, settings, topic)
    # more than the sender can send within max_seconds: the traffic outlasts an unbounded run
    live = generate(events=20_000, users=200, seed=9).messages
    stop = threading.Event()
    sent = []

    def keep_sending() -> None:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        for key, value, _ in live:
            if stop.wait(0.005):
                break
            producer.send(topic, key=key, value=value)
            sent.append(key)
        producer.flush()
        producer.close()

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        first = ingest(settings, warehouse, limits=limits(max_seconds=60))
    finally:
        stop.set()
        sender.join()
    assert first.stopped_because == "caught_up"
    assert first.loaded >= len(backlog)
    rest = ingest(settings, warehouse)
    assert first.loaded + rest.loaded == len(backlog) + len(sent)
    assert scalar(warehouse, "select count(distinct message_id) from raw.tracking_events") == (
        len(backlog) + len(sent)
    )


def test_drain_stopped_by_max_messages_resumes_without_gaps(broker, make_topic, warehouse) -> None:
    topic = make_topic(partitions=4)
    settings = settings_for(broker.bootstrap, topic)
    traffic = generate(events=3_000, users=100, seed=3)
    produce(traffic.messages, settings, topic)

    runs = []
    while True:
        r = ingest(settings, warehouse, limits=limits(max_messages=700, batch_size=300))
        runs.append(r)
        if r.messages == 0:
            break
    assert [r.stopped_because for r in runs[:4]] == ["max_messages"] * 4
    assert sum(r.messages for r in runs) == 3_000
    per_partition = query(
        warehouse,
        """
        select _kafka_partition, count(*), count(distinct _kafka_offset),
               min(_kafka_offset), max(_kafka_offset)
        from raw.tracking_events group by 1 order by 1""",
    )
    for _partition, n, distinct, lo, hi in per_partition:
        assert n == distinct == hi - lo + 1  # no repeats, no holes
        assert lo == 0


def test_long_drain_is_loaded_in_parts(broker, make_topic, warehouse) -> None:
    topic = make_topic(partitions=4)
    settings = settings_for(broker.bootstrap, topic)
    traffic = generate(events=2_500, users=100, seed=4)
    produce(traffic.messages, settings, topic)

    parts: list[str] = []
    result = ingest(
        settings,
        warehouse,
        limits=limits(messages_per_load=1_000, batch_size=400),
        on_phase=lambda name: parts.append(name) if name == "load" else None,
    )

    assert result.messages == 2_500 and result.stopped_because == "caught_up"
    assert len(parts) == 3  # 1000 + 1000 + 500, each its own load with its offsets
    loads = query(
        warehouse,
        "select _dlt_load_id, count(*) from raw.tracking_events group by 1 order by 1",
    )
    assert [n for _, n in loads] == [1_000, 1_000, 500]
    assert result.load_id == loads[-1][0]
    assert scalar(warehouse, "select count(distinct message_id) from raw.tracking_events") == 2_500
    assert result.total_lag == 0
    assert ingest(settings, warehouse).messages == 0


def test_group_offsets_equal_loaded_offsets(broker, make_topic, warehouse) -> None:
    topic = make_topic(partitions=4)
    settings = settings_for(broker.bootstrap, topic, group="lag-tools-see-this")
    produce(generate(events=2_000, users=80, seed=4).messages, settings, topic)
    result = ingest(settings, warehouse)

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        committed = admin.list_group_offsets("lag-tools-see-this")["lag-tools-see-this"]
    finally:
        admin.close()
    loaded_next = {
        TopicPartition(topic, p): hi + 1
        for p, hi in query(
            warehouse,
            "select _kafka_partition, max(_kafka_offset) from raw.tracking_events group by 1",
        )
    }
    assert {tp: m.offset for tp, m in committed.items()} == loaded_next
    assert result.offsets == {f"{tp.topic}[{tp.partition}]": o for tp, o in loaded_next.items()}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_topics_from_librdkafka(broker, make_topic, warehouse, codec) -> None:
    from confluent_kafka import Producer

    topic = make_topic(partitions=2)
    traffic = generate(events=800, users=30, seed=5)
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "compression.type": codec,
            "linger.ms": 20,
            "acks": "all",
        }
    )
    for key, value, ts in traffic.messages:
        producer.produce(topic, key=key, value=value, timestamp=ts)
    assert producer.flush(30) == 0

    result = ingest(settings_for(broker.bootstrap, topic), warehouse)
    assert (result.loaded, result.rejected) == (800, 0)
    assert scalar(warehouse, "select count(distinct message_id) from raw.tracking_events") == 800


def test_legacy_simple_shape_is_accepted_as_track(broker, make_topic, warehouse) -> None:
    topic = make_topic(partitions=1)
    settings = settings_for(broker.bootstrap, topic)
    legacy = (
        b'{"type": "button_click", "timestamp": "2026-03-01T12:00:00Z", '
        b'"details": {"buttonId": "myButton"}}'
    )
    produce([(None, legacy, None)], settings, topic)
    assert ingest(settings, warehouse).loaded == 1
    row = query(
        warehouse,
        "select type, event, properties::json->>'buttonId', anonymous_id from raw.tracking_events",
    )[0]
    assert row[:3] == ("track", "button_click", "myButton")
    # a deterministic stand-in identity: the message's own hash (it has no key)
    assert row[3] == "legacy-" + hashlib.sha256(legacy).hexdigest()


def test_each_run_writes_its_figures_for_prometheus(
    broker, make_topic, warehouse, tmp_path
) -> None:
    topic = make_topic(partitions=2)
    settings = settings_for(broker.bootstrap, topic)
    produce(generate(events=500, users=20, seed=8, faults={"malformed"}).messages, settings, topic)
    metrics = tmp_path / "textfile"
    result = ingest(settings, warehouse, limits=limits(metrics_dir=metrics))

    [written] = list(metrics.iterdir())
    assert written.name == "trackflow_ingest_0_of_1.prom"
    samples = {
        (s.name, s.labels.get("partition")): s.value
        for family in text_string_to_metric_families(written.read_text())
        for s in family.samples
    }
    assert samples[("trackflow_ingest_loaded_events", None)] == result.loaded == 500
    assert samples[("trackflow_ingest_rejected_events", None)] == result.rejected > 0
    assert samples[("trackflow_ingest_messages", None)] == result.messages
    assert {p for n, p in samples if n == "trackflow_ingest_lag_messages"} == set(result.lag)
    assert samples[("trackflow_ingest_last_success_timestamp_seconds", None)] > 1.7e9
