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
from typing import Any

import dagster as dg
import dlt
from dagster_dlt import DagsterDltTranslator, build_dlt_asset_specs
from dagster_dlt.translator import DltResourceTranslatorData
from pydantic import Field

from orchestration.assets.keys import INGESTION_GROUP, INGESTION_POOL, RAW_EVENTS, RAW_REJECTED
from orchestration.assets.shards import run_shards
from orchestration.resources import (
    IngestionResource,
    KafkaResource,
    ThresholdsResource,
    TrackingPlanResource,
    WarehouseResource,
)
from pipelines.gaps import open_gaps
from pipelines.ingest import IngestResult, ingest
from pipelines.kafka_source import kafka_source
from pipelines.kafka_source.helpers import BrokerUnavailable, IngestError, OffsetGapError
from pipelines.names import (
    PIPELINE_NAME,
    RAW,
    RAW_GAPS,
)
from pipelines.names import (
    RAW_EVENTS as RAW_EVENTS_TABLE,
)
from pipelines.names import (
    RAW_REJECTED as RAW_REJECTED_TABLE,
)
from pipelines.warehouse import Warehouse, WarehouseError, WarehouseLocked


class IngestionRunConfig(dg.Config):
    """Per-run choices (the launchpad's config): accepting a recorded offset gap."""

    resume_from: str | None = Field(
        default=None,
        description=(
            "After an offset gap (check no_retention_gaps): where the partitions with a gap "
            "restart: earliest | latest | an ISO time. The same as 'trackflow ingest "
            "--resume-from'. Leave empty otherwise."
        ),
    )


# a failure that may pass on its own (another process holds the DuckDB file, the broker is
# restarting) is tried again after 5, 10, 20 s (+-jitter). Every known permanent failure is a
# Failure(allow_retries=False): an offset gap is never retried, it needs a person
TRANSIENT_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

GAPS_CHECK = "no_retention_gaps"
LAG_CHECK = "consumer_lag"


