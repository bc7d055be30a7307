"""Personal data: minimisation before the warehouse, suppression of erased people, erasure.

Minimisation runs on every accepted micro-batch before it is loaded (so no table ever holds the
clear value): configured fields are dropped or replaced by a keyed hash (HMAC-SHA256 with a
secret key, computed inside DuckDB), and `context.ip` is truncated (last octet / last 80 bits).
The same input always gives the same token, so joins on a pseudonymised field still work.

Erasure (`forget`) deletes every raw row of a person (all identities stitched to them), adds
their ids' tokens to a suppression list that ingestion and staging apply (so a replay of the
topic or a backfill cannot bring them back), records the request in an audit table without
personal data, and rebuilds the models.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa

from pipelines.kafka_source.settings import EVENTS_TABLE, RAW_DATASET, REJECTED_TABLE

SUPPRESSIONS_TABLE: Final = "privacy_suppressions"
ERASURES_TABLE: Final = "privacy_erasures"
DEFAULT_PSEUDONYMISE: Final = (
    "traits.email",
    "traits.phone",
    "traits.name",
    "properties.email",
    "context.traits.email",
)
IP_MODES: Final = ("truncate", "full", "none")
_JSON_COLUMNS: Final = ("context", "properties", "traits")
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
    ip_mode: str = "truncate"
    key: bytes = field(default=b"", repr=False)

    @classmethod
    def from_env(cls, warehouse: Path, env: dict[str, str] | None = None) -> PrivacySettings:
        e = os.environ if env is None else env
        drop = [p.strip() for p in e.get("TRACKFLOW_DROP_FIELDS", "").split(",") if p.strip()]
        pseud = e.get("TRACKFLOW_PSEUDONYMIZE_FIELDS")
        pseud_list = (
            list(DEFAULT_PSEUDONYMISE)
            if pseud is None
            else [p.strip() for p in pseud.split(",") if p.strip()]
        )
        ip_mode = e.get("TRACKFLOW_IP_MODE", "truncate")
        if ip_mode not in IP_MODES:
            raise PrivacyError(
                f"TRACKFLOW_IP_MODE={ip_mode!r} must be one of {', '.join(IP_MODES)}"
            )
        return cls(
            drop=tuple(_check_path(p, "TRACKFLOW_DROP_FIELDS") for p in drop),
            pseudonymise=tuple(_check_path(p, "TRACKFLOW_PSEUDONYMIZE_FIELDS") for p in pseud_list),
            ip_mode=ip_mode,
            key=pseudonym_key(warehouse, e),
        )

    def token(self, value: str) -> str:
        """The pseudonym of a value, as the SQL below computes it (for lookups and tests)."""
        import hmac

        return "p_" + hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()[:32]


def pseudonym_key(warehouse: Path, env: dict[str, str] | os._Environ[str]) -> bytes:
    """TRACKFLOW_PSEUDONYM_KEY, else a random key kept beside the warehouse (mode 0600)."""
    configured = env.get("TRACKFLOW_PSEUDONYM_KEY")
    if configured:
        return configured.encode()
    path = warehouse.resolve().parent / f".{warehouse.name}.pseudonym-key"
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


def _ip_sql(ip: str, mode: str) -> str:
    if mode == "none":
        return "null"
    # ipv4: last octet zeroed; ipv6: keep the first 48 bits (last 80 zeroed)
    return (
        f"case when contains({ip}, ':') then "
        f"array_to_string(list_slice(string_split({ip}, ':'), 1, 3), ':') || '::' "
        f"else regexp_replace({ip}, '\\.[0-9]+$', '.0') end"
    )


@dataclass(frozen=True)
class _Rule:
    path: tuple[str, ...]  # column, then the keys inside it
    new_value: Callable[[str], str]  # sql of the new value, given the sql of the old one
    # the value may be rewritten as text wherever it is a member value (an IP address is the
    # same personal datum wherever it appears); other rules only touch their own path
    as_text: bool = False


def _text_route(target: str, rule: int) -> str:
    """The target with the quoted old value replaced after a colon (NULL when not applicable).

    Only for text without escapes, where the value is written literally; the caller checks
    that the old value is gone afterwards.
    """
    old, new = f"old_{rule}", f"new_{rule}"
    quoted, replacement = f"('\"' || {old} || '\"')", f"coalesce('\"' || {new} || '\"', 'null')"
    return (
        f"case when {old} is null or contains({target}, '\\') then null "
        f"when contains({target}, ':' || {quoted}) "
        f"then replace({target}, ':' || {quoted}, ':' || {replacement}) "
        f"else replace({target}, ': ' || {quoted}, ': ' || {replacement}) end"
    )


def _rewrite(target: str, parts: tuple[str, ...], rule: int, as_text: bool) -> str:
    """SQL for the target JSON text with the field at `parts` set to new_<rule>.

    With as_text, the text route (text_<target>_<rule>) is used when it removed every quoted
    occurrence of the old value; anything else (other spacing, escapes, the value also used as a
    key) takes the exact route: a JSON merge-patch, which parses the document.
    """
    old, new = f"old_{rule}", f"new_{rule}"
    patched = (
        f"case when json_extract_string({target}, '{_json_path(parts)}') is null then {target} "
        f"else json_merge_patch({target}, {_patch(parts, new)})::varchar end"
    )
    if not as_text:
        return f"case when {old} is null then {target} else {patched} end"
    text = f"text_{target}_{rule}"
    return (
        f"case when {old} is null or {new} is not distinct from {old} then {target} "
        f"when {text} is not null and not contains({text}, '\"' || {old} || '\"') then {text} "
        f"else {patched} end"
    )


def minimise(accepted: pa.Table, settings: PrivacySettings) -> pa.Table:
    """Drop / pseudonymise the configured fields in the JSON columns and the payload."""
    if accepted.num_rows == 0:
        return accepted
    rules = [_Rule(path, lambda old: "null") for path in settings.drop]
    rules += [
        _Rule(path, lambda old: _hmac_sql(settings.key, old)) for path in settings.pseudonymise
    ]
    if settings.ip_mode != "full":
        rules.append(_Rule(("context", "ip"), lambda old: _ip_sql(old, settings.ip_mode), True))
    if not rules:
        return accepted
    # old values come from the small JSON columns (the payload holds the same objects), so
    # the payload is parsed only on rows where a field is present and the text route won't do
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
        if rule.as_text:
            steps.append(
                f"select *, {_text_route(column, i)} as text_{column}_{i}, "
                f"{_text_route('payload', i)} as text_payload_{i} from prev"
            )
        steps.append(
            f"select * replace ({_rewrite(column, inner, i, rule.as_text)} as {column}, "
            f"{_rewrite('payload', rule.path, i, rule.as_text)} as payload) from prev"
        )
        if column == "properties" and not rule.as_text:
            # the sketch's legacy shape carries its properties as `details` in the payload
            legacy = _rewrite("payload", ("details", *inner), i, False)
            steps.append(
                "select * replace (case when starts_with(message_id, 'legacy-') "
                f"then {legacy} else payload end as payload) from prev"
            )
    query = "with " + ", ".join(
        f"step_{n} as ({sql.replace(' from prev', f' from step_{n - 1}')})"
        for n, sql in enumerate(steps)
    )
    query += f" select {', '.join(accepted.column_names)} from step_{len(steps) - 1}"
    con = duckdb.connect()
    try:
        con.execute("set threads = 1")
        con.register("batch", accepted)
        return con.sql(query).to_arrow_table().cast(accepted.schema)
    finally:
        con.close()


def suppressed_tokens(warehouse: Path) -> set[str]:
    if not warehouse.exists():
        return set()
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return {
                r[0]
                for r in con.execute(
                    f"select id_token from {RAW_DATASET}.{SUPPRESSIONS_TABLE}"
                ).fetchall()
            }
    except duckdb.CatalogException:
        return set()


def drop_suppressed(
    accepted: pa.Table, rejected: pa.Table, tokens: set[str], settings: PrivacySettings
) -> tuple[pa.Table, pa.Table, int]:
    """Remove rows of erased people (matched by their ids' tokens); returns how many went."""
    if not tokens:
        return accepted, rejected, 0
    con = duckdb.connect()
    try:
        con.register("accepted_rows", accepted)
        con.register("rejected_rows", rejected)
        con.execute("create temp table tokens (t varchar)")
        con.executemany("insert into tokens values (?)", [[t] for t in tokens])
        anon, user = _hmac_sql(settings.key, "anonymous_id"), _hmac_sql(settings.key, "user_id")
        key = _hmac_sql(settings.key, "_kafka_key")
        kept = (
            con.sql(
                "select * from accepted_rows"
                f" where coalesce({anon} not in (select t from tokens), true)"
                f" and coalesce({user} not in (select t from tokens), true)"
            )
            .to_arrow_table()
            .cast(accepted.schema)
        )
        kept_rejected = (
            con.sql(
                "select * from rejected_rows"
                f" where coalesce({key} not in (select t from tokens), true)"
            )
            .to_arrow_table()
            .cast(rejected.schema)
        )
    finally:
        con.close()
    dropped = accepted.num_rows - kept.num_rows + rejected.num_rows - kept_rejected.num_rows
    return kept, kept_rejected, dropped


@dataclass
class ErasureResult:
    request_id: str
    identities: int
    rows_deleted: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows_deleted.values())


