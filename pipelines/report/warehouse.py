"""Read what the report shows from the warehouse: funnels, sessions, channels (plain dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from pipelines.names import ANALYTICS, FUNNEL_PROGRESS_MART, MARTS
from pipelines.warehouse import SqlClient

TOP_LANDING_PAGES = 10
TOP_DRIVERS = 5


@dataclass(frozen=True)
class FunnelDeclaration:
    name: str
    scope: str | None
    order: str | None
    window_minutes: int | None
    step_names: tuple[str, ...]


class Reader:
    """The warehouse as the report reads it: every value comes back JSON-friendly."""

    def __init__(self, sql: SqlClient) -> None:
        self.sql = sql
        self.tables = sql.tables()

    def has(self, table: str) -> bool:
        return table in self.tables

    def columns(self, table: str) -> set[str]:
        return set(self.sql.columns(table))

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [
            {k: plain(v) for k, v in row.items()} for row in self.sql.records(sql, list(params))
        ]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any]:
        rows = self.records(sql, params)
        return rows[0] if rows else {}


def plain(value: Any) -> Any:
    """DuckDB values as JSON values: dates and times in ISO, decimals and hugeints as numbers."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool | str | float) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def missing_marts(wh: Reader) -> list[str]:
    return [m for m in MARTS if not wh.has(f"{ANALYTICS}.{m}")]


def period(wh: Reader) -> dict[str, Any]:
    return wh.one(
        "select min(session_date) as first_date, max(session_date) as last_date, "
        "count(distinct session_date) as days from analytics.fct_sessions"
    )


def headline(wh: Reader) -> dict[str, Any]:
    row = wh.one(
        """
        select
            count(*) as sessions,
            coalesce(sum(event_count), 0) as events,
            coalesce(sum(page_view_count + screen_view_count), 0) as views,
            avg(is_bounce::int) as bounce_rate,
            avg(is_engaged::int) as engagement_rate,
            avg(is_converted::int) as session_conversion_rate,
            median(duration_seconds) as median_session_seconds
        from analytics.fct_sessions
        """
    )
    users = wh.one(
        "select count(*) as users, count(*) filter (where is_identified) as identified_users "
        "from analytics.dim_users"
    )
    return {**row, **users}


def sessions_daily(wh: Reader) -> list[dict[str, Any]]:
    return wh.records(
        """
        select
            session_date as date,
            count(*) as sessions,
            count(distinct user_key) as users,
            count(*) filter (where is_bounce) as bounces,
            count(*) filter (where is_engaged) as engaged,
            count(*) filter (where is_converted) as converted,
            avg(is_bounce::int) as bounce_rate,
            avg(is_engaged::int) as engagement_rate
        from analytics.fct_sessions
        group by session_date
        order by session_date
        """
    )


def landing_pages(wh: Reader, limit: int = TOP_LANDING_PAGES) -> list[dict[str, Any]]:
    # apps have screens, not pages: their landing screen stands in
    return wh.records(
        """
        with landings as (
            select
                coalesce(landing_page_path, 'screen: ' || landing_screen_name, '(none)')
                    as landing_page,
                is_bounce,
                is_converted
            from analytics.fct_sessions
        )
        select
            landing_page,
            count(*) as sessions,
            avg(is_bounce::int) as bounce_rate,
            avg(is_converted::int) as conversion_rate
        from landings
        group by landing_page
        order by sessions desc, landing_page
        limit ?
        """,
        [limit],
    )


def channels(wh: Reader) -> list[dict[str, Any]]:
    return wh.records(
        """
        select
            channel,
            count(*) as sessions,
            count(distinct user_key) as users,
            avg(is_bounce::int) as bounce_rate,
            avg(is_engaged::int) as engagement_rate,
            avg(is_converted::int) as conversion_rate
        from analytics.fct_sessions
        group by channel
        order by sessions desc, channel
        """
    )


def channel_platform_sessions(wh: Reader) -> list[dict[str, Any]]:
    return wh.records(
        """
        select channel, coalesce(platform, 'unknown') as platform, count(*) as sessions
        from analytics.fct_sessions
        group by all
        order by channel, platform
        """
    )


