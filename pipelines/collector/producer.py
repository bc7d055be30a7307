"""Produce a request's events with acks=all and wait, within a deadline, until Kafka holds them all.

kafka-python is thread based; this bridges its futures to asyncio without blocking the event loop:
`send` runs in a worker thread (it may block on metadata or a full buffer), and the acks of one
request are counted down by the sender thread, which wakes the request once, at the last ack.
Each record's partition is chosen here (`partitioner.py`: kafka-python's mapping, for less CPU).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from pipelines.collector.partitioner import partition_for
from pipelines.config import CollectorSettings

log = logging.getLogger(__name__)

# after a failed attempt to reach the brokers, wait this long before trying again, so an outage
# costs one bootstrap per second rather than one per request
REBUILD_BACKOFF_S = 1.0
HEALTH_TIMEOUT_S = 3.0
# how long a probe's answer, or the outcome of a produce, stands for the broker's health: /health
# is public, and a probe per call would let anyone make the collector hammer the broker
HEALTH_FRESH_S = 1.0


def _close_quietly(producer: KafkaProducer, timeout_s: float) -> None:
    try:
        producer.close(timeout_s)
    except KafkaError as exc:
        # close() flushes first and gives up while records are still pending; its sender thread
        # must not outlive it
        log.warning("closing a discarded producer: %s", exc)
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()


class BrokerUnavailable(RuntimeError):
    """The events of a request are not known to be in Kafka; the client must retry."""


Record = tuple[bytes, bytes]  # (key, value)


class EventProducer:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.topic = settings.topic
        self._producer: KafkaProducer | None = None
        self._build_lock = asyncio.Lock()
        self._failed_build_at = 0.0
        self._closing: set[asyncio.Future[None]] = set()
        self._probe: KafkaConsumer | None = None
        self._probe_lock = threading.Lock()
        self._check: asyncio.Future[str | None] | None = None
        # (monotonic time, problem or None) of the latest thing known about the broker
        self._known: tuple[float, str | None] | None = None
        # when the brokers last acknowledged a record of any request (set by the sender thread)
        self._acked_at = 0.0

    # -- lifecycle

    def _producer_config(self) -> dict[str, Any]:
        timeout_ms = int(self.settings.produce_timeout_s * 1000)
        cfg = self.settings.kafka.client_config()
        cfg.update(
            client_id="trackflow-collector",
            acks="all",
            # an idempotent producer cannot recover when a broker forgets its producer id (the
            # embedded broker does on restart); duplicates from retries are removed downstream
            # by messageId, as the delivery guarantee already requires
            enable_idempotence=False,
            compression_type=self.settings.compression,
            linger_ms=5,
            batch_size=256 * 1024,
            max_request_size=4 * 1024 * 1024,
            max_block_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms, 1000),
            # a record the broker has not taken by the deadline is abandoned rather than kept for
            # minutes: the client was told 503 and will send it again
            delivery_timeout_ms=max(timeout_ms, 1000) + 10,
            bootstrap_timeout_ms=min(timeout_ms, 5000),
            reconnect_backoff_max_ms=1000,
        )
        return cfg

    async def start(self) -> None:
        """Try to connect now; a broker that is down only means 503s until it is back."""
        try:
            await self._get()
        except BrokerUnavailable as exc:
            log.warning("collector started without a broker: %s", exc)

    async def _get(self) -> KafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._build_lock:
            if self._producer is not None:
                return self._producer
            if time.monotonic() - self._failed_build_at < REBUILD_BACKOFF_S:
                raise BrokerUnavailable(self._unreachable())
            try:
                self._producer = await asyncio.to_thread(KafkaProducer, **self._producer_config())
            except (KafkaError, OSError, ValueError) as exc:
                self._failed_build_at = time.monotonic()
                raise BrokerUnavailable(f"{self._unreachable()}: {exc}") from exc
            return self._producer

    def _unreachable(self) -> str:
        return f"KAFKA_BOOTSTRAP_SERVERS={self.settings.kafka.bootstrap_servers} unreachable"

    async def _discard(self, producer: KafkaProducer) -> None:
        """Stop using `producer`; it closes in the background once its pending records expire."""
        if self._producer is not producer:
            return
        self._producer = None
        closing = asyncio.get_running_loop().run_in_executor(
            None, _close_quietly, producer, self.settings.produce_timeout_s + 1
        )
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def close(self, timeout_s: float) -> None:
        """Flush what is in flight (graceful shutdown), then close."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(_close_quietly, producer, timeout_s)
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=timeout_s)
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None

    # -- producing

    async def send(self, records: Sequence[Record], headers: list[tuple[str, bytes]]) -> None:
        """Return once every record is acknowledged by the brokers, else raise BrokerUnavailable."""
        if not records:
            return
        deadline = self.settings.produce_timeout_s
        started = time.monotonic()
        producer = await self._get()
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[None] = loop.create_future()
        remaining = len(records)
        lock = threading.Lock()

        def settle(exc: BaseException | None) -> None:
            if acked.done():
                return
            if exc is None:
                acked.set_result(None)
            else:
                acked.set_exception(exc)

        def on_ack(_metadata: Any) -> None:
            nonlocal remaining
            self._acked_at = time.monotonic()
            with lock:
                remaining -= 1
                last = remaining == 0
            if last:
                loop.call_soon_threadsafe(settle, None)

        def on_error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(settle, exc)

        def send_all() -> None:
            # waits for the topic's metadata only when it is not known yet (bounded by max_block_ms)
            partitions = sorted(producer.partitions_for(self.topic))
            topic = self.topic
            try:
                for key, value in records:
                    future = producer.send(
                        topic,
                        key=key,
                        value=value,
                        headers=headers,
                        partition=partition_for(key, partitions),
                    )
                    future.add_callback(on_ack)
                    future.add_errback(on_error)
            except ValueError as exc:
                # the topic's partitions changed under the request (the metadata no longer knows
                # the topic, or one of the partitions it had a moment ago): a broker problem that
                # fresh metadata solves, not a fault of the request
                raise KafkaError(f"the partitions of {topic} changed: {exc}") from exc

        async def produce() -> None:
            await asyncio.to_thread(send_all)
            await acked

        try:
            await asyncio.wait_for(produce(), timeout=deadline)
            self._learn(None)
        except (TimeoutError, KafkaError) as exc:
            # start again from fresh metadata: a broker that lost its topics (the embedded one
            # keeps them in memory) acknowledges writes to a partition it no longer has when
            # the client does not ask for metadata first. Not after a mere timeout while the
            # brokers kept acknowledging: they are slow, not gone, and closing the producer
            # would fail every other request sharing it.
            if not (isinstance(exc, TimeoutError) and self._acked_at > started):
                await self._discard(producer)
            if isinstance(exc, TimeoutError):
                reason = f"no acknowledgement for {len(records)} event(s) within {deadline:.1f}s"
            elif isinstance(exc, KafkaTimeoutError):
                reason = f"{self._unreachable()}: {exc}"
            else:
                reason = f"produce failed: {exc!r}"
            self._learn(reason)
            raise BrokerUnavailable(reason) from exc

    # -- health

    def _probe_metadata(self) -> None:
        # a probe stuck on a silent broker must not pile up worker threads behind it
        if not self._probe_lock.acquire(blocking=False):
            raise KafkaTimeoutError("the previous health probe is still waiting for the broker")
        try:
            if self._probe is None:
                self._probe = KafkaConsumer(
                    **self.settings.kafka.client_config(),
                    client_id="trackflow-collector-health",
                    bootstrap_timeout_ms=int(HEALTH_TIMEOUT_S * 1000) - 500,
                    request_timeout_ms=int(HEALTH_TIMEOUT_S * 1000) - 500,
                    fetch_max_wait_ms=100,
                    enable_auto_commit=False,
                )
            try:
                self._probe.topics()
            except Exception:
                self._probe.close()
                self._probe = None
                raise
        finally:
            self._probe_lock.release()

    def _learn(self, problem: str | None) -> None:
        self._known = (time.monotonic(), problem)

    async def check(self) -> str | None:
        """None when the broker is reachable, else the reason it is not.

        What was learnt in the last HEALTH_FRESH_S (a probe, or a request's acks or failure)
        stands; otherwise a metadata request is made. Callers at the same moment share one
        probe: a second would find the first holding the probe lock and report the broker
        unavailable when it is only busy answering.
        """
        if self._known is not None and time.monotonic() - self._known[0] < HEALTH_FRESH_S:
            return self._known[1]
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(self._check_now())
        # shielded: a caller that goes away does not cancel the probe the others wait for
        return await asyncio.shield(self._check)

    async def _check_now(self) -> str | None:
        problem: str | None = None
        try:
            await asyncio.wait_for(asyncio.to_thread(self._probe_metadata), HEALTH_TIMEOUT_S)
        except TimeoutError:
            problem = f"{self._unreachable()}: no metadata answer within {HEALTH_TIMEOUT_S:.0f}s"
        except Exception as exc:
            problem = f"{self._unreachable()}: {exc}"
        self._learn(problem)
        return problem
