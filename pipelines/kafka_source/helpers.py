"""Kafka plumbing of the source: one consumer per run that connects, plans positions (with the
gap checks), drains, and finally mirrors the loaded offsets into the consumer group.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any

import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipelines.config import KafkaSettings
from pipelines.events import MESSAGE_SCHEMA
from pipelines.gaps import Gap
from pipelines.offsets import ALL_PARTITIONS, Shard, StoredOffsets

from .settings import (
    CONNECT_ATTEMPTS,
    CONNECT_BACKOFF_S,
    CONSUMER_DEFAULTS,
    EMPTY_POLLS_TO_STOP,
    FLUSH_MAX_SECONDS,
    FLUSH_POLL_TIMEOUT_MS,
    POLL_TIMEOUT_MS,
    REACHABLE_TIMEOUT_MS,
)
from .stage import DONE, received


class IngestError(RuntimeError):
    """A failure with a one-line reason meant for the operator."""


class BrokerUnavailable(IngestError):
    pass


class OffsetGapError(IngestError):
    """The broker no longer holds the next offset to load (retention, topic recreated)."""

    def __init__(self, gaps: list[Gap], reason: str | None = None) -> None:
        self.gaps = gaps
        if reason is None:
            first = gaps[0]
            more = f" (and {len(gaps) - 1} more partitions)" if len(gaps) > 1 else ""
            reason = f"{first.describe()}{more}. {RESUME_HINT}"
        super().__init__(reason)

    @classmethod
    def from_reason(cls, reason: str) -> OffsetGapError:
        """A gap another process found (its details are in raw.ingestion_gaps)."""
        return cls([], reason)


RESUME_HINT = (
    "Nothing was loaded and no offset moved; the gap is recorded in raw.ingestion_gaps. "
    "To resume, accept the gap explicitly: 'trackflow ingest --resume-from earliest' "
    "(or --resume-from 2026-01-31T00:00:00Z to restart at a time)"
)


def fingerprint(timestamp_ms: int | None, value: bytes | None) -> str:
    """Identity of one record, to notice a topic that was recreated under the same offsets."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(timestamp_ms).encode())
    h.update(value if value is not None else b"\x00tombstone")
    return h.hexdigest()


@dataclass
class PartitionPosition:
    tp: TopicPartition
    start: int  # first offset this run reads
    end_at_start: int  # end offset captured when the run began (approximate on Tansu)


@dataclass
class DrainStats:
    messages: int = 0
    accepted: int = 0
    rejected: int = 0
    batches: int = 0
    suppressed: int = 0  # rows of erased people dropped at ingestion
    plan_violations: int = 0  # events that break the tracking plan (kept or dead-lettered)
    resumed_partitions: int = 0  # partitions restarted past a recorded gap (--resume-from)
    stopped_because: str = ""
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    event_days: set[date] = field(default_factory=set)  # days of accepted events (late data)
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def connect(settings: KafkaSettings, **overrides: Any) -> KafkaConsumer:
    """A consumer with no subscription (manual assignment); retries with backoff, then fails."""
    delay = CONNECT_BACKOFF_S
    last: Exception | None = None
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return KafkaConsumer(
                group_id=settings.consumer_group,
                **{**CONSUMER_DEFAULTS, **settings.client_config(), **overrides},
            )
        except (KafkaError, OSError) as exc:
            last = exc
            if attempt < CONNECT_ATTEMPTS:
                time.sleep(delay)
                delay *= 2
    raise BrokerUnavailable(
        f"KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap_servers} unreachable after "
        f"{CONNECT_ATTEMPTS} tries ({type(last).__name__}); start one with "
        "'trackflow broker start' or fix the address"
    )


