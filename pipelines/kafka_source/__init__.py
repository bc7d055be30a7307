"""dlt source that drains Kafka topics into the raw tables, one bounded run at a time.

Tables (dataset `raw`):
- `tracking_events`: one row per accepted message, Kafka coordinates + typed envelope columns;
- `tracking_events_rejected`: one row per message that failed validation, with the original
  bytes, a stable `error_code` and a human `error_message`.

Micro-batches travel as Arrow tables (not row dicts through dlt's normalizer). The next offset of
every partition lives in this resource's dlt state, so it is committed together with the load
that contains the messages: a crash before the load commits re-reads them, a crash after it
does not. Staging deduplicates on messageId, so a re-read never double-counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from kafka import TopicPartition

from pipelines.config import KafkaSettings
from pipelines.events import event_days, messages_table, validate

from .helpers import (
    DrainStats,
    PartitionPosition,
    connect,
    drain,
    initial_offsets,
    topic_partitions,
    watermarks,
)

if TYPE_CHECKING:
    from pipelines.privacy import PrivacySettings

from .settings import DEFAULT_BATCH_SIZE, EVENTS_TABLE, REJECTED_TABLE

__all__ = ["kafka_source"]


@dlt.source(name="kafka", max_table_nesting=0)
def kafka_source(
    settings: KafkaSettings,
    start_from: str | datetime = "earliest",
    resume_at: dict[TopicPartition, int | None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_messages: int = 5_000_000,
    max_seconds: float = 600.0,
    stats: DrainStats | None = None,
    on_batch: Callable[[DrainStats], None] | None = None,
    privacy: PrivacySettings | None = None,
    suppressed: frozenset[str] = frozenset(),
) -> Any:
    """One bounded drain of `settings.topics`; see the module docstring for the tables."""
    # imported here: pipelines.privacy reads this package's settings module
    from pipelines.privacy import drop_suppressed, minimise

    stats = stats if stats is not None else DrainStats()

    @dlt.resource(name=EVENTS_TABLE, write_disposition="append")
    def tracking_events() -> Iterator[Any]:
        state = dlt.current.resource_state()
        offsets: dict[str, dict[str, dict[str, Any]]] = state.setdefault("offsets", {})
        for tp, offset in (resume_at or {}).items():
            if offset is None:  # the partition is gone: forget it
                offsets.get(tp.topic, {}).pop(str(tp.partition), None)
            else:
                offsets.setdefault(tp.topic, {})[str(tp.partition)] = {"next": offset, "fp": None}
        if not state.get("tables_created"):
            # zero-row tables on the first run, so readers (dbt sources) always find both
            empty_accepted, empty_rejected = validate(messages_table([]))
            yield with_load_id(empty_accepted)
            yield dlt.mark.with_table_name(with_load_id(empty_rejected), REJECTED_TABLE)
            state["tables_created"] = True

        consumer = connect(settings)
        try:
            tps = topic_partitions(consumer, settings)
            begin, end = watermarks(consumer, tps, settings.bootstrap_servers)
            fresh = [tp for tp in tps if str(tp.partition) not in offsets.get(tp.topic, {})]
            starts = initial_offsets(consumer, fresh, start_from, begin, end)
            for tp in tps:
                if tp not in starts:
                    starts[tp] = int(offsets[tp.topic][str(tp.partition)]["next"])
            positions = [PartitionPosition(tp, starts[tp], end[tp]) for tp in tps]
            for messages, last in drain(
                consumer,
                positions,
                stats,
                batch_size=batch_size,
                max_messages=max_messages,
                max_seconds=max_seconds,
                servers=settings.bootstrap_servers,
            ):
                accepted, rejected = validate(messages)
                if privacy is not None:
                    accepted = minimise(accepted, privacy)
                    accepted, rejected, erased = drop_suppressed(
                        accepted, rejected, set(suppressed), privacy
                    )
                    stats.suppressed += erased
                accepted, rejected = with_load_id(accepted), with_load_id(rejected)
                stats.accepted += accepted.num_rows
                stats.rejected += rejected.num_rows
                stats.event_days.update(event_days(accepted))
                if accepted.num_rows:
                    yield accepted
                if rejected.num_rows:
                    yield dlt.mark.with_table_name(rejected, REJECTED_TABLE)
                # advanced in the same extract as the rows: saved with the load or not at all
                for tp, (nxt, fp) in last.items():
                    offsets.setdefault(tp.topic, {})[str(tp.partition)] = {"next": nxt, "fp": fp}
                if on_batch:
                    on_batch(stats)
        finally:
            consumer.close()

    return tracking_events


def with_load_id(table: pa.Table) -> pa.Table:
    """Stamp dlt's load id on every row here, so dlt's normalizer need not rewrite the files."""
    load_id = dlt.current.load_package_state()["load_id"]
    column = pc.fill_null(pa.nulls(table.num_rows, pa.string()), load_id)
    return table.append_column("_dlt_load_id", column)
