"""Batch validation of the event envelope v1 (`pipelines/envelope.py`).

A micro-batch of Kafka messages arrives as one Arrow table; DuckDB's vectorised JSON functions
check every rule in one SQL pass and split it into accepted rows (typed envelope columns) and
rejected rows (original bytes + a stable error code and a human message). Python touches single
messages only for the rare ones that might be nested too deeply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.compute import compute_connection
from pipelines.config import DEFAULT_MAX_EVENT_BYTES
from pipelines.envelope import (
    ENVELOPE_TYPES,
    MAX_DEPTH,
    MAX_ID_LENGTH,
    MAX_PROPERTY_KEYS,
    MAX_YEAR,
    MIN_YEAR,
)

# input of `validate`: one row per Kafka message
MESSAGE_SCHEMA: Final = pa.schema(
    [
        ("_kafka_topic", pa.string()),
        ("_kafka_partition", pa.int32()),
        ("_kafka_offset", pa.int64()),
        ("_kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.binary()),
        ("value", pa.binary()),
    ]
)

ACCEPTED_COLUMNS: Final = (
    "_kafka_topic",
    "_kafka_partition",
    "_kafka_offset",
    "_kafka_timestamp",
    "_kafka_key",
    "message_id",
    "type",
    "event",
    "name",
    "anonymous_id",
    "user_id",
    "timestamp",
    "sent_at",
    "received_at",
    "context",
    "properties",
    "traits",
    "payload",
)
REJECTED_COLUMNS: Final = (
    "_kafka_topic",
    "_kafka_partition",
    "_kafka_offset",
    "_kafka_timestamp",
    "_kafka_key",
    "key_bytes",
    "payload",
    "error_code",
    "error_message",
)

_FIELDS: Final = (
    "messageId",
    "type",
    "event",
    "name",
    "anonymousId",
    "userId",
    "timestamp",
    "sentAt",
    "receivedAt",
    "context",
    "properties",
    "traits",
    "details",
)
_PATHS: Final = "[" + ", ".join(f"'$.\"{f}\"'" for f in _FIELDS) + "]"
# the document itself ('$') first: its type and the fields' come from one parse
_TYPE_PATHS: Final = "['$', " + _PATHS[1:]
_TYPES_SQL: Final = "[" + ", ".join(f"'{t}'" for t in ENVELOPE_TYPES) + "]"


def _jtype(name: str) -> str:
    # json type of the field; 'NULL' for missing keys and explicit nulls alike
    return f"t_{_FIELDS.index(name)}"


def _str(name: str) -> str:
    # the string value, or the JSON text of an object/array
    return f"v_{_FIELDS.index(name)}"


# each list element pulled out once, as its own column
_FIELD_COLUMNS: Final = ",\n    ".join(
    f"coalesce(jt[{i + 2}], 'NULL') as t_{i}, js[{i + 1}] as v_{i}" for i in range(len(_FIELDS))
)


def _ts(name: str) -> str:
    return {"timestamp": "ts_device", "sentAt": "ts_sent", "receivedAt": "ts_received"}[name]


_YEAR_START: Final = "timestamptz '{year:04d}-01-01 00:00:00+00'"


def _ts_ok(name: str) -> str:
    ts = _ts(name)
    # bounds, not year(): year() of a timestamptz goes through the time zone calendar, ten
    # times the cost of a comparison; +/-infinity fall outside the bounds too
    return (
        f"({_jtype(name)} = 'NULL' or ({_jtype(name)} = 'VARCHAR' and {ts} is not null"
        f" and {ts} >= {_YEAR_START.format(year=MIN_YEAR)}"
        f" and {ts} < {_YEAR_START.format(year=MAX_YEAR)}))"
    )


def _ts_message(name: str) -> str:
    return (
        f"'{name} ' || coalesce(to_json({_str(name)})::varchar, '') "
        f"|| ' is not an ISO-8601 date-time in {MIN_YEAR}..{MAX_YEAR - 1}'"
    )


def _id_ok(name: str) -> str:
    return (
        f"({_jtype(name)} = 'NULL' or ({_jtype(name)} = 'VARCHAR'"
        f" and length({_str(name)}) <= {MAX_ID_LENGTH}))"
    )


def _object_ok(name: str) -> str:
    return f"({_jtype(name)} in ('NULL', 'OBJECT'))"


_LEGACY = (
    f"({_jtype('type')} = 'VARCHAR' and not list_contains({_TYPES_SQL}, {_str('type')})"
    f" and {_jtype('messageId')} = 'NULL' and {_jtype('event')} = 'NULL'"
    f" and {_jtype('anonymousId')} = 'NULL' and {_jtype('userId')} = 'NULL')"
)

# one CASE, first failing rule wins; NULL = accepted
_ERROR_CASE = f"""
case
  when value is null then 'null_value'
  when octet_length(value) > {{max_bytes}} then 'too_large'
  when key is not null and key_s is null then 'bad_key'
  when s is null then 'not_utf8'
  when top_type is null then 'not_json'
  when not is_object then 'not_object'
  when is_deep then 'too_deep'
  when list_unique(top_keys) <> len(top_keys) then 'duplicate_keys'
  when contains(s, chr(0)) or contains(s, '\\u0000') then 'nul_byte'
  when is_legacy then null
  when {_jtype("type")} <> 'VARCHAR' or not list_contains({_TYPES_SQL}, {_str("type")})
    then 'bad_type'
  when {_jtype("messageId")} = 'NULL' or {_str("messageId")} = '' then 'missing_message_id'
  when not {_id_ok("messageId")} then 'bad_message_id'
  when not {_id_ok("anonymousId")} or not {_id_ok("userId")} then 'bad_identity'
  when coalesce({_str("anonymousId")}, '') = '' and coalesce({_str("userId")}, '') = ''
    then 'missing_identity'
  when {_str("type")} = 'track' and ({_jtype("event")} = 'NULL' or {_str("event")} = '')
    then 'missing_event'
  when {_jtype("event")} not in ('NULL', 'VARCHAR') or {_jtype("name")} not in ('NULL', 'VARCHAR')
    or not {_object_ok("context")} or not {_object_ok("properties")}
    or not {_object_ok("traits")} then 'bad_field'
  when not {_ts_ok("timestamp")} or not {_ts_ok("sentAt")} or not {_ts_ok("receivedAt")}
    then 'bad_timestamp'
  when {_jtype("properties")} = 'OBJECT'
    and length({_str("properties")}) > {5 * MAX_PROPERTY_KEYS}
    and len(json_keys({_str("properties")})) > {MAX_PROPERTY_KEYS} then 'too_many_properties'
  else null