def retention(wh: Reader) -> list[dict[str, Any]]:
    """Day cohorts over every platform and channel: one cell per cohort day and period."""
    return wh.records(
        """
        select
            cohort_date,
            period_number,
            sum(cohort_size) as cohort_size,
            sum(retained_entities) as retained,
            sum(retained_entities) / sum(cohort_size) as retention_rate,
            bool_and(is_period_complete) as is_complete
        from analytics.agg_retention
        where cohort_grain = 'day'
        group by cohort_date, period_number
        order by cohort_date, period_number
        """
    )


def top_drivers(wh: Reader, limit: int = TOP_DRIVERS) -> list[dict[str, Any]]:
    """Per funnel and step transition, the features whose odds ratio is furthest from 1 (in
    either direction, on the log scale), significant ones first."""
    return wh.records(
        """
        select * exclude (rank)
        from (
            select
                funnel_name,
                from_step,
                to_step,
                to_step_name,
                feature,
                converted_with,
                dropped_with,
                converted_total,
                dropped_total,
                odds_ratio,
                odds_ratio_ci_lower,
                odds_ratio_ci_upper,
                is_significant,
                row_number() over (
                    partition by funnel_name, from_step
                    order by is_significant desc, abs(ln(odds_ratio)) desc, feature
                ) as rank
            from analytics.agg_conversion_drivers
        )
        where rank <= ?
        order by funnel_name, from_step, rank
        """,
        [limit],
    )


def declared_funnels(dbt_project_dir: Path | None) -> list[FunnelDeclaration]:
    """Funnels from dbt_project.yml (so a declared funnel without attempts still shows)."""
    if dbt_project_dir is None or not (dbt_project_dir / "dbt_project.yml").exists():
        return []
    config = yaml.safe_load((dbt_project_dir / "dbt_project.yml").read_text()) or {}
    out = []
    for f in (config.get("vars") or {}).get("funnels__definitions") or []:
        steps = [s.get("name", "") for s in f.get("steps") or []]
        # dbt's funnel_position_names labels the positions the same way (a test compares them)
        if f.get("order") == "any":
            steps = [f"steps_{k}_of_{len(steps)}" for k in range(1, len(steps) + 1)]
        out.append(
            FunnelDeclaration(
                name=str(f["name"]),
                scope=f.get("scope"),
                order=f.get("order"),
                window_minutes=f.get("window_minutes"),
                step_names=tuple(steps),
            )
        )
    return out


def funnels(wh: Reader, declared: list[FunnelDeclaration]) -> list[dict[str, Any]]:
    """Each funnel: steps with counts and conversion, medians, breakdown by platform/channel."""
    seen = wh.records(
        """
        select
            funnel_name as name,
            any_value(funnel_scope) as scope,
            any_value(funnel_order) as "order",
            any_value(window_minutes) as window_minutes,
            max(funnel_step_count) as step_count
        from analytics.fct_funnel_progress
        group by funnel_name
        """
    )
    by_name = {f["name"]: f for f in seen}
    names = [d.name for d in declared] + sorted(
        n for n in by_name if n not in {d.name for d in declared}
    )
    decl = {d.name: d for d in declared}
    step_columns = sorted(
        (
            c
            for c in wh.columns(f"{ANALYTICS}.{FUNNEL_PROGRESS_MART}")
            if c.startswith("step_") and c.endswith("_at") and c[5:-3].isdigit()
        ),
        key=lambda c: int(c[5:-3]),
    )
    out = []
    for name in names:
        meta = by_name.get(name) or {}
        d = decl.get(name)
        out.append(
            _funnel(
                wh,
                name,
                scope=meta.get("scope") or (d.scope if d else None),
                order=meta.get("order") or (d.order if d else None),
                window_minutes=meta.get("window_minutes") or (d.window_minutes if d else None),
                declared_steps=d.step_names if d else (),
                step_columns=step_columns,
            )
        )
    return out