def forget(
    warehouse: Path,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    requested_via: str = "cli",
    rebuild: bool = True,
    env: dict[str, str] | None = None,
) -> ErasureResult:
    """Erase one person: every identity stitched to them, in raw, dead letters and the models."""
    if bool(user_id) == bool(anonymous_id):
        raise PrivacyError("give exactly one of --user-id or --anonymous-id")
    if not warehouse.exists():
        raise PrivacyError(f"warehouse {warehouse} does not exist")
    settings = PrivacySettings.from_env(warehouse, env)
    con = duckdb.connect(str(warehouse))
    try:
        ids = _stitched_identities(con, user_id=user_id, anonymous_id=anonymous_id)
        con.execute("begin transaction")
        con.execute(
            f"""create table if not exists {RAW_DATASET}.{SUPPRESSIONS_TABLE} (
                id_token varchar primary key, id_sha256 varchar, added_at timestamptz)"""
        )
        con.execute(
            f"""create table if not exists {RAW_DATASET}.{ERASURES_TABLE} (
                request_id varchar, requested_at timestamptz, requested_via varchar,
                scope varchar, identities integer, rows_deleted json)"""
        )
        deleted: dict[str, int] = {}
        con.execute("create temp table forget_ids (id varchar)")
        con.executemany("insert into forget_ids values (?)", [[i] for i in ids])
        deleted[f"{RAW_DATASET}.{EVENTS_TABLE}"] = _count(
            con.execute(
                f"""delete from {RAW_DATASET}.{EVENTS_TABLE}
                where anonymous_id in (select id from forget_ids)
                   or user_id in (select id from forget_ids) returning 1"""
            )
        )
        deleted[f"{RAW_DATASET}.{REJECTED_TABLE}"] = _count(
            con.execute(
                f"""delete from {RAW_DATASET}.{REJECTED_TABLE} r
                where _kafka_key in (select id from forget_ids)
                   or exists (select 1 from forget_ids
                              where contains(coalesce(try(decode(r.payload)), ''), id))
                returning 1"""
            )
        )
        now = datetime.now(UTC)
        con.executemany(
            f"insert or ignore into {RAW_DATASET}.{SUPPRESSIONS_TABLE} values (?, ?, ?)",
            # the keyed token for ingestion; a plain sha256 for staging, which has no key
            [[settings.token(i), hashlib.sha256(i.encode()).hexdigest(), now] for i in ids],
        )
        request_id = str(uuid.uuid4())
        con.execute(
            f"insert into {RAW_DATASET}.{ERASURES_TABLE} values (?, ?, ?, ?, ?, ?)",
            [
                request_id,
                now,
                requested_via,
                "user_id" if user_id else "anonymous_id",
                len(ids),
                json.dumps(deleted),
            ],
        )
        con.execute("commit")
        con.execute("checkpoint")  # deleted rows leave the file's live blocks now
    finally:
        con.close()
    if rebuild:
        deleted.update(_rebuild_models(warehouse))
    return ErasureResult(request_id, len(ids), deleted)


