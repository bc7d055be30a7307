"""The broker no longer holds the next offset: detect, record, fail loudly; resume on request."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from pipelines.broker import EmbeddedBroker
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.kafka_source.helpers import BrokerUnavailable, OffsetGapError
from pipelines.producer import produce
from tests.helpers import query, scalar, settings_for


@pytest.fixture
def own_broker(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as b:
        yield b


def _create(bootstrap: str, topic: str, partitions: int = 2) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()


def test_broker_lost_its_data_fails_loudly_then_resumes(own_broker, warehouse) -> None:
    settings = settings_for(own_broker.bootstrap, "events")
    _create(own_broker.bootstrap, "events")
    produce(generate(events=1_000, users=40, seed=1).messages, settings, "events")
    assert ingest(settings, warehouse).loaded == 1_000

    own_broker.restart()  # memory storage: every message and offset is gone
    _create(own_broker.bootstrap, "events")
    produce(generate(events=300, users=20, seed=2).messages, settings, "events")

    for _ in range(2):  # fails every time until someone decides: no crash loop, no silent skip
        with pytest.raises(OffsetGapError) as err:
            ingest(settings, warehouse)
        assert "--resume-from earliest" in str(err.value)
        assert "events[" in str(err.value)
    assert scalar(warehouse, "select count(*) from raw.tracking_events") == 1_000
    gaps = query(
        warehouse,
        "select distinct kind, partition from raw.ingestion_gaps "
        "where resolved_at is null order by partition",
    )
    assert {k for k, _ in gaps} <= {"offsets_reset", "topic_recreated"}
    assert {p for _, p in gaps} == {0, 1}

    resumed = ingest(settings, warehouse, resume_from="earliest")
    assert resumed.loaded == 300
    assert resumed.resumed_gaps == len(query(warehouse, "select * from raw.ingestion_gaps"))
    assert (
        scalar(warehouse, "select count(*) from raw.ingestion_gaps where resolved_at is null") == 0
    )
    assert ingest(settings, warehouse).loaded == 0


def test_topic_recreated_with_more_messages_is_noticed(own_broker, warehouse) -> None:
    """Offsets look fine here (the new log is longer); the last record's fingerprint differs."""
    settings = settings_for(own_broker.bootstrap, "events")
    _create(own_broker.bootstrap, "events", partitions=1)
    produce(generate(events=200, users=10, seed=1).messages, settings, "events")
    assert ingest(settings, warehouse).loaded == 200

    own_broker.restart()
    _create(own_broker.bootstrap, "events", partitions=1)
    produce(generate(events=900, users=30, seed=9).messages, settings, "events")
    with pytest.raises(OffsetGapError) as err:
        ingest(settings, warehouse)
    assert err.value.gaps[0].kind == "topic_recreated"


def test_broker_unreachable_at_start_names_the_servers(warehouse) -> None:
    settings = settings_for("127.0.0.1:1", "events")
    with pytest.raises(BrokerUnavailable) as err:
        ingest(settings, warehouse)
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1" in str(err.value)
