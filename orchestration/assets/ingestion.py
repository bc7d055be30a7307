"""The Kafka ingestion as dlt assets: raw.tracking_events and raw.tracking_events_rejected.

The asset specs come from dagster-dlt (`build_dlt_asset_specs` with our translator); the body
runs `pipelines.ingest.ingest` rather than `DagsterDltResource.run`, because a run is more than
`pipeline.run`: it first finishes packages a crashed run left behind, checks that the broker
still holds every stored offset (a gap is recorded and fails the run), and commits the loaded
offsets to the consumer group afterwards. Our one dlt resource writes two tables (rows it
rejects go to `tracking_events_rejected` through `dlt.mark.with_table_name`), so the rejected
table's spec is derived from the resource's spec.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
import duckdb
from dagster_dlt import DagsterDltTranslator, build_dlt_asset_specs
from dagster_dlt.translator import DltResourceTranslatorData

from orchestration.assets.keys import INGESTION_GROUP, INGESTION_POOL, RAW_EVENTS, RAW_REJECTED
from orchestration.resources import (
    IngestionConfig,
    KafkaResource,
    QualityThresholds,
    WarehouseResource,
)
from pipelines.config import KafkaSettings
from pipelines.ingest import IngestResult, ingest
from pipelines.kafka_source import kafka_source
from pipelines.kafka_source.helpers import IngestError, OffsetGapError
from pipelines.kafka_source.settings import (
    EVENTS_TABLE,
    GAPS_TABLE,
    PIPELINE_NAME,
    RAW_DATASET,
    REJECTED_TABLE,
)

GAPS_CHECK = "no_retention_gaps"
LAG_CHECK = "consumer_lag"


class TrackflowDltTranslator(DagsterDltTranslator):
    """raw/<table> keys in the ingestion group; the Kafka topic is outside the graph."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(
            key=dg.AssetKey([RAW_DATASET, data.resource.name]),
            group_name=INGESTION_GROUP,
            deps=[],
            description=(
                "One row per accepted Kafka message (event envelope v1), loaded by dlt at least "
                "once; staging deduplicates on message_id."
            ),
        )


def _specs() -> list[dg.AssetSpec]:
    # a pipeline object only for the specs (name, destination kind): nothing is created on disk
    # until it runs; the real pipeline is pipelines.ingest.pipeline_for(warehouse)
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE_NAME, destination="duckdb", dataset_name=RAW_DATASET
    )
    (events,) = build_dlt_asset_specs(
        dlt_source=kafka_source(KafkaSettings()),
        dlt_pipeline=pipeline,
        dagster_dlt_translator=TrackflowDltTranslator(),
    )
    # dagster-dlt stores the live source/pipeline objects in the metadata for its resource's
    # run(); we do not use it and keep the specs serializable
    metadata = {k: v for k, v in events.metadata.items() if not k.startswith("dagster_dlt/")}
    metadata["dagster/table_name"] = f"{RAW_DATASET}.{EVENTS_TABLE}"
    events = events.replace_attributes(metadata=metadata)
    rejected = events.replace_attributes(
        key=RAW_REJECTED,
        description=(
            "Dead letters: one row per Kafka message that failed validation, with the lossless "
            "payload, error_code and error_message. Nothing is dropped silently."
        ),
        metadata={**metadata, "dagster/table_name": f"{RAW_DATASET}.{REJECTED_TABLE}"},
    )
    return [events, rejected]


def _unresolved_gaps(warehouse: Path) -> list[tuple]:
    if not warehouse.exists():
        return []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? "
            "and table_name = ?",
            [RAW_DATASET, GAPS_TABLE],
        ).fetchone()
        if not exists or not exists[0]:
            return []
        return con.execute(
            f"select topic, partition, kind, expected_offset, log_start, detail "
            f"from {RAW_DATASET}.{GAPS_TABLE} where resolved_at is null "
            f"and pipeline_name = ? order by detected_at",
            [PIPELINE_NAME],
        ).fetchall()


def gaps_check_result(warehouse: Path) -> dg.AssetCheckResult:
    gaps = _unresolved_gaps(warehouse)
    metadata: dict[str, Any] = {"actual": len(gaps), "threshold": 0}
    if gaps:
        topic, partition, kind, expected, log_start, detail = gaps[0]
        metadata["reason"] = (
            f"{len(gaps)} unresolved gap(s) in raw.{GAPS_TABLE}: {topic}[{partition}] {kind}: "
            f"expected offset {expected}, broker starts at {log_start} ({detail}); resume with "
            "'trackflow ingest --resume-from earliest|latest' after deciding what was lost"
        )
        metadata["gaps"] = dg.MetadataValue.json(
            [
                {
                    "topic": g[0],
                    "partition": g[1],
                    "kind": g[2],
                    "expected_offset": g[3],
                    "log_start": g[4],
                    "detail": g[5],
                }
                for g in gaps
            ]
        )
    return dg.AssetCheckResult(
        asset_key=RAW_EVENTS,
        check_name=GAPS_CHECK,
        passed=not gaps,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=str(metadata.get("reason") or "every stored offset is still on the broker"),
    )