def _funnel(
    wh: Reader,
    name: str,
    *,
    scope: str | None,
    order: str | None,
    window_minutes: int | None,
    declared_steps: tuple[str, ...],
    step_columns: list[str],
) -> dict[str, Any]:
    steps = wh.records(
        """
        select
            step_number,
            any_value(step_name) as step_name,
            sum(attempts_reached) as reached,
            sum(attempts_dropped_off) as dropped_off,
            sum(attempts_still_open) as still_open,
            sum(attempts_excluded) as excluded,
            bool_or(is_optional_step) as optional
        from analytics.agg_funnel_daily
        where funnel_name = ?
        group by step_number
        order by step_number
        """,
        [name],
    )
    if not steps:
        steps = [
            {
                "step_number": i,
                "step_name": s,
                "reached": 0,
                "dropped_off": 0,
                "still_open": 0,
                "excluded": 0,
                "optional": False,
            }
            for i, s in enumerate(declared_steps, start=1)
        ]
    medians = _median_seconds_to_reach(wh, name, step_columns[: len(steps)])
    entered = steps[0]["reached"] if steps else 0
    previous = entered
    for s in steps:
        s["conversion_from_first"] = s["reached"] / entered if entered else None
        s["conversion_from_previous"] = s["reached"] / previous if previous else None
        s["median_seconds_to_reach"] = medians.get(s["step_number"])
        if not s["optional"]:  # a step is measured from the required step before it
            previous = s["reached"]
    converted = steps[-1]["reached"] if steps else 0
    convert = wh.one(
        "select median(seconds_to_convert) as median_seconds_to_convert, "
        "count(*) filter (where is_still_open) as still_open "
        "from analytics.fct_funnel_progress where funnel_name = ?",
        [name],
    )
    skipped = _optional_steps_skipped(wh, name, steps, step_columns[: len(steps)])
    last_step = len(steps)
    breakdowns = {
        dim: wh.records(
            f"""
            with by_step as (
                select
                    coalesce({dim}, 'unknown') as {dim},
                    step_number,
                    any_value(step_name) as step_name,
                    sum(attempts_entered) as entered,
                    sum(attempts_reached) as reached
                from analytics.agg_funnel_daily
                where funnel_name = ?
                group by all
            )
            select *, reached / nullif(entered, 0) as conversion_from_first,
                   step_number = ? as is_last_step
            from by_step
            order by {dim}, step_number
            """,
            [name, last_step],
        )
        for dim in ("platform", "channel")
    }
    return {
        "name": name,
        "scope": scope,
        "order": order,
        "window_minutes": window_minutes,
        "step_count": len(steps),
        "entered": entered,
        "converted": converted,
        "conversion_rate": converted / entered if entered else None,
        "still_open": convert.get("still_open", 0),
        # attempts counted in no step: an exclusion event came between two of their steps
        "excluded": steps[0]["excluded"] if steps else 0,
        # optional steps: taken (reached) and skipped (a later required step reached without it)
        "optional_steps": [
            {
                "step_name": s["step_name"],
                "taken": s["reached"],
                "skipped": skipped[s["step_number"]],
            }
            for s in steps
            if s["optional"]
        ],
        "median_seconds_to_convert": convert.get("median_seconds_to_convert"),
        "steps": steps,
        "by_platform": breakdowns["platform"],
        "by_channel": breakdowns["channel"],
    }


def _median_seconds_to_reach(
    wh: Reader, name: str, step_columns: list[str]
) -> dict[int, float | None]:
    if not step_columns:
        return {}
    # columns come from information_schema (step_<n>_at), never from input
    parts = ", ".join(
        f"median(epoch({c}) - epoch(started_at)) as s{int(c[5:-3])}" for c in step_columns
    )
    row = wh.one(
        f"select {parts} from analytics.fct_funnel_progress "
        "where funnel_name = ? and not is_excluded",
        [name],
    )
    return {int(k[1:]): v for k, v in row.items()}


def _optional_steps_skipped(
    wh: Reader, name: str, steps: list[dict[str, Any]], step_columns: list[str]
) -> dict[int, int]:
    """Per optional step number: the attempts (not excluded) that reached a later required step
    without it."""
    out = {}
    required = [c for c, s in zip(step_columns, steps, strict=False) if not s["optional"]]
    for column, s in zip(step_columns, steps, strict=False):
        later = [c for c in required if int(c[5:-3]) > s["step_number"]]
        if not s["optional"] or not later:
            continue
        # columns come from information_schema (step_<n>_at), never from input
        reached_later = " or ".join(f"{c} is not null" for c in later)
        row = wh.one(
            f"select count(*) as n from analytics.fct_funnel_progress where funnel_name = ? "
            f"and not is_excluded and {column} is null and ({reached_later})",
            [name],
        )
        out[s["step_number"]] = row["n"]
    return out