def parse_start(spec: str) -> str | datetime:
    """'earliest' | 'latest' | an ISO-8601 time."""
    if spec in ("earliest", "latest"):
        return spec
    try:
        when = datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(
            f"start position {spec!r} is not 'earliest', 'latest' or an ISO-8601 time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def check_positions(
    topics: tuple[str, ...],
    stored: StoredOffsets,
    tps: list[TopicPartition],
    begin: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    verify: Callable[[dict[TopicPartition, dict[str, Any]]], list[Gap]] | None = None,
) -> list[Gap]:
    """Compare stored offsets with what the broker holds now.

    Below the log start means retention deleted unloaded messages. Otherwise the last loaded
    record must still be at `next - 1` with the same fingerprint (`verify` reads those
    records); a missing or different record means the broker lost its data or the topic was
    recreated.
    """
    gaps: list[Gap] = []
    known = set(tps)
    to_verify: dict[TopicPartition, dict[str, Any]] = {}
    for topic, parts in stored.items():
        if topic not in topics:
            continue
        for part, pos in parts.items():
            tp = TopicPartition(topic, int(part))
            nxt = int(pos["next"])
            if tp not in known:
                gaps.append(
                    Gap(
                        topic,
                        tp.partition,
                        "partition_missing",
                        nxt,
                        None,
                        None,
                        f"partition no longer exists; next offset to load was {nxt}",
                    )
                )
            elif nxt < begin[tp]:
                gaps.append(
                    Gap(
                        topic,
                        tp.partition,
                        "retention",
                        nxt,
                        begin[tp],
                        end[tp],
                        f"next offset {nxt} is below the log start {begin[tp]}: "
                        f"{begin[tp] - nxt} messages were deleted before they were loaded",
                    )
                )
            elif nxt > begin[tp] and pos.get("fp"):
                to_verify[tp] = pos
    if to_verify and verify is not None:
        gaps.extend(verify(to_verify))
    return gaps


def _last_record_gaps(
    seen: dict[TopicPartition, Any],
    verify: dict[TopicPartition, dict[str, Any]],
    begin: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
) -> list[Gap]:
    gaps = []
    for tp, pos in verify.items():
        nxt = int(pos["next"])
        rec = seen.get(tp)
        if rec is None:
            gaps.append(
                Gap(
                    tp.topic,
                    tp.partition,
                    "offsets_reset",
                    nxt,
                    begin[tp],
                    end[tp],
                    f"the broker no longer holds offset {nxt - 1} (last loaded); its log now ends "
                    f"near {end[tp]}: the broker lost its data or the topic was recreated",
                )
            )
        elif rec.offset != nxt - 1 or fingerprint(rec.timestamp, rec.value) != pos["fp"]:
            gaps.append(
                Gap(
                    tp.topic,
                    tp.partition,
                    "topic_recreated",
                    nxt,
                    begin[tp],
                    end[tp],
                    f"the record at offset {nxt - 1} is not the one loaded last: "
                    "the topic was recreated or rewritten",
                )
            )
    return gaps


