"""Dead-letter replay: re-validate rejected messages and load the ones that now pass, once.

Rejected rows stay in `raw.tracking_events_rejected` (the audit trail); every replay attempt is
recorded in `raw.tracking_events_replayed` by Kafka coordinates. Rows already replayed into
`raw.tracking_events` are never picked again, and the insert of the events and of their
markers happens in one DuckDB transaction, so a crash cannot load a message twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.events import ACCEPTED_COLUMNS, validate
from pipelines.kafka_source.settings import EVENTS_TABLE, RAW_DATASET, REJECTED_TABLE
from pipelines.privacy import PrivacySettings, drop_suppressed, minimise, suppressed_tokens

REPLAYED_TABLE = "tracking_events_replayed"


@dataclass(frozen=True)
class ReplayResult:
    examined: int
    loaded: int
    still_rejected: int


def replay_rejected(
    warehouse: Path, error_codes: list[str] | None = None, dry_run: bool = False
) -> ReplayResult:
    if not warehouse.exists():
        raise FileNotFoundError(f"warehouse {warehouse} does not exist; run 'trackflow ingest'")
    privacy = PrivacySettings.from_env(warehouse)
    suppressed = suppressed_tokens(warehouse)  # before the write connection: one config per file
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(
            f"""create table if not exists {RAW_DATASET}.{REPLAYED_TABLE} (
                _kafka_topic varchar, _kafka_partition integer, _kafka_offset bigint,
                replayed_at timestamptz, outcome varchar, error_code varchar)"""
        )
        where = ""
        params: list[object] = []
        if error_codes:
            where = "and r.error_code in (select unnest(?))"
            params.append(error_codes)
        pending = con.sql(
            f"""select r._kafka_topic, r._kafka_partition, r._kafka_offset,
                       r._kafka_timestamp::timestamp_ms as _kafka_timestamp,
                       r.key_bytes as key, r.payload as value
                from {RAW_DATASET}.{REJECTED_TABLE} r
                where not exists (
                  select 1 from {RAW_DATASET}.{REPLAYED_TABLE} p
                  where p.outcome = 'loaded' and p._kafka_topic = r._kafka_topic
                    and p._kafka_partition = r._kafka_partition
                    and p._kafka_offset = r._kafka_offset) {where}
                qualify row_number() over (
                  partition by r._kafka_topic, r._kafka_partition, r._kafka_offset) = 1""",
            params=params,
        ).to_arrow_table()
        from pipelines.events import MESSAGE_SCHEMA

        accepted, rejected = validate(pending.cast(MESSAGE_SCHEMA))
        accepted = minimise(accepted, privacy)
        accepted, rejected, _ = drop_suppressed(accepted, rejected, suppressed, privacy)
        if dry_run:
            return ReplayResult(pending.num_rows, accepted.num_rows, rejected.num_rows)
        now = datetime.now(UTC)
        load_id = f"replay-{now.strftime('%Y%m%dT%H%M%S%f')}"
        cols = ", ".join(ACCEPTED_COLUMNS)
        con.execute("begin transaction")
        con.register("accepted_rows", accepted)
        con.register("rejected_rows", rejected)
        con.execute(
            f"insert into {RAW_DATASET}.{EVENTS_TABLE} ({cols}, _dlt_load_id) "
            f"select {cols}, ? from accepted_rows",
            [load_id],
        )
        con.execute(
            f"""insert into {RAW_DATASET}.{REPLAYED_TABLE}
                select _kafka_topic, _kafka_partition, _kafka_offset, ?, 'loaded', null
                from accepted_rows
                union all
                select _kafka_topic, _kafka_partition, _kafka_offset, ?, 'still_rejected',
                       error_code
                from rejected_rows""",
            [now, now],
        )
        con.execute("commit")
        return ReplayResult(pending.num_rows, accepted.num_rows, rejected.num_rows)
    finally:
        con.close()
