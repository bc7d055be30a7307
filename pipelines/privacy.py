"""Personal data on the ingest hot path: minimisation before the warehouse, suppression.

Minimisation runs on every accepted micro-batch before it is loaded (so no table ever holds the
clear value): configured fields are dropped or replaced by a keyed hash (HMAC-SHA256 with a
secret key, computed inside DuckDB), and `context.ip` goes through the IP rule of
`pipelines/ip.py` (the collector applies the same rule). The same input always gives the same
token, so joins on a pseudonymised field still work. Suppression drops the rows of people erased
with `trackflow forget` (pipelines/erasure.py), matched by their ids' tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import pyarrow as pa

from pipelines.compute import IP_RULE_FUNCTIONS, REPLACE_JSON_VALUES, query_arrow
from pipelines.config import IpMode, PrivacyConfig
from pipelines.names import RAW_SUPPRESSIONS
from pipelines.warehouse import Warehouse

_JSON_COLUMNS: Final = ("context", "properties", "traits")
_ID_FIELDS: Final = ("anonymousId", "userId", "previousId")
# SQL: the ids a dead letter's payload (bytes) names, the rule of erasure and suppression alike:
# anonymousId, userId, previousId from the JSON where it parses, else the same fields read as
# text (`"userId": "x"`) from bytes that are valid UTF-8
PAYLOAD_IDS: Final = (
    "list_filter(coalesce("
    "try(json_extract_string(try(decode(payload)), ["
    + ", ".join(f"'$.{f}'" for f in _ID_FIELDS)
    + "])), "
    "regexp_extract_all(coalesce(try(decode(payload)), ''), "
    f'\'"(?:{"|".join(_ID_FIELDS)})"\\s*:\\s*"([^"\\\\]*)"\', 1)), x -> x is not null)'
)
_FIELD_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class PrivacyError(ValueError):
    pass


def _check_path(path: str, setting: str) -> tuple[str, ...]:
    parts = tuple(path.split("."))
    if (
        len(parts) < 2
        or parts[0] not in _JSON_COLUMNS
        or not all(p and set(p) <= _FIELD_CHARS for p in parts)
    ):
        raise PrivacyError(
            f"{setting}: {path!r} must look like context.<field>, properties.<field> or "
            "traits.<field> (letters, digits, underscores; dots between levels)"
        )
    return parts


@dataclass(frozen=True)
class PrivacySettings:
    drop: tuple[tuple[str, ...], ...] = ()
    pseudonymise: tuple[tuple[str, ...], ...] = ()
    ip_mode: IpMode = "truncate"
    key: bytes = field(default=b"", repr=False)

    @classmethod
    def resolve(cls, config: PrivacyConfig, warehouse: Warehouse) -> PrivacySettings:
        """The rules of `config`, with the pseudonym key it names or the warehouse keeps."""
        return cls(
            drop=tuple(_check_path(p, "TRACKFLOW_DROP_FIELDS") for p in config.drop_fields),
            pseudonymise=tuple(
                _check_path(p, "TRACKFLOW_PSEUDONYMIZE_FIELDS") for p in config.pseudonymize_fields
            ),
            ip_mode=config.ip_mode,
            key=pseudonym_key(config, warehouse),
        )

    def token(self, value: str) -> str:
        """The pseudonym of a value, as the SQL below computes it (for lookups and tests)."""
        return "p_" + hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()[:32]


def id_sha256(value: str) -> str:
    """The unkeyed hash of an erased id that staging matches on (dbt macro `erased_id_hash`)."""
    return hashlib.sha256(value.encode()).hexdigest()


def pseudonym_key(config: PrivacyConfig, warehouse: Warehouse) -> bytes:
    """TRACKFLOW_PSEUDONYM_KEY, else a random key the warehouse keeps on this host (0600)."""
    if config.pseudonym_key:
        return config.pseudonym_key.encode()
    path = warehouse.pseudonym_key_file()
    if path is None:
        raise PrivacyError(
            f"TRACKFLOW_PSEUDONYM_KEY is not set; {warehouse.describe()} is shared between "
            "hosts, so every host must pseudonymise with the same configured key"
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _hmac_sql(key: bytes, value_sql: str) -> str:
    """HMAC-SHA256 in DuckDB SQL (RFC 2104 over blobs), truncated like PrivacySettings.token."""
    block = 64
    k = hashlib.sha256(key).digest() if len(key) > block else key
    k = k.ljust(block, b"\x00")
    ipad = bytes(b ^ 0x36 for b in k).hex()
    opad = bytes(b ^ 0x5C for b in k).hex()
    inner = f"unhex(sha256(unhex('{ipad}') || encode({value_sql})))"
    return f"('p_' || left(sha256(unhex('{opad}') || {inner}), 32))"


def _patch(parts: tuple[str, ...], value_sql: str) -> str:
    """json_object nesting that sets parts[-1] under parts[:-1] (merge-patch semantics)."""
    expr = value_sql
    for key in reversed(parts):
        expr = f"json_object('{key}', {expr})"
    return expr


def _json_path(parts: tuple[str, ...]) -> str:
    return "$." + ".".join(f'"{p}"' for p in parts)


def _ip_sql(ip: str, mode: IpMode) -> str:
    # pipelines/ip.py's rule, registered as a function on the compute connection
    return "null" if mode == "none" else f"{IP_RULE_FUNCTIONS[mode]}({ip})"


@dataclass(frozen=True)
class _Rule:
    path: tuple[str, ...]  # column, then the keys inside it
    new_value: Callable[[str], str]  # sql of the new value, given the sql of the old one
    # the old value is replaced wherever it is a member value, in every JSON column (an IP
    # address is the same personal datum wherever it appears); other rules touch their path
    everywhere: bool = False


def _rewrite(target: str, parts: tuple[str, ...], rule: int) -> str:
    """SQL for the target JSON text with the field at `parts` set to new_<rule> (merge-patch)."""
    old, new = f"old_{rule}", f"new_{rule}"
    return (
        f"case when {old} is null "
        f"or json_extract_string({target}, '{_json_path(parts)}') is null then {target} "
        f"else json_merge_patch({target}, {_patch(parts, new)})::varchar end"
    )


def _swapped(target: str, rule: int) -> str:
    """SQL for the target JSON text with old_<rule> replaced by new_<rule> as a member value,
    by text: NULL where the value does not occur or the exact route is needed anyway.

    The quoted old value is replaced after a colon (`:"v"`, or with JSON's optional space
    `: "v"`, which in JSON can only be a member value). Computed once, in its own step, because
    `_replace_everywhere` needs it in a condition and as the result (a CASE evaluates each
    branch's expression again), and the second replace runs only where the spaced form occurs:
    on a payload each replace costs more than the rest of the rule.
    """
    old, new = f"old_{rule}", f"new_{rule}"
    quoted = f"('\"' || {old} || '\"')"
    replacement = f"coalesce('\"' || {new} || '\"', 'null')"
    compact = f"replace({target}, ':' || {quoted}, ':' || {replacement})"
    spaced = f"replace({compact}, ': ' || {quoted}, ': ' || {replacement})"
    return (
        f"case when {target} is null or {old} is null or not contains({target}, {old}) "
        f"or contains({target}, '\\') then null "
        f"when contains({target}, ': ' || {quoted}) then {spaced} else {compact} end"
    )


def _swapped_column(target: str, rule: int) -> str:
    return f"swapped_{rule}_{target}"


def _replace_everywhere(target: str, rule: int) -> str:
    """SQL for the target JSON text with every member value equal to old_<rule> set to
    new_<rule>, given `_swapped`'s text as column swapped_<rule>_<target>.

    When the text route leaves a quoted copy behind (other spacing, the value also used as a
    key) or the text has escapes (the value might be written escaped), the exact route parses
    the document (REPLACE_JSON_VALUES, a few rows at most).
    """
    old, new = f"old_{rule}", f"new_{rule}"
    quoted = f"('\"' || {old} || '\"')"
    swapped = _swapped_column(target, rule)
    return (
        f"case when {target} is null or {old} is null or {new} is not distinct from {old} "
        f"then {target} "
        f"when contains({target}, '\\') then {REPLACE_JSON_VALUES}({target}, {old}, {new}) "
        # no backslash: NULL means the old value does not occur in the text
        f"when {swapped} is null then {target} "
        f"when not contains({swapped}, {quoted}) then {swapped} "
        f"else {REPLACE_JSON_VALUES}({target}, {old}, {new}) end"
    )


def _set_non_string(target: str, parts: tuple[str, ...], rule: int, kind: str) -> str:
    """The field at `parts` set to new_<rule> when it holds a non-string (`kind`: its JSON type
    where the rule reads it): a number is no address either, and value replacement only sees
    strings."""
    return (
        f"case when {kind} is null or {kind} = 'VARCHAR' then {target} "
        f"else json_merge_patch({target}, {_patch(parts, f'new_{rule}')})::varchar end"
    )


def minimise(accepted: pa.Table, settings: PrivacySettings) -> pa.Table:
    """Drop / pseudonymise the configured fields in the JSON columns and the payload."""
    if accepted.num_rows == 0:
        return accepted
    rules = [_Rule(path, lambda old: "null") for path in settings.drop]
    rules += [
        _Rule(path, lambda old: _hmac_sql(settings.key, old)) for path in settings.pseudonymise
    ]
    # every ip mode rewrites: truncated, normalised (full) or dropped (none); garbage never stays
    rules.append(_Rule(("context", "ip"), lambda old: _ip_sql(old, settings.ip_mode), True))
    # old values come from the small JSON columns (the payload holds the same objects), so
    # the payload is parsed only on rows where a field is present
    inner_paths: dict[str, list[tuple[str, ...]]] = {}
    for rule in rules:
        inner_paths.setdefault(rule.path[0], []).append(rule.path[1:])
    lists = ", ".join(  # one parse per column
        f"json_extract_string({column}, [{', '.join(repr(_json_path(p)) for p in paths)}]) "
        f"as old_{column}"
        for column, paths in inner_paths.items()
    )
    olds = ", ".join(
        f"old_{rule.path[0]}[{inner_paths[rule.path[0]].index(rule.path[1:]) + 1}] as old_{i}"
        for i, rule in enumerate(rules)
    )
    steps = [f"select *, {lists} from batch", f"select *, {olds} from prev"]
    for i, rule in enumerate(rules):
        column, inner = rule.path[0], rule.path[1:]
        steps.append(
            f"select *, case when old_{i} is not null then {rule.new_value(f'old_{i}')} end "
            f"as new_{i} from prev"
        )
        if rule.everywhere:
            # the old value's JSON type, read before anything is replaced
            kind = f"kind_{i}"
            steps.append(
                f"select *, case when old_{i} is not null then "
                f"json_type({column}, '{_json_path(inner)}') end as {kind} from prev"
            )
            texts = (*_JSON_COLUMNS, "payload")
            swapped = ", ".join(f"{_swapped(c, i)} as {_swapped_column(c, i)}" for c in texts)
            steps.append(f"select *, {swapped} from prev")
            replaced = ", ".join(f"{_replace_everywhere(c, i)} as {c}" for c in texts)
            steps.append(f"select * replace ({replaced}) from prev")
            steps.append(
                f"select * replace ({_set_non_string(column, inner, i, kind)} as {column}, "
                f"{_set_non_string('payload', rule.path, i, kind)} as payload) from prev"
            )
            continue
        steps.append(
            f"select * replace ({_rewrite(column, inner, i)} as {column}, "
            f"{_rewrite('payload', rule.path, i)} as payload) from prev"
        )
        if column == "properties":
            # the sketch's legacy shape carries its properties as `details` in the payload
            legacy = _rewrite("payload", ("details", *inner), i)
            steps.append(
                "select * replace (case when starts_with(message_id, 'legacy-') "
                f"then {legacy} else payload end as payload) from prev"
            )
    query = "with " + ", ".join(
        f"step_{n} as ({sql.replace(' from prev', f' from step_{n - 1}')})"
        for n, sql in enumerate(steps)
    )
    query += f" select {', '.join(accepted.column_names)} from step_{len(steps) - 1}"
    return query_arrow(query, batch=accepted).cast(accepted.schema)


def suppressed_tokens(warehouse: Warehouse) -> frozenset[str]:
    """The keyed tokens of every erased id (none before the first erasure)."""
    if not warehouse.exists():
        return frozenset()
    with warehouse.connect(read_only=True) as sql:
        if not sql.has_table(RAW_SUPPRESSIONS):
            return frozenset()
        return frozenset(r[0] for r in sql.rows(f"select id_token from {RAW_SUPPRESSIONS}"))


def drop_suppressed(
    accepted: pa.Table, rejected: pa.Table, tokens: frozenset[str], settings: PrivacySettings
) -> tuple[pa.Table, pa.Table, int]:
    """Remove rows of erased people (matched by their ids' tokens); returns how many went."""
    if not tokens:
        return accepted, rejected, 0
    token_table = pa.table({"t": pa.array(sorted(tokens), pa.string())})
    anon, user = _hmac_sql(settings.key, "anonymous_id"), _hmac_sql(settings.key, "user_id")
    key = _hmac_sql(settings.key, "_kafka_key")
    kept = query_arrow(
        "select * from accepted_rows"
        f" where coalesce({anon} not in (select t from tokens), true)"
        f" and coalesce({user} not in (select t from tokens), true)",
        accepted_rows=accepted,
        tokens=token_table,
    ).cast(accepted.schema)
    named = f"list_transform({PAYLOAD_IDS}, x -> {_hmac_sql(settings.key, 'x')})"
    kept_rejected = query_arrow(
        "select * from rejected_rows"
        f" where coalesce({key} not in (select t from tokens), true)"
        f" and not list_has_any({named}, (select list(t) from tokens))",
        rejected_rows=rejected,
        tokens=token_table,
    ).cast(rejected.schema)
    dropped = accepted.num_rows - kept.num_rows + rejected.num_rows - kept_rejected.num_rows
    return kept, kept_rejected, dropped