end
"""

_MESSAGE_CASE = f"""
case error_code
  when 'null_value' then 'Kafka tombstone: the message has no value'
  when 'too_large' then 'message is ' || octet_length(value)
    || ' bytes; the limit is {{max_bytes}}'
  when 'bad_key' then 'Kafka key is not valid UTF-8'
  when 'not_utf8' then 'message value is not valid UTF-8'
  when 'not_json' then 'message value is not valid JSON'
  when 'not_object' then 'expected a JSON object, got ' || lower(top_type)
  when 'too_deep' then 'objects/arrays nest deeper than {MAX_DEPTH} levels'
  when 'duplicate_keys' then 'duplicate keys in the top-level object'
  when 'nul_byte' then 'message contains a NUL character'
  when 'bad_type' then 'type ' || coalesce(to_json({_str("type")})::varchar, '(missing)')
    || ' is not one of {"|".join(ENVELOPE_TYPES)}'
  when 'missing_message_id' then 'messageId is missing or empty'
  when 'bad_message_id' then 'messageId ' || left(to_json({_str("messageId")})::varchar, 80)
    || ' is not a string of at most {MAX_ID_LENGTH} characters'
  when 'bad_identity'
    then 'anonymousId/userId must be strings of at most {MAX_ID_LENGTH} characters'
  when 'missing_identity' then 'neither anonymousId nor userId is set'
  when 'missing_event' then 'track call without an event name'
  when 'bad_field' then 'wrong JSON type for ' || concat_ws(', ',
      case when {_jtype("event")} not in ('NULL', 'VARCHAR') then 'event (want string)' end,
      case when {_jtype("name")} not in ('NULL', 'VARCHAR') then 'name (want string)' end,
      case when not {_object_ok("context")} then 'context (want object)' end,
      case when not {_object_ok("properties")} then 'properties (want object)' end,
      case when not {_object_ok("traits")} then 'traits (want object)' end)
  when 'bad_timestamp' then case
      when not {_ts_ok("timestamp")} then {_ts_message("timestamp")}
      when not {_ts_ok("sentAt")} then {_ts_message("sentAt")}
      else {_ts_message("receivedAt")} end
  when 'too_many_properties' then 'properties has ' || len(json_keys({_str("properties")}))
    || ' keys; the limit is {MAX_PROPERTY_KEYS}'
