"""Send messages to the tracking topic with kafka-python (creating the topic if needed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipelines.config import KafkaSettings

DEFAULT_PARTITIONS = 4


class ProduceError(RuntimeError):
    pass


def ensure_topic(settings: KafkaSettings, topic: str, partitions: int = DEFAULT_PARTITIONS) -> None:
    try:
        admin = KafkaAdminClient(**settings.client_config(), request_timeout_ms=10_000)
    except KafkaError as exc:
        raise ProduceError(
            f"KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap_servers} unreachable "
            f"({type(exc).__name__}); start one with 'trackflow broker start'"
        ) from exc
    try:
        if topic not in admin.list_topics():
            admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def produce(
    messages: Sequence[tuple[bytes | None, bytes | None, int | None]],
    settings: KafkaSettings | None = None,
    topic: str | None = None,
    *,
    partitions: int = DEFAULT_PARTITIONS,
    compression: str | None = None,
    batch_bytes: int = 512 * 1024,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Send (key, value, timestamp_ms) messages with acks=all; returns how many were acked."""
    settings = settings or KafkaSettings.from_env()
    topic = topic or settings.topics[0]
    ensure_topic(settings, topic, partitions)
    producer = KafkaProducer(
        **settings.client_config(),
        acks="all",
        linger_ms=20,
        batch_size=batch_bytes,
        compression_type=compression,
        max_request_size=8 * 1024 * 1024,
    )
    try:
        futures = []
        for i, (key, value, ts) in enumerate(messages, 1):
            futures.append(producer.send(topic, key=key, value=value, timestamp_ms=ts))
            if on_progress and i % 10_000 == 0:
                on_progress(i)
        producer.flush()
        for f in futures:
            f.get(timeout=30)  # raises if any send failed: never report unacknowledged events
    except KafkaError as exc:
        raise ProduceError(f"producing to {topic!r} failed: {exc}") from exc
    finally:
        producer.close()
    if on_progress:
        on_progress(len(messages))
    return len(messages)
