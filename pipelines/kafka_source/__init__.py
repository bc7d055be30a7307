"""dlt source that drains Kafka topics into the raw tables, one bounded run at a time.

Tables (dataset `raw`):
- `tracking_events`: one row per accepted message, Kafka coordinates + typed envelope columns;
- `tracking_events_rejected`: one row per message that failed validation, with the original
  bytes, a stable `error_code` and a human `error_message` (`plan_violation`: an event that
  breaks the tracking plan under TRACKING_PLAN_MODE=block);
- `tracking_plan_violations`: with a tracking plan, one row per violation of it
  (pipelines/tracking_plan).

Micro-batches travel as Arrow tables (not row dicts through dlt's normalizer). The next offset of
every partition lives in this resource's dlt state, so it is committed together with the load
that contains the messages: a crash before the load commits re-reads them, a crash after it
does not. Staging deduplicates on messageId, so a re-read never double-counts.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from kafka import TopicPartition

from pipelines.config import IngestSettings
from pipelines.events import event_days, messages_table, validate
from pipelines.names import EVENTS_TABLE, OFFSETS_TABLE, REJECTED_TABLE, VIOLATIONS_TABLE
from pipelines.offsets import StoredOffsets
from pipelines.privacy import PrivacySettings, drop_suppressed, minimise
from pipelines.tracking_plan import VIOLATIONS_SCHEMA, TrackingPlan, check_batch
from pipelines.tracking_plan.check import Mode, violations_of_rows

from .helpers import DrainStats, KafkaSession, OffsetGapError
from .stage import staged

__all__ = ["Feed", "kafka_source", "state_offsets"]

# threads validating and minimising batches side by side (DuckDB releases the GIL): one alone
# could not keep up with the poller
STAGE_WORKERS = 2

OFFSETS_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("next_offset", pa.int64()),
        ("fingerprint", pa.string()),
        ("shard", pa.string()),
    ]
)


@dataclass(frozen=True)
class Batch:
    """One micro-batch after validation, the tracking plan and minimisation."""

    accepted: pa.Table
    rejected: pa.Table
    violations: pa.Table
    erased: int  # rows of erased people dropped
    last: dict[TopicPartition, tuple[int, str]]  # next offset and fingerprint per partition
    messages: int  # Kafka messages it was made of


@dataclass
class Feed:
    """The processed micro-batches of one drain, shared by the parts (loads) it is cut into.

    The poller and the stage threads outlive a part: while a part loads, they decode and
    validate the next part's first batches. A batch that was prepared but not loaded when the
    run ends (or fails) is simply dropped: offsets only advance with the loads.
    """

    batches: Generator[Batch, None, None] | None = None
    finished: bool = False  # the drain ended (caught up or a run limit)

    def close(self) -> None:
        if self.batches is not None:
            self.batches.close()


@dlt.source(name="kafka", max_table_nesting=0)
def kafka_source(
    kafka: KafkaSession | None,
    start_from: str | datetime = "earliest",
    *,
    stored: StoredOffsets | None = None,
    resume_from: str | datetime | None = None,
    check_gaps: bool = True,
    limits: IngestSettings | None = None,
    max_messages: int | None = None,
    stats: DrainStats | None = None,
    on_batch: Callable[[DrainStats], None] | None = None,
    privacy: PrivacySettings | None = None,
    suppressed: frozenset[str] = frozenset(),
    plan: TrackingPlan | None = None,
    plan_mode: Mode = "flag",
    feed: Feed | None = None,
    part_messages: int | None = None,
) -> Any:
    """One bounded drain of the session's topics, or one part of it; see the module docstring
    for the tables.

    The resource plans where each partition starts (its `stored` position, `start_from` for new
    partitions, and with `check_gaps` the gap checks: a gap raises OffsetGapError unless
    `resume_from` says where to restart), drains at most `max_messages` messages in all, and
    writes the positions it reached to raw.ingestion_offsets in the same load as the rows.

    A drain loaded in parts passes one `feed` to a source per part, each taking
    `part_messages` messages from it: the first plans and starts the drain, the others go on
    where the previous part stopped (their `stored`, `resume_from` and `check_gaps` are unused).
    """
    limits = limits or IngestSettings()
    stats = stats if stats is not None else DrainStats()

    @dlt.resource(name=EVENTS_TABLE, write_disposition="append")
    def tracking_events() -> Iterator[Any]:
        if kafka is None:
            raise ValueError("kafka_source needs an open KafkaSession to extract")
        state = dlt.current.resource_state()

        def process(drained: tuple[pa.Table, dict[TopicPartition, tuple[int, str]]]) -> Batch:
            messages, last = drained
            accepted, rejected = validate(messages, limits.max_event_bytes)
            violations = VIOLATIONS_SCHEMA.empty_table()
            erased = 0
            if plan is not None:
                # before minimisation: a blocked event's dead letter keeps the bytes it was sent
                # with, as every dead letter does, so a replay minimises it exactly once
                outcome = check_batch(accepted, plan, plan_mode)
                accepted, violations = outcome.kept, outcome.violations
                if outcome.blocked.num_rows:
                    rejected = pa.concat_tables([rejected, outcome.blocked.cast(rejected.schema)])
            if privacy is not None:
                accepted = minimise(accepted, privacy)
                accepted, rejected, erased = drop_suppressed(
                    accepted, rejected, suppressed, privacy
                )
                if erased and violations.num_rows:
                    violations = violations_of_rows(violations, accepted, rejected)
            return Batch(accepted, rejected, violations, erased, last, messages.num_rows)

        def tables(batch: Batch) -> Iterator[Any]:
            """The batch's rows for each table, stamped with the load id; counted in stats."""
            stats.suppressed += batch.erased
            if batch.violations.num_rows:
                stats.plan_violations += len(set(batch.violations.column("message_id").to_pylist()))
                yield dlt.mark.with_table_name(with_load_id(batch.violations), VIOLATIONS_TABLE)
            accepted, rejected = with_load_id(batch.accepted), with_load_id(batch.rejected)
            stats.accepted += accepted.num_rows
            stats.rejected += rejected.num_rows
            stats.event_days.update(event_days(accepted))
            if accepted.num_rows:
                yield accepted
            if rejected.num_rows:
                yield dlt.mark.with_table_name(rejected, REJECTED_TABLE)

        source_feed = feed if feed is not None else Feed()
        # where partitions now stand: a resume moves them (a vanished partition is dropped)
        reached: dict[TopicPartition, tuple[int, str | None]] = {}
        if source_feed.batches is None:
            positions, moved, gaps = kafka.plan(
                stored or {}, start_from, check_gaps=check_gaps, resume_from=resume_from
            )
            if gaps:
                raise OffsetGapError(gaps)
            reached.update({tp: (o, None) for tp, o in moved.items() if o is not None})
            stats.resumed_partitions += len(moved)
            drained = kafka.drain(
                positions,
                stats,
                batch_size=limits.batch_size,
                max_messages=max_messages or limits.max_messages,
                max_seconds=limits.max_seconds,
                part_size=part_messages,
            )
            # the next batches are validated on the stage threads while this one is written here
            source_feed.batches = staged(drained, process, workers=STAGE_WORKERS)
        if not state.get("tables_created"):
            # zero-row tables on the first run, so readers (dbt sources) always find them
            empty_accepted, empty_rejected = validate(messages_table([]))
            yield with_load_id(empty_accepted)
            yield dlt.mark.with_table_name(with_load_id(empty_rejected), REJECTED_TABLE)
            yield dlt.mark.with_table_name(
                with_load_id(OFFSETS_SCHEMA.empty_table()), OFFSETS_TABLE
            )
            state["tables_created"] = True
        if plan is not None and not state.get("violations_table_created"):
            # its own flag: a warehouse loaded before it had a plan gets the table on the first
            # run with one
            yield dlt.mark.with_table_name(
                with_load_id(VIOLATIONS_SCHEMA.empty_table()), VIOLATIONS_TABLE
            )
            state["violations_table_created"] = True

        batches, taken = source_feed.batches, 0
        try:
            while part_messages is None or taken < part_messages:
                batch = next(batches, None)
                if batch is None:
                    source_feed.finished = True
                    break
                taken += batch.messages
                yield from tables(batch)
                reached.update(batch.last)
                if on_batch:
                    on_batch(stats)
        finally:
            if feed is None:  # a feed of its own
                source_feed.close()
        if reached:
            # in the same extract as the rows: saved with the load or not at all
            positions_table = pa.table(
                [
                    pa.array([tp.topic for tp in reached], pa.string()),
                    pa.array([tp.partition for tp in reached], pa.int32()),
                    pa.array([nxt for nxt, _ in reached.values()], pa.int64()),
                    pa.array([fp for _, fp in reached.values()], pa.string()),
                    pa.array([str(kafka.shard)] * len(reached), pa.string()),
                ],
                schema=OFFSETS_SCHEMA,
            )
            yield dlt.mark.with_table_name(with_load_id(positions_table), OFFSETS_TABLE)

    return tracking_events


def state_offsets(pipeline: dlt.Pipeline) -> StoredOffsets:
    """Offsets kept in the pipeline's dlt state by runs before raw.ingestion_offsets existed."""
    state = pipeline.state.get("sources", {}).get("kafka", {})
    return dict(state.get("resources", {}).get(EVENTS_TABLE, {}).get("offsets", {}))


def with_load_id(table: pa.Table) -> pa.Table:
    """Stamp dlt's load id on every row here, so dlt's normalizer need not rewrite the files."""
    load_id = dlt.current.load_package_state()["load_id"]
    column = pc.fill_null(pa.nulls(table.num_rows, pa.string()), load_id)
    return table.append_column("_dlt_load_id", column)
