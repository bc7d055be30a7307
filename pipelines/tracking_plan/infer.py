"""Draft a tracking plan from the events already in the warehouse, so a team starts from its
traffic rather than from a blank page.

Per track event, page and screen name (each messageId once): a JSON Schema for `properties`
with each key's JSON type(s), the keys present in at least `required_share` of the events as
`required`, and an `enum` for string keys with few distinct values (at most `max_enum`, each
seen on average at least ENUM_MIN_SUPPORT times, so a handful of events does not freeze one).
The draft is a start: read it, loosen or tighten it, then point TRACKING_PLAN at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import yaml  # type: ignore[import-untyped]

from pipelines.names import RAW_EVENTS
from pipelines.tracking_plan.plan import SECTIONS
from pipelines.warehouse import Warehouse

ENUM_MIN_SUPPORT: Final = 10
# DuckDB's json_type -> JSON Schema's type
_JSON_TYPES: Final = {
    "VARCHAR": "string",
    "BIGINT": "integer",
    "UBIGINT": "integer",
    "DOUBLE": "number",
    "BOOLEAN": "boolean",
    "OBJECT": "object",
    "ARRAY": "array",
    "NULL": "null",
}

_STATS_SQL: Final = f"""
with events as (
  select type, coalesce(case when type = 'track' then event else name end, '') as name,
         coalesce(properties, '{{}}') as properties
  from {RAW_EVENTS}
  where type in ('track', 'page', 'screen')
  qualify row_number() over (partition by message_id) = 1
),
totals as (
  select type, name, count(*) as events from events group by all
),
pairs as (
  select type, name, properties, unnest(json_keys(properties)) as key from events
),
typed as (
  -- a JSON pointer: any key, whatever characters it holds
  select type, name, key,
         '/' || replace(replace(key, '~', '~0'), '/', '~1') as pointer, properties
  from pairs
),
valued as (
  select type, name, key, json_type(properties, pointer) as json_type,
         json_extract_string(properties, pointer) as text
  from typed
),
per_key as (
  select type, name, key, count(*) as seen,
         list(distinct json_type order by json_type) as json_types,
         count(distinct text) filter (where json_type = 'VARCHAR') as strings,
         case when count(distinct text) filter (where json_type = 'VARCHAR') <= ?
           then list(distinct text order by text) filter (where json_type = 'VARCHAR') end
           as string_values
  from valued
  group by all
)
select t.type, t.name, t.events, k.key, k.seen, k.json_types, k.strings, k.string_values
from totals t left join per_key k using (type, name)
order by t.type, t.name, k.key
"""


@dataclass(frozen=True)
class Draft:
    events: int  # events the draft was drawn from
    entries: int  # event, page and screen names it lists
    plan: dict[str, Any]

    def to_yaml(self) -> str:
        header = (
            f"# drafted by `trackflow plan infer` from {self.events} events; review before use\n"
        )
        return header + yaml.safe_dump(self.plan, sort_keys=False, allow_unicode=True)


def _types(json_types: list[str]) -> str | list[str]:
    types = sorted({_JSON_TYPES.get(t, "null") for t in json_types})
    if "integer" in types and "number" in types:
        types.remove("integer")  # every integer is a number
    return types[0] if len(types) == 1 else types


def _property(row: dict[str, Any], max_enum: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _types(row["json_types"])}
    values = row["string_values"]
    if (
        schema["type"] == "string"
        and values
        and len(values) <= max_enum
        and row["seen"] >= ENUM_MIN_SUPPORT * len(values)
    ):
        schema["enum"] = list(values)
    return schema


def infer_plan(warehouse: Warehouse, required_share: float = 0.99, max_enum: int = 10) -> Draft:
    """A draft plan (see the module docstring) from raw.tracking_events."""
    with warehouse.connect(read_only=True) as sql:
        table = sql.arrow(_STATS_SQL, [max_enum])
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    totals: dict[tuple[str, str], int] = {}
    for row in table.to_pylist():
        key = (row["type"], row["name"])
        totals[key] = row["events"]
        schema = entries.setdefault(key, {"type": "object", "properties": {}, "required": []})
        if row["key"] is None:  # a name whose events never carry a property
            continue
        schema["properties"][row["key"]] = _property(row, max_enum)
        if row["seen"] >= required_share * row["events"]:
            schema["required"].append(row["key"])
    plan: dict[str, Any] = {"unplanned_events": "flag"}
    for section, kind in SECTIONS.items():
        named: dict[str, Any] = {}
        for (k, name), schema in sorted(entries.items()):
            if k == kind:
                # no empty lists or maps in the draft: they say nothing
                schema = {key: value for key, value in schema.items() if value}
                named[name] = {"description": f"seen in {totals[(k, name)]} events"}
                named[name]["properties"] = schema
        if named:
            plan[section] = named
    return Draft(sum(totals.values()), len(entries), plan)