end
"""

_VALIDATE_SQL = f"""
with decoded as (
  select *, try(decode(value)) as s, try(decode(key)) as key_s from batch
),
typed as (
  -- one parse for every type: NULL for invalid JSON, else the top level's, then each field's
  select *, try(json_type(s, {_TYPE_PATHS})) as jt from decoded
),
extracted as (
  select *,
    jt[1] as top_type,
    coalesce(jt[1] = 'OBJECT', false) as is_object,
    case when jt[1] = 'OBJECT' then json_extract_string(s, {_PATHS}) end as js,
    case when jt[1] = 'OBJECT' then json_keys(s) end as top_keys
  from typed
),
fields as (
  select *,
    {_FIELD_COLUMNS}
  from extracted
),
timed as (
  select *,
    try_cast({_str("timestamp")} as timestamptz) as ts_device,
    try_cast({_str("sentAt")} as timestamptz) as ts_sent,
    try_cast({_str("receivedAt")} as timestamptz) as ts_received
  from fields
),
flagged as (
  select *,
    {{is_deep}} as is_deep,
    coalesce({_LEGACY}, false) as is_legacy
  from timed
),
checked as (
  select *, {_ERROR_CASE} as error_code from flagged
),
validated as (
  select *, {_MESSAGE_CASE} as error_message from checked
)
"""

_SPLIT_SQL = (
    _VALIDATE_SQL
    + f"""
select
  error_code, error_message, key as key_bytes, value as raw_payload,
  _kafka_topic, _kafka_partition, _kafka_offset, _kafka_timestamp, key_s as _kafka_key,
  case when is_legacy then 'legacy-' || sha256(s) else {_str("messageId")} end as message_id,
  case when is_legacy then 'track' else {_str("type")} end as type,
  case when is_legacy then {_str("type")} else {_str("event")} end as event,
  {_str("name")} as name,
  case when is_legacy then coalesce(nullif(key_s, ''), 'legacy-' || sha256(s))
    else nullif({_str("anonymousId")}, '') end as anonymous_id,
  case when is_legacy then null else nullif({_str("userId")}, '') end as user_id,
  coalesce(ts_device, ts_received, _kafka_timestamp) as timestamp,
  ts_sent as sent_at,
  coalesce(ts_received, _kafka_timestamp) as received_at,
  case when {_jtype("context")} = 'OBJECT' then {_str("context")} end as context,
  case
    when is_legacy and {_jtype("details")} = 'OBJECT' then {_str("details")}
    when {_jtype("properties")} = 'OBJECT' then {_str("properties")}
  end as properties,
  case when {_jtype("traits")} = 'OBJECT' then {_str("traits")} end as traits,
  s as payload
