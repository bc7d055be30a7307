"""Operator jobs: erasure of one person and dead-letter replay (same code as the cli)."""

import dagster as dg

from orchestration.assets.keys import INGESTION_GROUP, RAW_SUPPRESSIONS
from orchestration.jobs import INGESTION_TAGS
from orchestration.resources import WarehouseResource
from pipelines.erasure import forget
from pipelines.privacy import PrivacyError
from pipelines.replay import replay_rejected
from pipelines.warehouse import WarehouseError

# the suppression list staging reads: written by the forget job, not materialized by an asset
suppressions = dg.AssetSpec(
    RAW_SUPPRESSIONS,
    group_name=INGESTION_GROUP,
    description=(
        "One row per erased id (keyed token for ingestion, sha256 for staging); written by "
        "`trackflow forget` and the forget_job, so nothing of the person comes back."
    ),
    kinds={"duckdb"},
)


class ForgetConfig(dg.Config):
    """Exactly one of the two: the person and every id stitched to them are erased."""

    user_id: str | None = None
    anonymous_id: str | None = None


class ReplayConfig(dg.Config):
    """Only dead letters with these error codes (all when empty)."""

    error_codes: list[str] = []
    dry_run: bool = False


@dg.op(description="trackflow forget: erase a person from raw, dead letters and the models")
def forget_person(
    context: dg.OpExecutionContext, config: ForgetConfig, warehouse: WarehouseResource
) -> dg.Output[int]:
    try:
        result = forget(
            warehouse.open(),
            user_id=config.user_id,
            anonymous_id=config.anonymous_id,
            requested_via="dagster",
        )
    except (PrivacyError, WarehouseError) as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"erasure {result.request_id}: {result.identities} identities")
    # only counts: the run's metadata must not hold the person's ids
    return dg.Output(
        result.total,
        metadata={
            "request_id": result.request_id,
            "identities": result.identities,
            **{table: n for table, n in result.rows_deleted.items()},
        },
    )


@dg.op(description="trackflow replay-rejected: load the dead letters that now pass, once")
def replay_dead_letters(
    context: dg.OpExecutionContext, config: ReplayConfig, warehouse: WarehouseResource
) -> dg.Output[int]:
    try:
        result = replay_rejected(
            warehouse.open(), config.error_codes or None, dry_run=config.dry_run
        )
    except (PrivacyError, WarehouseError) as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(
        f"examined {result.examined}: loaded {result.loaded}, still rejected "
        f"{result.still_rejected}"
    )
    return dg.Output(
        result.loaded,
        metadata={
            "examined": result.examined,
            "loaded": result.loaded,
            "still_rejected": result.still_rejected,
            "dry_run": config.dry_run,
        },
    )


# both write the warehouse: tagged like ingestion so the instance runs them one at a time
@dg.job(tags=INGESTION_TAGS, description="Erase one person (config: user_id or anonymous_id).")
def forget_job() -> None:
    forget_person()


@dg.job(tags=INGESTION_TAGS, description="Re-validate dead letters; load those that now pass.")
def replay_job() -> None:
    replay_dead_letters()