def _count(cursor: duckdb.DuckDBPyConnection) -> int:
    return len(cursor.fetchall())


def _stitched_identities(
    con: duckdb.DuckDBPyConnection, *, user_id: str | None, anonymous_id: str | None
) -> list[str]:
    """Every id connected to the person through events that carry both ids (either direction)."""
    links = con.execute(
        f"""select distinct anonymous_id, user_id from {RAW_DATASET}.{EVENTS_TABLE}
            where anonymous_id is not null and user_id is not null"""
    ).fetchall()
    by_id: dict[str, set[str]] = {}
    for a, u in links:
        by_id.setdefault(("a", a), set()).add(("u", u))  # type: ignore[arg-type]
        by_id.setdefault(("u", u), set()).add(("a", a))  # type: ignore[arg-type]
    start = ("u", user_id) if user_id else ("a", anonymous_id)
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in by_id.get(node, ()):  # type: ignore[call-overload]
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return sorted({v for _, v in seen if v})


def _rebuild_models(warehouse: Path) -> dict[str, int]:
    """Full refresh of the dbt models, so sessions, users and aggregates no longer count them."""
    repo = Path(__file__).resolve().parents[1]
    dbt = repo / ".venv" / "bin" / "dbt"
    proc = subprocess.run(
        [
            str(dbt),
            "build",
            "--full-refresh",
            "--project-dir",
            "dbt_project",
            "--profiles-dir",
            "dbt_project",
            "--quiet",
        ],
        cwd=repo,
        env={**os.environ, "DUCKDB_PATH": str(warehouse.resolve())},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise PrivacyError(
            "raw rows were erased and suppressed, but rebuilding the models failed; run "
            f"'dbt build --full-refresh' before anyone reads the marts: {proc.stdout[-500:]}"
        )
    return {}
