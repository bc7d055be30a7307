"""The micro-batch sensor: one run of `microbatch_job` (ingestion, then today's staging and marts)
as soon as the topic holds messages ingestion has not loaded.

The schedules wait on cron ticks (a minute at the least) and start two runs, ingestion then the
marts, each loading the definitions and starting dbt anew. The sensor looks every
`TRACKFLOW_MICROBATCH_INTERVAL_SECONDS` (10) at the consumer group's lag on the broker: each
ingestion commits the offsets it loaded to the group, so the broker answers "is there anything
new?" without opening the warehouse, whose DuckDB file a running load may hold. It skips while
any ingestion run (this job's, `ingest_job`'s, `everything_job`'s) is unfinished, so the queue
never piles up, and requests today's partition: days before today that a run loads events for
are re-built by `late_data_sensor`, as after any ingestion.

Each request's run key names the end offsets and the group's committed offsets it saw: a run that
failed before committing is not requested again for the same messages (no loop of failing runs);
new messages, or a run that committed part of a backlog, make a new key.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import dagster as dg
from dagster import RunsFilter
from kafka import TopicPartition

from orchestration.jobs import INGESTION_TAGS
from orchestration.resources import KafkaResource
from orchestration.schedules import UNFINISHED
from pipelines.config import KafkaSettings, OrchestrationSettings
from pipelines.kafka_source.helpers import BrokerUnavailable, IngestError, KafkaSession

SENSOR_NAME = "microbatch_sensor"
TRIGGER_TAG = "trackflow/trigger"
LAG_TAG = "trackflow/lag"


def build_microbatch_sensor(
    job: dg.UnresolvedAssetJobDefinition,
    partitions: dg.PartitionsDefinition,
    settings: OrchestrationSettings,
) -> dg.SensorDefinition:
    """`microbatch_sensor` on `job` (stopped until switched on, like the schedules)."""

    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=settings.microbatch_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def microbatch_sensor(
        context: dg.SensorEvaluationContext, kafka: KafkaResource
    ) -> dg.RunRequest | dg.SkipReason:
        """A micro-batch run of today's partition when the topic holds unloaded messages."""
        return microbatch_request(context.instance, kafka.settings(), partitions)

    return microbatch_sensor


def microbatch_request(
    instance: dg.DagsterInstance,
    kafka: KafkaSettings,
    partitions: dg.PartitionsDefinition,
    now: datetime | None = None,
) -> dg.RunRequest | dg.SkipReason:
    """The sensor's decision. A broker that does not answer fails the tick (BrokerUnavailable,
    one line naming the servers): the sensor's page shows it, and the next tick tries again."""
    running = instance.get_run_records(
        filters=RunsFilter(tags=INGESTION_TAGS, statuses=UNFINISHED), limit=1
    )
    if running:
        run = running[0].dagster_run
        return dg.SkipReason(f"ingestion run {run.run_id} ({run.job_name}) has not finished")
    try:
        with KafkaSession(kafka) as session:
            end, lag = session.group_lag()
    except BrokerUnavailable:
        raise
    except IngestError as exc:  # no topic yet: nothing to load
        return dg.SkipReason(str(exc))
    total = sum(lag.values())
    if not total:
        return dg.SkipReason(
            f"no messages past the committed offsets of group {kafka.consumer_group}"
        )
    today = (now or datetime.now(UTC)).astimezone(UTC).date().isoformat()
    if not partitions.has_partition_key(today):
        return dg.SkipReason(f"no day partition {today} (see TRACKFLOW_PARTITIONS_START)")
    return dg.RunRequest(
        run_key=_run_key(end, lag),
        partition_key=today,
        tags={TRIGGER_TAG: SENSOR_NAME, LAG_TAG: str(total)},
    )


def _run_key(end: dict[TopicPartition, int], lag: dict[TopicPartition, int]) -> str:
    h = hashlib.blake2b(digest_size=10)
    for tp in sorted(end):
        # end - lag: where the group stands (committed, or the partition's first offset)
        h.update(f"{tp.topic}[{tp.partition}]={end[tp] - lag[tp]}..{end[tp]};".encode())
    return f"microbatch-{h.hexdigest()}"