class KafkaSession:
    """The consumer of an ingestion run, from planning to the consumer-group commit (reading
    back the last loaded records, when there are any, takes a second, short-lived one).

    Use as a context manager; every method raises BrokerUnavailable (a one-line reason) when
    the brokers stop answering.
    """

    def __init__(self, settings: KafkaSettings, shard: Shard = ALL_PARTITIONS) -> None:
        self.settings = settings
        self.shard = shard
        self.consumer = connect(settings)
        self._partitions: list[TopicPartition] | None = None

    def __enter__(self) -> KafkaSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.consumer.close()

    def partitions(self) -> list[TopicPartition]:
        """Every partition of the configured topics this shard owns (asked once per run)."""
        if self._partitions is None:
            tps: list[TopicPartition] = []
            for topic in self.settings.topics:
                parts = self.consumer.partitions_for_topic(topic)
                if not parts:
                    raise IngestError(
                        f"topic {topic!r} does not exist on {self.settings.bootstrap_servers}; "
                        "produce to it first or set TRACKING_TOPIC"
                    )
                tps.extend(TopicPartition(topic, p) for p in sorted(parts) if self.shard.owns(p))
            self._partitions = tps
        return self._partitions

    def watermarks(
        self, tps: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        try:
            return self.consumer.beginning_offsets(tps), self.consumer.end_offsets(tps)
        except KafkaError as exc:
            raise BrokerUnavailable(
                f"KAFKA_BOOTSTRAP_SERVERS={self.settings.bootstrap_servers} stopped answering "
                f"({type(exc).__name__})"
            ) from exc

    def plan(
        self,
        stored: StoredOffsets,
        start_from: str | datetime,
        *,
        check_gaps: bool,
        resume_from: str | datetime | None = None,
    ) -> tuple[list[PartitionPosition], dict[TopicPartition, int | None], list[Gap]]:
        """Where this part starts reading each partition.

        Returns (positions, moved, gaps): `moved` holds the partitions whose stored offset a
        resume replaces (None: the partition is gone, forget it); `gaps` is non-empty only when
        gaps were found and no resume was asked for (then nothing may be read).
        """
        tps = self.partitions()
        begin, end = self.watermarks(tps)
        stored = {  # another shard's partitions are not this run's business
            topic: {p: pos for p, pos in parts.items() if self.shard.owns(int(p))}
            for topic, parts in stored.items()
        }
        moved: dict[TopicPartition, int | None] = {}
        if check_gaps and stored:
            gaps = check_positions(
                self.settings.topics,
                stored,
                tps,
                begin,
                end,
                verify=lambda pending: self._verify_last_records(pending, begin, end),
            )
            if gaps and resume_from is None:
                return [], {}, gaps
            if gaps:
                gap_tps = [TopicPartition(g.topic, g.partition) for g in gaps]
                live = [tp for tp in gap_tps if tp in begin]
                targets = self.initial_offsets(live, resume_from or "earliest", begin, end)
                moved = {tp: targets.get(tp) for tp in gap_tps}
        known = {
            TopicPartition(topic, int(part)): int(pos["next"])
            for topic, parts in stored.items()
            for part, pos in parts.items()
        }
        known.update({tp: o for tp, o in moved.items() if o is not None})
        fresh = [tp for tp in tps if tp not in known]
        starts = self.initial_offsets(fresh, start_from, begin, end)
        starts.update({tp: known[tp] for tp in tps if tp in known})
        return [PartitionPosition(tp, starts[tp], end[tp]) for tp in tps], moved, []

    def initial_offsets(
        self,
        tps: list[TopicPartition],
        start: str | datetime,
        begin: dict[TopicPartition, int],
        end: dict[TopicPartition, int],
    ) -> dict[TopicPartition, int]:
        """Where partitions that have never been loaded start."""
        if not tps:
            return {}
        if start == "earliest":
            return {tp: begin[tp] for tp in tps}
        if start == "latest":
            return {tp: end[tp] for tp in tps}
        assert isinstance(start, datetime)
        found = self.consumer.offsets_for_times({tp: int(start.timestamp() * 1000) for tp in tps})
        # no message at or after the time: start at the end, so only newer messages load
        return {tp: (found[tp].offset if found.get(tp) else end[tp]) for tp in tps}

    def _verify_last_records(
        self,
        verify: dict[TopicPartition, dict[str, Any]],
        begin: dict[TopicPartition, int],
        end: dict[TopicPartition, int],
    ) -> list[Gap]:
        """Read the last loaded record of each partition back (same offset, same content?).

        On a consumer of its own: after seeking back, pausing and resuming partitions here,
        kafka-python's consumer fetched nothing more from some of them in the drain that
        followed (seen on the embedded broker after crashes; a silent stall that looked like
        being caught up).
        """
        consumer = connect(self.settings)
        try:
            consumer.assign(list(verify))
            for tp, pos in verify.items():
                consumer.seek(tp, int(pos["next"]) - 1)
            seen: dict[TopicPartition, Any] = {}
            empty = 0
            deadline = time.monotonic() + 15
            while len(seen) < len(verify) and empty < 3 and time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=len(verify) * 500)
                if not batch:
                    empty += 1
                    continue
                for tp, records in batch.items():
                    if tp not in seen and records:
                        seen[tp] = records[0]
                        consumer.pause(tp)
        finally:
            consumer.close()
        return _last_record_gaps(seen, verify, begin, end)

    def drain(
        self,
        positions: list[PartitionPosition],
        stats: DrainStats,
        *,
        batch_size: int,
        max_messages: int,
        max_seconds: float,
        part_size: int | None = None,
    ) -> Iterator[tuple[pa.Table, dict[TopicPartition, tuple[int, str]]]]:
        """See `drain`."""
        return drain(
            self.consumer,
            positions,
            stats,
            batch_size=batch_size,
            max_messages=max_messages,
            max_seconds=max_seconds,
            part_size=part_size,
            servers=self.settings.bootstrap_servers,
        )

    def commit(self, offsets: dict[TopicPartition, int]) -> str | None:
        """Mirror loaded offsets into the consumer group (for lag tools); an error or None."""
        if not offsets:
            return None
        try:
            self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
            return None
        except KafkaError as exc:
            return f"could not commit offsets to group {self.settings.consumer_group}: {exc}"

    def lag(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Messages left after `offsets`, per partition ({} when the brokers do not answer)."""
        if not offsets:
            return {}
        try:
            end = self.consumer.end_offsets(list(offsets))
        except KafkaError:
            return {}
        # Tansu's end offsets can trail the true end by a batch: clamp at zero
        return {tp: max(0, end[tp] - o) for tp, o in offsets.items()}

    def group_lag(self) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """(end offsets, messages past the consumer group's committed offsets) per partition.

        The broker's view of what ingestion has not loaded yet: each run commits its loaded
        offsets to the group, so this answers without touching the warehouse (whose file a
        running load may hold). A partition the group never committed counts from its first
        offset. Raises BrokerUnavailable when the brokers stop answering."""
        tps = self.partitions()
        beginning, end = self.watermarks(tps)
        try:
            committed = {
                tp: self.consumer.committed(tp, timeout_ms=REACHABLE_TIMEOUT_MS) for tp in tps
            }
        except KafkaError as exc:
            raise BrokerUnavailable(
                f"KAFKA_BOOTSTRAP_SERVERS={self.settings.bootstrap_servers} stopped answering "
                f"({type(exc).__name__})"
            ) from exc
        lag: dict[TopicPartition, int] = {}
        for tp in tps:
            start = committed[tp] if committed[tp] is not None else beginning[tp]
            # Tansu's end offsets can trail the true end by a batch: clamp at zero
            lag[tp] = max(0, end[tp] - start)
        return end, lag


def drain(
    consumer: KafkaConsumer,
    positions: list[PartitionPosition],
    stats: DrainStats,
    *,
    batch_size: int,
    max_messages: int,
    max_seconds: float,
    servers: str,
    part_size: int | None = None,
) -> Iterator[tuple[pa.Table, dict[TopicPartition, tuple[int, str]]]]:
    """Yield (messages, last record per partition) micro-batches until caught up or a limit.
    With `part_size`, no batch straddles a multiple of it (the drain's parts end on a batch).

    Polling runs in a background thread so the next fetch overlaps with validating and loading
    the previous batch (DuckDB and Arrow release the GIL). Stops at the first empty poll once every
    partition has passed the end offset captured at start (a lower bound of the true end) or
    FLUSH_MAX_SECONDS after passing it (new traffic is the next run's), after consecutive empty
    polls below it, or at max_messages / max_seconds. Offsets are only advanced by the caller,
    with the load.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()
    poller = threading.Thread(
        target=_poll_batches,
        kwargs={
            "ready": ready,
            "consumer": consumer,
            "positions": positions,
            "stats": stats,
            "stop": stop,
            "batch_size": batch_size,
            "max_messages": max_messages,
            "max_seconds": max_seconds,
            "part_size": part_size or max_messages,
            "servers": servers,
        },
        name="kafka-poller",
        daemon=True,
    )
    poller.start()
    try:
        yield from received(ready)
    finally:
        stop.set()
        while poller.is_alive():  # unblock a poller waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                poller.join(0.05)


def _poll_batches(ready: queue.Queue[Any], **loop_args: Any) -> None:
    """Thread body: run the poll loop, then hand over DONE or the exception that ended it."""
    try:
        _poll_loop(ready=ready, **loop_args)
        ready.put(DONE)
    except BaseException as exc:  # handed to the consuming thread, which re-raises it
        ready.put(exc)


def _poll_loop(
    consumer: KafkaConsumer,
    positions: list[PartitionPosition],
    stats: DrainStats,
    ready: queue.Queue[Any],
    stop: threading.Event,
    *,
    batch_size: int,
    max_messages: int,
    max_seconds: float,
    part_size: int,
    servers: str,
) -> None:
    consumer.assign([p.tp for p in positions])
    for p in positions:
        consumer.seek(p.tp, p.start)
    target = {p.tp: p.end_at_start for p in positions}
    nxt = {p.tp: p.start for p in positions}
    stats.next_offsets = dict(nxt)
    cols: list[list[Any]] = [[], [], [], [], [], []]
    last: dict[TopicPartition, tuple[int, str]] = {}
    empty_polls = 0
    # past the end offsets captured at start: stop at the first empty poll. Those offsets are a
    # lower bound (Tansu's trail the true end by up to a batch), so "past them" still waits for
    # one fetch; the very first poll waits the full timeout (nothing is fetched yet).
    flushing = all(nxt[tp] >= target[tp] for tp in target)
    first_poll = True
    flush_until: float | None = None  # set after the first poll made while flushing

    def emit() -> None:
        nonlocal cols, last
        table = pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(cols, MESSAGE_SCHEMA, strict=True)],
            schema=MESSAGE_SCHEMA,
        )
        stats.batches += 1
        ready.put((table, last))
        cols, last = [[], [], [], [], [], []], {}

    while not stop.is_set():
        if stats.messages >= max_messages:
            stats.stopped_because = "max_messages"
            break
        if stats.seconds >= max_seconds:
            stats.stopped_because = "max_seconds"
            break
        part_room = part_size - stats.messages % part_size
        room = min(batch_size - len(cols[0]), max_messages - stats.messages, part_room)
        wait = FLUSH_POLL_TIMEOUT_MS if flushing and not first_poll else POLL_TIMEOUT_MS
        batch = consumer.poll(timeout_ms=wait, max_records=room)
        first_poll = False
        if flushing and flush_until is None:
            flush_until = time.monotonic() + FLUSH_MAX_SECONDS
        if not batch:
            if flushing:
                stats.stopped_because = "caught_up"
                break
            empty_polls += 1
            if empty_polls >= EMPTY_POLLS_TO_STOP:
                _ensure_reachable(consumer, list(target), servers)
                stats.stopped_because = "caught_up"
                break
            continue
        empty_polls = 0
        for tp, records in batch.items():
            if not records:
                continue
            cols[0].extend([tp.topic] * len(records))
            cols[1].extend([tp.partition] * len(records))
            cols[2].extend([r.offset for r in records])
            cols[3].extend([r.timestamp for r in records])
            cols[4].extend([r.key for r in records])
            cols[5].extend([r.value for r in records])
            tail = records[-1]
            last[tp] = (tail.offset + 1, fingerprint(tail.timestamp, tail.value))
            nxt[tp] = tail.offset + 1
            stats.messages += len(records)
        stats.next_offsets = dict(nxt)
        if len(cols[0]) >= batch_size or stats.messages % part_size == 0:
            emit()
        if not flushing and all(nxt[tp] >= target[tp] for tp in target):
            flushing = True
        if flush_until is not None and time.monotonic() >= flush_until:
            stats.stopped_because = "caught_up"  # with everything there when the run started
            break
    if cols[0] and not stop.is_set():
        emit()


def _ensure_reachable(consumer: KafkaConsumer, tps: list[TopicPartition], servers: str) -> None:
    """Empty polls also happen when the broker is gone; tell the two apart before stopping."""
    try:
        consumer.end_offsets(tps, timeout_ms=REACHABLE_TIMEOUT_MS)
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"KAFKA_BOOTSTRAP_SERVERS={servers} stopped answering mid-drain "
            f"({type(exc).__name__}); nothing from this run was loaded, offsets unchanged"
        ) from exc
