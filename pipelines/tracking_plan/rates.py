"""Violation rates of the tracking plan, per event and UTC day of the event: what the Dagster
check compares with the plan's thresholds and what the report shows. One query, one owner.

An event's population is every planned-type event that arrived: those loaded into
raw.tracking_events and those the plan blocked (their violations say so), each messageId once.
"""

from __future__ import annotations

from typing import Any, Final

from pipelines.names import RAW_EVENTS, RAW_VIOLATIONS
from pipelines.warehouse.base import SqlClient

_DAY: Final = "cast(timezone('UTC', timestamp) as date)"

RATES_SQL: Final = f"""
with arrived as (
  select message_id, type, coalesce(case when type = 'track' then event else name end, '')
         as event, {_DAY} as day
  from {RAW_EVENTS}
  where type in ('track', 'page', 'screen')
  union
  select message_id, type, event, {_DAY} as day
  from {RAW_VIOLATIONS}
  where action = 'blocked'
),
violating as (
  select distinct message_id from {RAW_VIOLATIONS}
),
recent as (
  select * from arrived where day > (select max(day) from arrived) - ?
)
select day, type, event, count(*) as events,
       count(v.message_id) as violating,
       count(v.message_id) / count(*) as rate
from recent left join violating v using (message_id)
group by all
order by day, type, event
"""

BY_RULE_SQL: Final = f"""
select type, event, rule, count(*) as violations, count(distinct message_id) as events
from {RAW_VIOLATIONS}
group by all
order by violations desc, type, event, rule
"""


def daily_rates(sql: SqlClient, days: int = 7) -> list[dict[str, Any]]:
    """Per (day, type, event) of the newest `days` event days: events, violating, rate.
    Empty when no plan ever ran (no violations table)."""
    if not sql.has_table(RAW_VIOLATIONS) or not sql.has_table(RAW_EVENTS):
        return []
    return sql.records(RATES_SQL, [days])


def violations_by_rule(sql: SqlClient) -> list[dict[str, Any]]:
    """Violations and violating events per (type, event, rule), most first."""
    if not sql.has_table(RAW_VIOLATIONS):
        return []
    return sql.records(BY_RULE_SQL)
