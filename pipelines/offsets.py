"""Where each Kafka partition's ingestion stands, kept in the warehouse with the rows it covers.

Every load writes, in the same dlt load package as its rows, one row per partition it advanced
to `raw.ingestion_offsets` (topic, partition, next offset, fingerprint of the last record). A
position counts once its load has completed (`raw._dlt_loads`, status 0): a crash before that
leaves the rows and the position unconfirmed together, and the messages are read again. The
latest confirmed position of a partition wins, whichever shard or host wrote it, so shards can
be added, removed or moved between hosts (an empty host reads its positions here) without
losing or repeating a partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.names import RAW_DLT_LOADS, RAW_EVENTS, RAW_OFFSETS, RAW_REJECTED
from pipelines.warehouse import Warehouse

# topic -> partition (as text) -> {"next": int, "fp": str | None}, as the source plans with
StoredOffsets = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Shard:
    """Partitions p with p % count == index (of every topic)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """`I/N`, e.g. `0/3`."""
        index, sep, count = spec.partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            shard = None
        if not sep or shard is None or not 0 <= shard.index < shard.count:
            raise ValueError(f"--shard {spec!r} must be I/N with 0 <= I < N, e.g. 0/2 and 1/2")
        return shard

    def owns(self, partition: int) -> bool:
        return partition % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# every partition: no sharding
ALL_PARTITIONS = Shard()


CONFIRMED_SQL = f"""
    select
        o.topic,
        o.partition,
        arg_max(o.next_offset, (l.inserted_at, o._dlt_load_id)) as next_offset,
        arg_max(o.fingerprint, (l.inserted_at, o._dlt_load_id)) as fingerprint
    from {RAW_OFFSETS} as o
    inner join {RAW_DLT_LOADS} as l on l.load_id = o._dlt_load_id and l.status = 0
    where o.topic in (select unnest($topics))
    group by o.topic, o.partition
"""


def confirmed_offsets(warehouse: Warehouse, topics: tuple[str, ...], shard: Shard) -> StoredOffsets:
    """The latest confirmed position of every partition of `topics` the shard owns."""
    if not warehouse.exists():
        return {}
    with warehouse.connect(read_only=True) as sql:
        if not (sql.has_table(RAW_OFFSETS) and sql.has_table(RAW_DLT_LOADS)):
            return {}
        rows = sql.rows(CONFIRMED_SQL, {"topics": list(topics)})
    stored: StoredOffsets = {}
    for topic, partition, nxt, fp in rows:
        if shard.owns(int(partition)):
            stored.setdefault(topic, {})[str(partition)] = {"next": int(nxt), "fp": fp}
    return stored


def discard_unconfirmed(warehouse: Warehouse, topics: tuple[str, ...], shard: Shard) -> int:
    """Delete what loads that never completed left in raw for the shard's partitions: rows past
    a partition's confirmed position, of a load `raw._dlt_loads` does not list as done.

    A load is several statements; a process killed between them leaves some tables written
    and the load unconfirmed. Its host loads it again when it restarts, but a shard started on
    another host reads those messages again from the confirmed position: without this they
    would be in raw twice. Call it after this host's own pending loads were finished.
    """
    if not warehouse.exists():
        return 0
    with warehouse.connect() as sql:
        if not (sql.has_table(RAW_OFFSETS) and sql.has_table(RAW_DLT_LOADS)):
            return 0
        deleted = 0
        with sql.transaction():
            sql.execute(
                "create or replace temp table trackflow_confirmed as " + CONFIRMED_SQL,
                {"topics": list(topics)},
            )
            for table, topic, partition, offset in (
                (RAW_EVENTS, "_kafka_topic", "_kafka_partition", "_kafka_offset"),
                (RAW_REJECTED, "_kafka_topic", "_kafka_partition", "_kafka_offset"),
                (RAW_OFFSETS, "topic", "partition", "next_offset - 1"),
            ):
                if not sql.has_table(table):
                    continue
                deleted += sql.delete(
                    f"{table} as t",
                    f"""t.{topic} in (select unnest(?))
                    and t.{partition} % ? = ?
                    and t._dlt_load_id not in (
                        select load_id from {RAW_DLT_LOADS} where status = 0)
                    and t.{offset} >= coalesce((
                        select c.next_offset from trackflow_confirmed as c
                        where c.topic = t.{topic} and c.partition = t.{partition}), 0)""",
                    [list(topics), shard.count, shard.index],
                )
        return deleted
