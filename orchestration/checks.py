"""Custom asset checks (the dbt tests are asset checks too, built by dagster-dbt).

Each returns AssetCheckResult(passed=..., metadata={"actual", "threshold", ...}); a failure's
`reason` (also the description) says in one line what is wrong. Retention gaps and consumer lag
are checked by the ingestion op itself (orchestration/assets/ingestion.py): it knows the run's
numbers, and a gap must be reported even though it fails the run.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import yaml  # type: ignore[import-untyped]

from orchestration.assets.keys import AGG_FUNNEL_DAILY, FCT_SESSIONS, RAW_EVENTS, RAW_REJECTED
from orchestration.resources import ThresholdsResource, TrackingPlanResource, WarehouseResource
from pipelines.dbt import DBT_PROJECT_DIR
from pipelines.names import ANALYTICS, FUNNEL_DAILY_MART, RAW_DLT_LOADS, SESSIONS_MART
from pipelines.names import RAW_EVENTS as RAW_EVENTS_TABLE
from pipelines.names import RAW_REJECTED as RAW_REJECTED_TABLE
from pipelines.tracking_plan import PlanError, load_plan
from pipelines.tracking_plan.rates import daily_rates

# event days the violation-rate check looks at (the newest ones)
PLAN_CHECK_DAYS = 7

SESSIONS_TABLE = f"{ANALYTICS}.{SESSIONS_MART}"
FUNNEL_DAILY_TABLE = f"{ANALYTICS}.{FUNNEL_DAILY_MART}"


def _result(
    passed: bool,
    actual: Any,
    threshold: Any,
    reason: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    **extra: Any,
) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {"actual": actual, "threshold": threshold, **extra}
    if not passed:
        metadata["reason"] = reason
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        metadata=metadata,
        description=reason if not passed else None,
    )


def _rows(
    warehouse: WarehouseResource, sql: str, params: list[Any] | None = None
) -> list[tuple[Any, ...]]:
    with warehouse.open().connect(read_only=True) as client:
        return client.rows(sql, params or [])


def _latest_load(warehouse: WarehouseResource) -> str | None:
    rows = _rows(warehouse, f"select max(load_id) from {RAW_DLT_LOADS} where status = 0")
    return rows[0][0] if rows else None


@dg.asset_check(
    asset=RAW_EVENTS,
    description="The newest accepted event was received at most max_raw_age_hours ago.",
)
def raw_freshness(
    warehouse: WarehouseResource, thresholds: ThresholdsResource
) -> dg.AssetCheckResult:
    newest = _rows(warehouse, f"select max(received_at) from {RAW_EVENTS_TABLE}")[0][0]
    limit = thresholds.max_raw_age_hours
    if newest is None:
        return _result(False, None, limit, f"{RAW_EVENTS_TABLE} is empty: nothing was ever loaded")
    age_h = (datetime.now(UTC) - newest.astimezone(UTC)).total_seconds() / 3600
    return _result(
        age_h <= limit,
        round(age_h, 2),
        limit,
        f"newest event received {age_h:.1f} h ago (limit {limit} h): are producers sending and "
        "is the ingestion schedule running?",
        newest_received_at=newest.isoformat(),
    )


@dg.asset_check(
    asset=RAW_REJECTED,
    description="Rejected messages / all messages of the latest load stay under the threshold.",
)
def latest_load_rejected_rate(
    warehouse: WarehouseResource, thresholds: ThresholdsResource
) -> dg.AssetCheckResult:
    load = _latest_load(warehouse)
    limit = thresholds.max_rejected_rate
    accepted = _rows(
        warehouse, f"select count(*) from {RAW_EVENTS_TABLE} where _dlt_load_id = ?", [load]
    )[0][0]
    by_code = _rows(
        warehouse,
        f"select error_code, count(*) from {RAW_REJECTED_TABLE} where _dlt_load_id = ? "
        "group by 1 order by 2 desc",
        [load],
    )
    rejected = sum(n for _, n in by_code)
    total = accepted + rejected
    rate = rejected / total if total else 0.0
    codes = ", ".join(f"{code}={n}" for code, n in by_code[:3])
    return _result(
        rate <= limit,
        round(rate, 4),
        limit,
        f"{rejected} of {total} messages in load {load} rejected ({rate:.1%} > {limit:.1%}); "
        f"top codes: {codes}; payloads in {RAW_REJECTED_TABLE}",
        load_id=load or "",
        rejected=rejected,
        messages=total,
        error_codes=dg.MetadataValue.json(dict(by_code)),
    )


@dg.asset_check(
    asset=RAW_EVENTS,
    description=(
        "Rows of the latest load whose messageId was already loaded (or repeats within the load) "
        "stay under the threshold; staging deduplicates them, a spike means a producer retry loop."
    ),
)
def duplicate_rate(
    warehouse: WarehouseResource, thresholds: ThresholdsResource
) -> dg.AssetCheckResult:
    load = _latest_load(warehouse)
    limit = thresholds.max_duplicate_rate
    rows, fresh = _rows(
        warehouse,
        f"""
        with this_load as (
            select message_id from {RAW_EVENTS_TABLE} where _dlt_load_id = $1
        ),
        earlier as (
            select distinct message_id from {RAW_EVENTS_TABLE} where _dlt_load_id < $1
        )
        select
            (select count(*) from this_load),
            (select count(distinct message_id) from this_load
             where message_id not in (select message_id from earlier))
        """,
        [load],
    )[0]
    duplicates = rows - fresh
    rate = duplicates / rows if rows else 0.0
    return _result(
        rate <= limit,
        round(rate, 4),
        limit,
        f"{duplicates} of {rows} rows in load {load} are re-deliveries ({rate:.1%} > {limit:.1%}): "
        "is a producer retrying without idempotence?",
        load_id=load or "",
        rows=rows,
        duplicates=duplicates,
    )


@dg.asset_check(
    asset=FCT_SESSIONS,
    description=(
        "Every session has events, ends after it starts, lasts at most the maximum length and "
        "starts no later than now."
    ),
)
def session_sanity(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    max_hours = int(_session_max_hours())
    row = _rows(
        warehouse,
        f"""
        select
            count(*),
            count(*) filter (where event_count < 1),
            count(*) filter (where ended_at < started_at),
            count(*) filter (where duration_seconds > {max_hours} * 3600),
            count(*) filter (where started_at > now()::timestamp + interval 1 day),
            coalesce(median(duration_seconds), 0),
            coalesce(avg(event_count), 0)
        from {SESSIONS_TABLE}
        """,
    )[0]
    sessions, empty, negative, too_long, future, median_s, avg_events = row
    bad = empty + negative + too_long + future
    problems = ", ".join(
        f"{n} {what}"
        for n, what in [
            (empty, "without events"),
            (negative, "ending before they start"),
            (too_long, f"longer than {max_hours} h"),
            (future, "starting in the future"),
        ]
        if n
    )
    return _result(
        bad == 0,
        int(bad),
        0,
        f"{bad} of {sessions} sessions are impossible: {problems}",
        sessions=int(sessions),
        median_duration_seconds=float(median_s),
        avg_events_per_session=round(float(avg_events), 2),
    )


def _session_max_hours() -> float:
    config = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return float(config.get("vars", {}).get("sessions__max_length_hours", 24))


@dg.asset_check(
    asset=AGG_FUNNEL_DAILY,
    description=(
        "Attempts reaching a required step never exceed attempts reaching the required step "
        "before it (per funnel, day, platform and channel); optional steps are left out."
    ),
)
def funnel_monotonicity(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    rows = _rows(
        warehouse,
        f"""
        with steps as (
            select
                funnel_name, attempt_date, platform, channel, step_number, attempts_reached,
                lag(attempts_reached) over (
                    partition by funnel_name, attempt_date, platform, channel
                    order by step_number
                ) as previous_reached
            from {FUNNEL_DAILY_TABLE}
            -- an optional step may be reached by fewer attempts than the step after it
            where not is_optional_step
        )
        select funnel_name, attempt_date, platform, channel, step_number, attempts_reached,
               previous_reached
        from steps
        where attempts_reached > previous_reached
        order by funnel_name, attempt_date, step_number
        """,
    )
    first = rows[0] if rows else None
    reason = (
        f"{len(rows)} funnel step(s) reached by more attempts than the step before; first: "
        f"{first[0]} on {first[1]} ({first[2]}/{first[3]}) step {first[4]} has {first[5]} > "
        f"{first[6]}"
        if first
        else ""
    )
    return _result(len(rows) == 0, len(rows), 0, reason)


@dg.asset_check(
    asset=RAW_EVENTS,
    description=(
        f"Per event and UTC day (the newest {PLAN_CHECK_DAYS} event days), the share of events "
        "that break the tracking plan stays under the plan's max_violation_rate for that event."
    ),
)
def tracking_plan_violation_rate(
    warehouse: WarehouseResource, tracking_plan: TrackingPlanResource
) -> dg.AssetCheckResult:
    settings = tracking_plan.settings()
    if settings.plan_file is None:
        return dg.AssetCheckResult(passed=True, metadata={"plan": "none (TRACKING_PLAN unset)"})
    try:
        plan = load_plan(settings.plan_file)
    except PlanError as exc:
        return _result(False, None, None, str(exc))
    with warehouse.open().connect(read_only=True) as sql:
        rates = daily_rates(sql, PLAN_CHECK_DAYS)
    over = [
        {**r, "day": r["day"].isoformat(), "threshold": plan.threshold(r["type"], r["event"])}
        for r in rates
        if r["rate"] > plan.threshold(r["type"], r["event"])
    ]
    worst = max(over, key=lambda r: r["rate"] - r["threshold"], default=None)
    reason = (
        f"{len(over)} event-day(s) over their threshold; worst: {worst['type']} "
        f"{worst['event']!r} on {worst['day']}, {worst['violating']} of {worst['events']} events "
        f"({worst['rate']:.1%} > {worst['threshold']:.1%}); see raw.tracking_plan_violations"
        if worst
        else ""
    )
    return _result(
        not over,
        len(over),
        0,
        reason,
        plan_version=plan.version,
        event_days_checked=len({r["day"] for r in rates}),
        over_threshold=dg.MetadataValue.json(
            [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in over]
        ),
    )


def build_checks(asset_keys: set[dg.AssetKey]) -> list[dg.AssetChecksDefinition]:
    """The checks whose asset exists (the funnel models may not be there yet)."""
    checks = [
        raw_freshness,
        latest_load_rejected_rate,
        duplicate_rate,
        tracking_plan_violation_rate,
        session_sanity,
        funnel_monotonicity,
    ]
    return [c for c in checks if all(k.asset_key in asset_keys for k in c.check_keys)]
