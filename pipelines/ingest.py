"""One bounded ingestion run: it sequences the dlt steps around the Kafka source.

Recover (load what a crashed run left), then extract / normalize / load in parts, then mirror the
loaded offsets into the consumer group. Where each partition starts, gaps included, is the
source's business (pipelines/kafka_source); the warehouse is whatever the seam names.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed
from kafka import TopicPartition

from pipelines.config import IngestSettings, KafkaSettings, PrivacyConfig, TrackingPlanSettings
from pipelines.gaps import record_gaps, resolve_gaps
from pipelines.ingest_metrics import write_ingest_metrics
from pipelines.kafka_source import Feed, kafka_source, state_offsets
from pipelines.kafka_source.helpers import (
    DrainStats,
    IngestError,
    KafkaSession,
    OffsetGapError,
    parse_start,
)
from pipelines.names import PIPELINE_NAME, RAW
from pipelines.offsets import (
    ALL_PARTITIONS,
    Shard,
    StoredOffsets,
    confirmed_offsets,
    discard_unconfirmed,
)
from pipelines.privacy import PrivacyError, PrivacySettings, suppressed_tokens
from pipelines.tracking_plan import PlanError, TrackingPlan, load_plan
from pipelines.warehouse import Warehouse, WarehouseError, open_warehouse

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    messages: int
    loaded: int
    rejected: int
    seconds: float
    stopped_because: str
    offsets: dict[str, int]  # "topic[partition]" -> next offset
    lag: dict[str, int]
    event_days: list[date] = field(default_factory=list)
    load_id: str | None = None
    commit_error: str | None = None
    resumed_gaps: int = 0
    suppressed: int = 0
    plan_violations: int = 0  # events that broke the tracking plan (kept or dead-lettered)
    plan_version: str | None = None

    @property
    def events_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "event_days": [d.isoformat() for d in self.event_days]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IngestResult:
        return cls(**{**data, "event_days": [date.fromisoformat(d) for d in data["event_days"]]})

    @classmethod
    def combined(cls, results: list[IngestResult]) -> IngestResult:
        """One result for shards that ran side by side."""
        return cls(
            messages=sum(r.messages for r in results),
            loaded=sum(r.loaded for r in results),
            rejected=sum(r.rejected for r in results),
            seconds=max((r.seconds for r in results), default=0.0),
            stopped_because=",".join(sorted({r.stopped_because for r in results})),
            offsets={k: v for r in results for k, v in r.offsets.items()},
            lag={k: v for r in results for k, v in r.lag.items()},
            event_days=sorted({d for r in results for d in r.event_days}),
            load_id=max((r.load_id for r in results if r.load_id), default=None),
            commit_error=next((r.commit_error for r in results if r.commit_error), None),
            resumed_gaps=sum(r.resumed_gaps for r in results),
            suppressed=sum(r.suppressed for r in results),
            plan_violations=sum(r.plan_violations for r in results),
            plan_version=next((r.plan_version for r in results if r.plan_version), None),
        )

    def summary(self) -> str:
        plan = (
            f"{self.plan_violations} broke tracking plan {self.plan_version}, "
            if self.plan_version
            else ""
        )
        return (
            f"loaded {self.loaded} events, rejected {self.rejected}, {plan}"
            f"{self.events_per_second:,.0f} events/s, lag {self.total_lag} "
            f"({', '.join(f'{k}={v}' for k, v in sorted(self.lag.items())) or 'no partitions'})"
        )


def pipeline_for(warehouse: Warehouse, pipeline_name: str = PIPELINE_NAME) -> dlt.Pipeline:
    # a loaded package keeps a copy of its rows (parquet) unless told otherwise: personal data
    # would outlive an erasure there, and the working dir would grow with every load
    dlt.config["load.delete_completed_jobs"] = True
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        pipelines_dir=str(warehouse.dlt_pipelines_dir()),
        destination=warehouse.dlt_destination(),
        dataset_name=RAW,
    )


def _label(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"


def pipeline_name_for(shard: Shard) -> str:
    """One dlt pipeline (local working state) per shard, so shards can share a host."""
    return (
        PIPELINE_NAME
        if shard.count == 1
        else f"{PIPELINE_NAME}_shard_{shard.index}_of_{shard.count}"
    )


# a load that conflicts with another writer's commit (DuckLake) is safe to retry as it is; so is
# one that lost the race to create a schema or table (shards starting together on an empty lake):
# dlt reads the destination again and applies only what is still missing
TRANSIENT_LOAD_ERRORS = ("Transaction conflict", "SchemaUpdateTransientError", "already exists")
LOAD_ATTEMPTS = 5


def _load_with_retries(pipeline: dlt.Pipeline) -> Any:
    delay = 0.5
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        try:
            return pipeline.load()
        except PipelineStepFailed as exc:
            if attempt == LOAD_ATTEMPTS or not is_transient(exc):
                raise
            log.warning(
                "load attempt %d of %d conflicted with another writer; retrying: %s",
                attempt,
                LOAD_ATTEMPTS,
                str(exc).splitlines()[0],
            )
            time.sleep(delay)
            delay *= 2
    return None


def is_transient(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if any(marker in f"{type(cause).__name__}: {cause}" for marker in TRANSIENT_LOAD_ERRORS):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _positions(
    warehouse: Warehouse, pipeline: dlt.Pipeline, settings: KafkaSettings, shard: Shard
) -> StoredOffsets:
    """Confirmed positions from the warehouse; a partition never recorded there falls back to
    the offsets older runs kept in the pipeline's dlt state."""
    stored = confirmed_offsets(warehouse, settings.topics, shard)
    for topic, parts in state_offsets(pipeline).items():
        if topic in settings.topics:
            for part, pos in parts.items():
                stored.setdefault(topic, {}).setdefault(part, pos)
    return stored