def lag_check_result(result: IngestResult, threshold: int) -> dg.AssetCheckResult:
    lag = result.total_lag
    passed = lag <= threshold
    metadata: dict[str, Any] = {
        "actual": lag,
        "threshold": threshold,
        "lag_per_partition": dg.MetadataValue.json(result.lag),
    }
    if not passed:
        worst = max(result.lag.items(), key=lambda kv: kv[1])
        metadata["reason"] = (
            f"{lag} messages left after the run (limit {threshold}); worst {worst[0]}={worst[1]}: "
            "ingestion is falling behind, raise TRACKFLOW_INGEST_MAX_MESSAGES or run more often"
        )
    return dg.AssetCheckResult(
        asset_key=RAW_EVENTS,
        check_name=LAG_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def _materializations(result: IngestResult, warehouse: Path) -> Iterator[dg.MaterializeResult]:
    common: dict[str, Any] = {
        "load_id": result.load_id or "",
        "messages": result.messages,
        "events_per_second": round(result.events_per_second, 1),
        "seconds": round(result.seconds, 2),
        "stopped_because": result.stopped_because,
        "offsets": dg.MetadataValue.json(result.offsets),
        "lag": dg.MetadataValue.json(result.lag),
        "total_lag": result.total_lag,
        "event_days": dg.MetadataValue.json([d.isoformat() for d in result.event_days]),
        "warehouse": str(warehouse),
    }
    if result.commit_error:
        common["consumer_group_commit_error"] = result.commit_error
    yield dg.MaterializeResult(
        asset_key=RAW_EVENTS,
        metadata={
            **common,
            "rows_loaded": result.loaded,
            "dagster/row_count": _count(warehouse, EVENTS_TABLE),
        },
    )
    yield dg.MaterializeResult(
        asset_key=RAW_REJECTED,
        metadata={
            **common,
            "rows_rejected": result.rejected,
            "dagster/row_count": _count(warehouse, REJECTED_TABLE),
        },
    )


def _count(warehouse: Path, table: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        row = con.execute(f"select count(*) from {RAW_DATASET}.{table}").fetchone()
    return int(row[0]) if row else 0


@dg.multi_asset(
    name="kafka_ingestion",
    specs=_specs(),
    check_specs=[
        dg.AssetCheckSpec(
            GAPS_CHECK,
            asset=RAW_EVENTS,
            description="No unresolved retention gap: every stored offset was still on the broker.",
        ),
        dg.AssetCheckSpec(
            LAG_CHECK,
            asset=RAW_EVENTS,
            description="Messages left on the topic after the run stay under the threshold.",
        ),
    ],
    pool=INGESTION_POOL,
    can_subset=False,
)
def kafka_ingestion(
    context: dg.AssetExecutionContext,
    kafka: KafkaResource,
    warehouse: WarehouseResource,
    ingestion: IngestionConfig,
    thresholds: QualityThresholds,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One bounded drain of the tracking topic(s) into raw (pipelines.ingest.ingest)."""
    path = warehouse.path
    try:
        result = ingest(
            kafka.settings(),
            path,
            start_from=ingestion.start_from,
            batch_size=ingestion.batch_size,
            max_messages=ingestion.max_messages,
            max_seconds=ingestion.max_seconds,
            on_batch=lambda s: context.log.debug(
                f"{s.messages} messages ({s.accepted} accepted, {s.rejected} rejected)"
            ),
        )
    except OffsetGapError as exc:
        # the gap is in raw.ingestion_gaps; show it on the check, then fail the run loudly
        yield gaps_check_result(path)
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except IngestError as exc:
        raise dg.Failure(description=str(exc)) from exc
    context.log.info(
        f"ingest at {datetime.now(UTC):%H:%M:%S}: {result.summary()} "
        f"(stopped: {result.stopped_because})"
    )
    yield from _materializations(result, path)
    yield gaps_check_result(path)
    yield lag_check_result(result, thresholds.max_consumer_lag)


ingestion_assets = [kafka_ingestion]