class TrackflowDltTranslator(DagsterDltTranslator):
    """raw/<table> keys in the ingestion group; the Kafka topic is outside the graph."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(
            key=dg.AssetKey([RAW, data.resource.name]),
            group_name=INGESTION_GROUP,
            deps=[],
            description=(
                "One row per accepted Kafka message (event envelope v1), loaded by dlt at least "
                "once; staging deduplicates on message_id."
            ),
        )


def _specs(freshness: dg.FreshnessPolicy | None) -> list[dg.AssetSpec]:
    # a pipeline object only for the specs (name, destination kind): nothing is created on disk
    # until it runs; the real pipeline is pipelines.ingest.pipeline_for(warehouse)
    pipeline = dlt.pipeline(pipeline_name=PIPELINE_NAME, destination="duckdb", dataset_name=RAW)
    (events,) = build_dlt_asset_specs(
        dlt_source=kafka_source(None),
        dlt_pipeline=pipeline,
        dagster_dlt_translator=TrackflowDltTranslator(),
    )
    # dagster-dlt stores the live source/pipeline objects in the metadata for its resource's
    # run(); we do not use it and keep the specs serializable
    metadata = {k: v for k, v in events.metadata.items() if not k.startswith("dagster_dlt/")}
    metadata["dagster/table_name"] = RAW_EVENTS_TABLE
    events = events.replace_attributes(metadata=metadata)
    if freshness is not None:
        events = dg.apply_freshness_policy(events, freshness)
    rejected = events.replace_attributes(
        key=RAW_REJECTED,
        description=(
            "Dead letters: one row per Kafka message that failed validation, with the lossless "
            "payload, error_code and error_message. Nothing is dropped silently."
        ),
        metadata={**metadata, "dagster/table_name": RAW_REJECTED_TABLE},
    )
    return [events, rejected]


def gaps_check_result(warehouse: Warehouse) -> dg.AssetCheckResult:
    gaps = open_gaps(warehouse)
    metadata: dict[str, Any] = {"actual": len(gaps), "threshold": 0}
    if gaps:
        first = gaps[0]
        metadata["reason"] = (
            f"{len(gaps)} unresolved gap(s) in {RAW_GAPS}: {first.topic}[{first.partition}] "
            f"{first.kind}: expected offset {first.expected_offset}, broker starts at "
            f"{first.log_start} ({first.detail}); resume with "
            "'trackflow ingest --resume-from earliest|latest' after deciding what was lost"
        )
        metadata["gaps"] = dg.MetadataValue.json(
            [
                {
                    "topic": g.topic,
                    "partition": g.partition,
                    "kind": g.kind,
                    "expected_offset": g.expected_offset,
                    "log_start": g.log_start,
                    "detail": g.detail,
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


def _materializations(
    result: IngestResult, warehouse: Warehouse, shards: int
) -> Iterator[dg.MaterializeResult]:
    common: dict[str, Any] = {
        "shards": shards,
        "load_id": result.load_id or "",
        "messages": result.messages,
        "events_per_second": round(result.events_per_second, 1),
        "seconds": round(result.seconds, 2),
        "stopped_because": result.stopped_because,
        "offsets": dg.MetadataValue.json(result.offsets),
        "lag": dg.MetadataValue.json(result.lag),
        "total_lag": result.total_lag,
        "event_days": dg.MetadataValue.json([d.isoformat() for d in result.event_days]),
        "warehouse": warehouse.describe(),
    }
    if result.commit_error:
        common["consumer_group_commit_error"] = result.commit_error
    with warehouse.connect(read_only=True) as sql:
        events = sql.scalar(f"select count(*) from {RAW_EVENTS_TABLE}")
        rejected = sql.scalar(f"select count(*) from {RAW_REJECTED_TABLE}")
    yield dg.MaterializeResult(
        asset_key=RAW_EVENTS,
        metadata={
            **common,
            "rows_loaded": result.loaded,
            "dagster/row_count": int(events),
        },
    )
    yield dg.MaterializeResult(
        asset_key=RAW_REJECTED,
        metadata={
            **common,
            "rows_rejected": result.rejected,
            "dagster/row_count": int(rejected),
        },
    )


def kafka_ingestion(
    context: dg.AssetExecutionContext,
    config: IngestionRunConfig,
    kafka: KafkaResource,
    warehouse: WarehouseResource,
    ingestion: IngestionResource,
    thresholds: ThresholdsResource,
    tracking_plan: TrackingPlanResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One bounded drain of the tracking topic(s) into raw (pipelines.ingest.ingest), in
    `ingestion.shards` partition shards."""
    target = warehouse.open()
    try:
        if ingestion.shards > 1:
            result = run_shards(
                kafka.settings(),
                warehouse.settings(),
                ingestion.limits(),
                ingestion.start_from,
                resume_from=config.resume_from,
                log=context.log.info,
                tracking_plan=tracking_plan.settings(),
            )
        else:
            result = ingest(
                kafka.settings(),
                target,
                limits=ingestion.limits(),
                start_from=ingestion.start_from,
                resume_from=config.resume_from,
                on_batch=lambda s: context.log.debug(
                    f"{s.messages} messages ({s.accepted} accepted, {s.rejected} rejected)"
                ),
                tracking_plan=tracking_plan.settings(),
            )
    except OffsetGapError as exc:
        # the gap is in raw.ingestion_gaps; show it on the check, then fail the run loudly
        yield gaps_check_result(target)
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except (WarehouseLocked, BrokerUnavailable) as exc:
        attempts = TRANSIENT_RETRY_POLICY.max_retries + 1
        context.log.warning(f"attempt {context.retry_number + 1} of {attempts}: {exc}")
        raise dg.Failure(description=str(exc), allow_retries=True) from exc
    except (IngestError, WarehouseError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    context.log.info(
        f"ingest at {datetime.now(UTC):%H:%M:%S}: {result.summary()} "
        f"(stopped: {result.stopped_because})"
    )
    yield from _materializations(result, target, ingestion.shards)
    yield gaps_check_result(target)
    yield lag_check_result(result, thresholds.max_consumer_lag)


def build_ingestion_assets(
    freshness: dg.FreshnessPolicy | None = None,
) -> list[dg.AssetsDefinition]:
    """The ingestion multi-asset (raw events and dead letters) with its two checks; `freshness`
    on the raw events."""
    asset = dg.multi_asset(
        name="kafka_ingestion",
        specs=_specs(freshness),
        check_specs=[
            dg.AssetCheckSpec(
                GAPS_CHECK,
                asset=RAW_EVENTS,
                description=(
                    "No unresolved retention gap: every stored offset was still on the broker."
                ),
            ),
            dg.AssetCheckSpec(
                LAG_CHECK,
                asset=RAW_EVENTS,
                description="Messages left on the topic after the run stay under the threshold.",
            ),
        ],
        pool=INGESTION_POOL,
        retry_policy=TRANSIENT_RETRY_POLICY,
        can_subset=False,
    )(kafka_ingestion)
    return [asset]