def ingest(
    settings: KafkaSettings | None = None,
    warehouse: Warehouse | None = None,
    *,
    limits: IngestSettings | None = None,
    shard: Shard = ALL_PARTITIONS,
    start_from: str = "earliest",
    resume_from: str | None = None,
    privacy: PrivacyConfig | None = None,
    on_batch: Callable[[DrainStats], None] | None = None,
    pipeline_name: str | None = None,
    on_phase: Callable[[str], None] | None = None,
    tracking_plan: TrackingPlanSettings | None = None,
) -> IngestResult:
    """Drain the topic(s) once into the warehouse. Raises IngestError or WarehouseError (a
    one-line reason; WarehouseLocked when another process holds the warehouse).

    The drain is loaded in parts of at most `limits.messages_per_load` messages; each part is
    one dlt load holding its rows and offsets, so a crash loses at most the part in flight.
    The work is shared: the poller thread decodes records, two stage threads validate and
    minimise the batches after it, this thread writes and loads; while a part loads, the next
    part's first batches are drained and validated.
    With `shard` only the partitions it owns are drained; any number of shards may run at once
    against a DuckLake warehouse (a DuckDB file takes one writer: a second one gets
    WarehouseLocked).
    """
    settings = settings or KafkaSettings.from_env()
    warehouse = warehouse or open_warehouse()
    limits = limits or IngestSettings.from_env()
    plan_settings = tracking_plan or TrackingPlanSettings.from_env()
    plan = resolve_plan(plan_settings)  # a bad plan fails here, before anything is touched
    try:  # settle privacy config (and its key) before touching Kafka
        rules = PrivacySettings.resolve(privacy or PrivacyConfig.from_env(), warehouse)
    except PrivacyError as exc:
        raise IngestError(str(exc)) from None
    start = parse_start(start_from)
    resume = parse_start(resume_from) if resume_from is not None else None
    pipeline_name = pipeline_name or pipeline_name_for(shard)
    pipeline = pipeline_for(warehouse, pipeline_name)

    def phase(name: str) -> None:
        if on_phase:
            on_phase(name)

    phase("recover")
    try:
        # creates the warehouse if it is new (shards starting at once on a new lake race for
        # that: the warehouse settles it), then restores dlt's state if this host has none
        warehouse.exists()
        pipeline.sync_destination()
        # a run that died after extract left a package holding rows and offsets: load it first
        if pipeline.list_extracted_load_packages():
            pipeline.normalize()
        if pipeline.list_normalized_load_packages():
            _load_with_retries(pipeline)
        # what loads of a crashed process on another host left half-written
        discard_unconfirmed(warehouse, settings.topics, shard)
        suppressed = suppressed_tokens(warehouse)
    except (PipelineStepFailed, WarehouseError) as exc:
        raise _operator_error(exc, warehouse) from exc
    except Exception as exc:  # noqa: BLE001 - any destination failure is reported the same way
        raise _operator_error(exc, warehouse) from exc

    stats = DrainStats()  # shared by the parts: counts and time limits cover the whole run
    load_id: str | None = None
    with KafkaSession(settings, shard) as kafka:
        # one drain for the whole run, cut into parts: the next part's batches are drained and
        # validated while this one loads
        feed = Feed()
        try:
            for part in itertools.count():
                first = part == 0
                source = kafka_source(
                    kafka,
                    start,
                    stored=_positions(warehouse, pipeline, settings, shard) if first else None,
                    resume_from=resume if first else None,
                    check_gaps=first,
                    limits=limits,
                    max_messages=limits.max_messages,
                    stats=stats,
                    on_batch=on_batch,
                    privacy=rules,
                    suppressed=suppressed,
                    plan=plan,
                    plan_mode=plan_settings.plan_mode,
                    feed=feed,
                    part_messages=limits.messages_per_load,
                )
                try:
                    # pipeline.run's steps one by one, so progress (and crash tests) tell them
                    # apart; the first part's extract starts with the gap checks
                    phase("extract")
                    pipeline.extract(source, loader_file_format="parquet")
                    phase("normalize")
                    pipeline.normalize()
                    phase("load")
                    info = _load_with_retries(pipeline)
                except PipelineStepFailed as exc:
                    error = _operator_error(exc, warehouse)
                    if isinstance(error, OffsetGapError):
                        record_gaps(warehouse, pipeline_name, error.gaps)
                    raise error from exc
                if info and info.loads_ids:
                    load_id = info.loads_ids[-1]
                if feed.finished:
                    break
        finally:
            feed.close()

        resumed = (
            resolve_gaps(warehouse, kafka.partitions(), f"resumed from {resume_from}")
            if stats.resumed_partitions
            else 0
        )
        offsets = {
            TopicPartition(topic, int(p)): int(pos["next"])
            for topic, parts in _positions(warehouse, pipeline, settings, shard).items()
            for p, pos in parts.items()
        }
        phase("commit_offsets")
        commit_error = kafka.commit(offsets)
        lag = {_label(tp): n for tp, n in kafka.lag(offsets).items()}
    result = IngestResult(
        messages=stats.messages,
        loaded=stats.accepted,
        rejected=stats.rejected,
        seconds=stats.seconds,
        stopped_because=stats.stopped_because,
        offsets={_label(tp): o for tp, o in offsets.items()},
        lag=lag,
        event_days=sorted(stats.event_days),
        load_id=load_id,
        commit_error=commit_error,
        resumed_gaps=resumed,
        suppressed=stats.suppressed,
        plan_violations=stats.plan_violations,
        plan_version=plan.version if plan else None,
    )
    if limits.metrics_dir is not None:
        write_ingest_metrics(
            limits.metrics_dir,
            shard,
            messages=result.messages,
            loaded=result.loaded,
            rejected=result.rejected,
            seconds=result.seconds,
            lag=result.lag,
        )
    return result


def resolve_plan(settings: TrackingPlanSettings) -> TrackingPlan | None:
    """The compiled plan TRACKING_PLAN names (None: no plan), or IngestError in one line."""
    if settings.plan_file is None:
        return None
    try:
        return load_plan(settings.plan_file)
    except PlanError as exc:
        raise IngestError(str(exc)) from None


def _operator_error(exc: BaseException, warehouse: Warehouse) -> IngestError | WarehouseError:
    """Ours or the warehouse's one-line error from anywhere in the chain, else a short one."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, IngestError):
            return cause
        cause = cause.__cause__ or cause.__context__
    found = warehouse.operator_error(exc)
    if found is not None:
        return found
    if isinstance(exc, PipelineStepFailed):
        return IngestError(f"ingestion failed at step {exc.step}: {str(exc.exception)[:300]}")
    return IngestError(f"ingestion failed: {str(exc)[:300]}")


__all__ = ["IngestResult", "ingest", "pipeline_for", "pipeline_name_for"]
