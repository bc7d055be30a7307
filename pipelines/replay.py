"""Dead-letter replay: re-validate rejected messages and load the ones that now pass, once.

Rejected rows stay in `raw.tracking_events_rejected` (the audit trail); every replay attempt is
recorded in `raw.tracking_events_replayed` by Kafka coordinates. Rows already replayed into
`raw.tracking_events` are never picked again, and the insert of the events and of their
markers happens in one transaction, so a crash cannot load a message twice.

With a tracking plan (TRACKING_PLAN) replayed messages meet the plan as it is now, under the
current TRACKING_PLAN_MODE: fixing the plan (or switching to `flag`) and replaying
`--error-code plan_violation` loads what the plan blocked. The violations of the messages a
replay loads are recorded with them; a message the plan still blocks stays a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from pipelines.config import IngestSettings, PrivacyConfig, TrackingPlanSettings
from pipelines.events import ACCEPTED_COLUMNS, MESSAGE_SCHEMA, validate
from pipelines.names import RAW_EVENTS, RAW_REJECTED, RAW_REPLAYED, RAW_VIOLATIONS
from pipelines.privacy import PrivacySettings, drop_suppressed, minimise, suppressed_tokens
from pipelines.tracking_plan import VIOLATIONS_SCHEMA, check_batch, load_plan
from pipelines.tracking_plan.check import violations_of_rows
from pipelines.warehouse import Warehouse, WarehouseMissing


@dataclass(frozen=True)
class ReplayResult:
    examined: int
    loaded: int
    still_rejected: int


def replay_rejected(
    warehouse: Warehouse,
    error_codes: list[str] | None = None,
    dry_run: bool = False,
    *,
    limits: IngestSettings | None = None,
    privacy: PrivacyConfig | None = None,
    tracking_plan: TrackingPlanSettings | None = None,
) -> ReplayResult:
    """Raises PlanError for a bad plan, before anything is read."""
    plan_settings = tracking_plan or TrackingPlanSettings.from_env()
    plan = load_plan(plan_settings.plan_file) if plan_settings.plan_file else None
    if not warehouse.exists():
        raise WarehouseMissing(f"{warehouse.describe()} does not exist; run 'trackflow ingest'")
    limits = limits or IngestSettings.from_env()
    rules = PrivacySettings.resolve(privacy or PrivacyConfig.from_env(), warehouse)
    suppressed = suppressed_tokens(warehouse)
    with warehouse.connect() as sql:
        sql.execute(
            f"""create table if not exists {RAW_REPLAYED} (
                _kafka_topic varchar, _kafka_partition integer, _kafka_offset bigint,
                replayed_at timestamptz, outcome varchar, error_code varchar)"""
        )
        where = ""
        params: list[object] = []
        if error_codes:
            where = "and r.error_code in (select unnest(?))"
            params.append(error_codes)
        pending = sql.arrow(
            f"""select r._kafka_topic, r._kafka_partition, r._kafka_offset,
                       r._kafka_timestamp::timestamp_ms as _kafka_timestamp,
                       r.key_bytes as key, r.payload as value
                from {RAW_REJECTED} r
                where not exists (
                  select 1 from {RAW_REPLAYED} p
                  where p.outcome = 'loaded' and p._kafka_topic = r._kafka_topic
                    and p._kafka_partition = r._kafka_partition
                    and p._kafka_offset = r._kafka_offset) {where}
                qualify row_number() over (
                  partition by r._kafka_topic, r._kafka_partition, r._kafka_offset) = 1""",
            params,
        )
        accepted, rejected = validate(pending.cast(MESSAGE_SCHEMA), limits.max_event_bytes)
        violations = VIOLATIONS_SCHEMA.empty_table()
        if plan is not None:  # as ingestion does: on the message as sent, before minimisation
            outcome = check_batch(accepted, plan, plan_settings.plan_mode)
            accepted, violations = outcome.kept, outcome.violations
            if outcome.blocked.num_rows:
                rejected = pa.concat_tables([rejected, outcome.blocked.cast(rejected.schema)])
        accepted = minimise(accepted, rules)
        accepted, rejected, _ = drop_suppressed(accepted, rejected, suppressed, rules)
        # only the violations of the messages this replay loads (erased people's are dropped)
        violations = violations_of_rows(violations, accepted)
        result = ReplayResult(pending.num_rows, accepted.num_rows, rejected.num_rows)
        if dry_run:
            return result
        now = datetime.now(UTC)
        load_id = f"replay-{now.strftime('%Y%m%dT%H%M%S%f')}"
        cols = ", ".join(ACCEPTED_COLUMNS)
        sql.register("accepted_rows", accepted)
        sql.register("rejected_rows", rejected)
        if violations.num_rows:
            sql.execute(f"create table if not exists {RAW_VIOLATIONS} ({_VIOLATION_COLUMNS})")
            sql.register("violation_rows", violations)
        with sql.transaction():
            sql.execute(
                f"insert into {RAW_EVENTS} ({cols}, _dlt_load_id) "
                f"select {cols}, ? from accepted_rows",
                [load_id],
            )
            sql.execute(
                f"""insert into {RAW_REPLAYED}
                    select _kafka_topic, _kafka_partition, _kafka_offset, ?, 'loaded', null
                    from accepted_rows
                    union all
                    select _kafka_topic, _kafka_partition, _kafka_offset, ?, 'still_rejected',
                           error_code
                    from rejected_rows""",
                [now, now],
            )
            if violations.num_rows:
                names = ", ".join(VIOLATIONS_SCHEMA.names)
                sql.execute(
                    f"insert into {RAW_VIOLATIONS} ({names}, _dlt_load_id) "
                    f"select {names}, ? from violation_rows",
                    [load_id],
                )
        return result


# the violations table as ingestion's dlt load creates it, for a warehouse that has none yet
_VIOLATION_COLUMNS = ", ".join(
    [
        *(
            f"{f.name} "
            + {"string": "varchar", "int32": "integer", "int64": "bigint"}.get(
                str(f.type), "timestamptz"
            )
            for f in VIOLATIONS_SCHEMA
        ),
        "_dlt_load_id varchar",
    ]
)
