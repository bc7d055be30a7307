"""Reading a topic back, and apps under uvicorn in a thread for tests that need a socket."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import uvicorn
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp

from pipelines.broker import free_port
from pipelines.collector import CollectorSettings
from pipelines.collector.server import uvicorn_config
from pipelines.events import messages_table, validate

WEB_KEY = "web-write-key"
SERVER_KEY = "server-write-key"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def drain(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every record of the topic: read from the beginning past its end offsets as they are now,
    then on until a poll comes back empty. Past the end offsets, since an empty poll alone can come
    from a slow fetch (and an `== []` check would then pass vacuously); on after them, since the
    embedded broker reports the start of the last batch as a partition's end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        end = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            batch = consumer.poll(timeout_ms=1000)
            for part in batch.values():
                records.extend(part)
            if not batch and all(consumer.position(tp) >= end[tp] for tp in partitions):
                return records
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic} not read to its end offsets {end} in {timeout}s")
    finally:
        consumer.close()


def warehouse_verdict(values: list[bytes]) -> list[str | None]:
    """What ingestion's validator says of each message value: None (accepted) or its code."""
    table = messages_table([("t", 0, i, 0, b"k", v) for i, v in enumerate(values)])
    _accepted, rejected = validate(table)
    found = dict(
        zip(
            rejected.column("_kafka_offset").to_pylist(),
            rejected.column("error_code").to_pylist(),
            strict=True,
        )
    )
    return [found.get(i) for i in range(len(values))]


def metric(exposition: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (/metrics) by its name and exact labels; 0.0 when
    it is absent, as a counter that never moved."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def samples(exposition: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of that name, with its labels."""
    return [
        (dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    ]


def events(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


def wait_for_events(
    bootstrap: str,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """Drain repeatedly until `done(events)` holds; return the last events read either way."""
    deadline = time.monotonic() + timeout
    while True:
        found = events(drain(bootstrap, topic))
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


class ThreadedServer:
    """An ASGI app on a real socket (uvicorn in a thread); stop() is a graceful shutdown."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> ASGIApp:
        raise NotImplementedError

    def config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )

    def start(self, timeout: float = 15.0) -> Self:
        self.server = uvicorn.Server(self.config())
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(30)
        self.server = self.thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LiveCollector(ThreadedServer):
    """The collector as `trackflow collect` runs it: its uvicorn options, connection guard and
    forwarded-header rule included."""

    def __init__(self, settings: CollectorSettings, port: int | None = None) -> None:
        super().__init__(port)
        self.settings = settings

    def config(self) -> uvicorn.Config:
        return uvicorn_config(
            self.settings, "127.0.0.1", self.port, log_level="warning", timeout_graceful_shutdown=10
        )
