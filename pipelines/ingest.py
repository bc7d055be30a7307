"""One bounded ingestion run: pending loads first, gap check, drain, load, consumer-group commit."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.pipeline.exceptions import PipelineStepFailed
from kafka import TopicPartition

from pipelines.config import KafkaSettings, duckdb_path
from pipelines.kafka_source import kafka_source
from pipelines.kafka_source.helpers import (
    BrokerUnavailable,
    DrainStats,
    IngestError,
    OffsetGapError,
    check_positions,
    commit_group_offsets,
    connect,
    initial_offsets,
    parse_start,
    record_gaps,
    remaining_lag,
    resolve_gaps,
    topic_partitions,
    watermarks,
)
from pipelines.kafka_source.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_MESSAGES,
    DEFAULT_MAX_SECONDS,
    DEFAULT_MESSAGES_PER_LOAD,
    EVENTS_TABLE,
    PIPELINE_NAME,
    RAW_DATASET,
)
from pipelines.privacy import PrivacyError, PrivacySettings, suppressed_tokens


class WarehouseLocked(IngestError):
    pass


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

    @property
    def events_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    def summary(self) -> str:
        return (
            f"loaded {self.loaded} events, rejected {self.rejected}, "
            f"{self.events_per_second:,.0f} events/s, lag {self.total_lag} "
            f"({', '.join(f'{k}={v}' for k, v in sorted(self.lag.items())) or 'no partitions'})"
        )


def pipeline_for(warehouse: Path, pipeline_name: str = PIPELINE_NAME) -> dlt.Pipeline:
    # the dlt working dir (local state, pending packages) travels with the warehouse file
    warehouse = warehouse.resolve()
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        pipelines_dir=str(warehouse.parent / f".{warehouse.name}.dlt"),
        destination=dlt.destinations.duckdb(credentials=_credentials(warehouse)),
        dataset_name=RAW_DATASET,
    )


def _credentials(warehouse: Path) -> DuckDbCredentials:
    credentials = DuckDbCredentials(str(warehouse))
    # DuckDB keeps a buffer cache up to 80% of RAM by default: cap it so a load's memory does
    # not grow with the warehouse. 512MB keeps a 3M-event drain within 1.23x the peak of a
    # 300k one (1GB: 1.39x) and holds a part of 250k rows (DUCKDB_MEMORY_LIMIT to change it)
    credentials.global_config = {"memory_limit": os.environ.get("DUCKDB_MEMORY_LIMIT", "512MB")}
    return credentials


def stored_offsets(pipeline: dlt.Pipeline) -> dict[str, dict[str, dict[str, Any]]]:
    state = pipeline.state.get("sources", {}).get("kafka", {})
    return dict(state.get("resources", {}).get(EVENTS_TABLE, {}).get("offsets", {}))


def _label(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"


def ingest(
    settings: KafkaSettings | None = None,
    warehouse: Path | None = None,
    *,
    start_from: str = "earliest",
    resume_from: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_messages: int = DEFAULT_MAX_MESSAGES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    messages_per_load: int = DEFAULT_MESSAGES_PER_LOAD,
    on_batch: Callable[[DrainStats], None] | None = None,
    pipeline_name: str = PIPELINE_NAME,
    on_phase: Callable[[str], None] | None = None,
) -> IngestResult:
    """Drain the topic(s) once into DuckDB. Raises IngestError (one-line reason) on failure.

    The drain is loaded in parts of at most `messages_per_load` messages; each part is one dlt
    load holding its rows and offsets, so a crash loses at most the part in flight.
    """
    settings = settings or KafkaSettings.from_env()
    warehouse = (warehouse or duckdb_path()).resolve()
    try:  # settle privacy config (and its key file) before touching Kafka
        privacy = PrivacySettings.from_env(warehouse)
    except PrivacyError as exc:
        raise IngestError(str(exc)) from None
    start = parse_start(start_from)
    pipeline = pipeline_for(warehouse, pipeline_name)

    def phase(name: str) -> None:
        if on_phase:
            on_phase(name)

    phase("recover")
    try:
        # restores offsets from the warehouse when the local dlt state is missing
        pipeline.sync_destination()
    except Exception as exc:  # noqa: BLE001 - any destination failure is reported the same way
        failed = PipelineStepFailed(pipeline, "sync", None, exc, None)
        raise _operator_error(failed, warehouse) from exc
    _finish_pending(pipeline, warehouse)
    phase("check_offsets")

    stored = stored_offsets(pipeline)
    resume_at: dict[TopicPartition, int | None] = {}
    if stored:
        consumer = connect(settings)
        try:
            tps = topic_partitions(consumer, settings)
            begin, end = watermarks(consumer, tps, settings.bootstrap_servers)
            gaps = check_positions(settings, stored, tps, begin, end)
            if gaps and resume_from is None:
                record_gaps(warehouse, pipeline_name, gaps)
                raise OffsetGapError(gaps)
            if gaps:
                gap_tps = [TopicPartition(g.topic, g.partition) for g in gaps]
                live = [tp for tp in gap_tps if tp in begin]
                targets = initial_offsets(consumer, live, parse_start(resume_from), begin, end)
                resume_at = {tp: targets.get(tp) for tp in gap_tps}
        finally:
            consumer.close()

    try:
        suppressed = frozenset(suppressed_tokens(warehouse))
    except duckdb.IOException as exc:
        failed = PipelineStepFailed(pipeline, "extract", None, exc, None)
        raise _operator_error(failed, warehouse) from exc
    stats = DrainStats()  # shared by the parts: counts and time limits cover the whole run
    load_id: str | None = None
    while True:
        part_start = stats.messages
        source = kafka_source(
            settings,
            start_from=start,
            resume_at=resume_at if part_start == 0 else None,
            batch_size=batch_size,
            max_messages=min(max_messages, part_start + messages_per_load),
            max_seconds=max_seconds,
            stats=stats,
            on_batch=on_batch,
            privacy=privacy,
            suppressed=suppressed,
        )
        try:
            # pipeline.run's steps one by one, so progress (and crash tests) can tell them apart
            phase("extract")
            pipeline.extract(source, loader_file_format="parquet")
            phase("normalize")
            pipeline.normalize()
            phase("load")
            info = pipeline.load()
        except PipelineStepFailed as exc:
            raise _operator_error(exc, warehouse) from exc
        if info and info.loads_ids:
            load_id = info.loads_ids[-1]
        # a part that stopped at its own size before the run's limit: load the next part
        if stats.stopped_because != "max_messages" or stats.messages >= max_messages:
            break
        stats.stopped_because = ""

    resumed = (
        resolve_gaps(warehouse, pipeline_name, f"resumed from {resume_from}") if resume_at else 0
    )
    offsets = {
        TopicPartition(topic, int(p)): int(pos["next"])
        for topic, parts in stored_offsets(pipeline).items()
        for p, pos in parts.items()
        if topic in settings.topics
    }
    phase("commit_offsets")
    commit_error = commit_group_offsets(settings, offsets)
    try:
        lag = {_label(tp): n for tp, n in remaining_lag(settings, offsets).items()}
    except BrokerUnavailable:
        lag = {}
    return IngestResult(
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
    )


def _finish_pending(pipeline: dlt.Pipeline, warehouse: Path) -> None:
    """A run that died after extract left a package holding rows and offsets: load it first."""
    try:
        if pipeline.list_extracted_load_packages():
            pipeline.normalize()
        if pipeline.list_normalized_load_packages():
            pipeline.load()
    except PipelineStepFailed as exc:
        raise _operator_error(exc, warehouse) from exc


def _operator_error(exc: PipelineStepFailed, warehouse: Path) -> IngestError:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, IngestError):
            return cause
        text = str(cause)
        if "Could not set lock on file" in text or "Conflicting lock" in text:
            return WarehouseLocked(
                f"warehouse {warehouse} is locked by another process; nothing was lost and no "
                "offset moved: retry when it is released"
            )
        cause = cause.__cause__ or cause.__context__
    return IngestError(f"ingestion failed at step {exc.step}: {str(exc.exception)[:300]}")


__all__ = ["IngestResult", "WarehouseLocked", "ingest", "pipeline_for", "stored_offsets"]