from validated
"""
)


def _nesting_depth(text: str) -> int:
    depth = best = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def _deep_messages(messages: pa.Table) -> list[int]:
    """(offset, partition) codes of messages nested deeper than MAX_DEPTH.

    Only messages with more than MAX_DEPTH brackets can be that deep, so the exact scan runs on
    the survivors of a bracket count (almost never any); bytes.count is far cheaper per message
    than Arrow's count_substring kernel.
    """
    deep: list[int] = []
    values = messages.column("value").to_pylist()
    for i, raw in enumerate(values):
        if raw is None or raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
            continue
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            continue
        if _nesting_depth(text) > MAX_DEPTH:
            row_offset = messages.column("_kafka_offset")[i].as_py()
            row_partition = messages.column("_kafka_partition")[i].as_py()
            deep.append(row_offset * 100000 + row_partition)
    return deep


def validate(
    messages: pa.Table, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> tuple[pa.Table, pa.Table]:
    """Split a batch of Kafka messages (MESSAGE_SCHEMA) into (accepted, rejected) Arrow tables;
    messages larger than `max_bytes` are rejected as too_large."""
    con = compute_connection()
    con.register("batch", messages)
    deep = _deep_messages(messages)
    # almost never any: a constant spares a list lookup per row (~20% of the pass)
    is_deep = (
        "(_kafka_offset * 100000 + _kafka_partition) in (select unnest(?))" if deep else "false"
    )
    try:
        query = _SPLIT_SQL.replace("{is_deep}", is_deep).replace("{max_bytes}", str(int(max_bytes)))
        result = con.sql(query, params=[deep] if deep else None).to_arrow_table()
    finally:
        con.unregister("batch")
    errors = result.column("error_code")
    if errors.null_count == result.num_rows:  # the usual batch: filtering would copy every value
        accepted, bad = result.select(list(ACCEPTED_COLUMNS)), result.slice(0, 0)
    else:
        ok = pc.is_null(errors)
        accepted = result.filter(ok).select(list(ACCEPTED_COLUMNS))
        bad = result.filter(pc.invert(ok))
    rejected = pa.table(
        {
            "_kafka_topic": bad.column("_kafka_topic"),
            "_kafka_partition": bad.column("_kafka_partition"),
            "_kafka_offset": bad.column("_kafka_offset"),
            "_kafka_timestamp": bad.column("_kafka_timestamp"),
            "_kafka_key": bad.column("_kafka_key"),
            "key_bytes": bad.column("key_bytes"),
            "payload": bad.column("raw_payload"),
            "error_code": bad.column("error_code"),
            "error_message": bad.column("error_message"),
        }
    )
    return accepted, rejected


def messages_table(
    records: list[tuple[str, int, int, int, bytes | None, bytes | None]],
) -> pa.Table:
    """Build the validator's input from (topic, partition, offset, timestamp_ms, key, value)."""
    cols: list[Sequence[Any]] = (
        list(zip(*records, strict=True)) if records else [[] for _ in range(6)]
    )
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(cols, MESSAGE_SCHEMA, strict=True)],
        schema=MESSAGE_SCHEMA,
    )


def event_days(accepted: pa.Table) -> set[date]:
    """UTC days of the accepted events' skew-corrected time (what the marts partition on).

    The same formula as dbt's `event_at_sql` macro; tests/dbt/test_shared_rules.py fails when
    the two disagree.
    """
    if accepted.num_rows == 0:
        return set()
    ts, sent, received = (accepted.column(c) for c in ("timestamp", "sent_at", "received_at"))
    corrected = pc.if_else(pc.is_null(sent), ts, pc.subtract(received, pc.subtract(sent, ts)))
    days = pc.unique(pc.cast(corrected, pa.date32()))
    return {d for d in days.to_pylist() if d is not None}


def dumps(event: dict[str, object]) -> bytes:
    """Serialise an envelope the way producers should: compact UTF-8 JSON."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
