"""Erasure of one person (`trackflow forget`): raw rows, dead letters, the models, from now on.

Every raw row of the person is deleted: the rows carrying any of their ids, which are the ids the
identity graph gives the person (dbt's int_identities__mapped, rebuilt from raw first: user ids
an alias merged, the devices that are theirs alone). A shared device (linked to several people)
is not one of their ids: its rows carrying their userId go, the other person's stay. Their ids'
tokens are added to a suppression list that ingestion and staging apply (so a replay of the
topic or a backfill cannot bring them back), the request is recorded in an audit table without
personal data, the models are rebuilt, and then the storage itself is purged: the warehouse
rewritten without the freed blocks that still held the rows, dlt's copies of loaded rows removed.

A dead letter is the person's when its Kafka key is one of their ids, or when its payload names
one of them as anonymousId, userId or previousId: parsed as JSON where it parses, and where it
does not (truncated or broken JSON), as the text `"userId":"<id>"` (any spacing). Anything
else stays: an id that only appears inside another value cannot be told apart from someone
else's data.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pipelines.config import PrivacyConfig
from pipelines.dbt import DbtFailed, run_dbt
from pipelines.names import (
    RAW,
    RAW_ERASURES,
    RAW_EVENTS,
    RAW_REJECTED,
    RAW_SUPPRESSIONS,
    STAGING,
)
from pipelines.privacy import PAYLOAD_IDS, PrivacyError, PrivacySettings, id_sha256
from pipelines.warehouse import SqlClient, Warehouse

# the identity graph (dbt_project/README.md "Identity"); erasure builds it and staging, its input
IDENTITY_MODEL = "int_identities__mapped"


@dataclass
class ErasureResult:
    request_id: str
    identities: int
    rows_deleted: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows_deleted.values())


def forget(
    warehouse: Warehouse,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    requested_via: str = "cli",
    rebuild: bool = True,
    privacy: PrivacyConfig | None = None,
) -> ErasureResult:
    """Erase one person: every identity stitched to them, in raw, dead letters and the models."""
    if bool(user_id) == bool(anonymous_id):
        raise PrivacyError("give exactly one of --user-id or --anonymous-id")
    if not warehouse.exists():
        raise PrivacyError(f"{warehouse.describe()} does not exist")
    settings = PrivacySettings.resolve(privacy or PrivacyConfig.from_env(), warehouse)
    pending = pending_loads(warehouse)
    if pending:
        raise PrivacyError(
            f"an ingestion that did not finish left {pending} load package(s) waiting in "
            f"{warehouse.dlt_pipelines_dir()}; their rows would come back into raw after the "
            "erasure: run 'trackflow ingest' first (it loads them), then forget"
        )
    try:
        # the graph of the rows in raw now, by the rule the models use
        run_dbt(warehouse, "run", "--select", f"+{IDENTITY_MODEL}", "--quiet")
    except DbtFailed as exc:
        raise PrivacyError(
            f"building the identity graph failed, nothing was erased: {exc}"
        ) from None
    with warehouse.connect() as sql:
        ids = _stitched_identities(sql, user_id=user_id, anonymous_id=anonymous_id)
        scope = "user_id" if user_id else "anonymous_id"
        with sql.transaction():
            request_id, deleted = _erase(sql, ids, settings, requested_via, scope)
    if rebuild:
        try:
            run_dbt(warehouse, "build", "--full-refresh", "--quiet")
        except DbtFailed as exc:
            raise PrivacyError(
                "raw rows were erased and suppressed, but rebuilding the models failed; run "
                f"'dbt build --full-refresh' before anyone reads the marts: {exc}"
            ) from None
    warehouse.purge_deleted([RAW_EVENTS, RAW_REJECTED])
    purge_loaded_copies(warehouse)
    return ErasureResult(request_id, len(ids), deleted)


def pending_loads(warehouse: Warehouse) -> int:
    """Load packages extracted or normalized but not loaded yet, of every pipeline."""
    root = warehouse.dlt_pipelines_dir()
    return sum(
        1
        for stage in ("new", "normalized")
        for package in root.glob(f"*/load/{stage}/*")
        if package.is_dir()
    ) + sum(1 for package in root.glob("*/normalize/extracted/*") if package.is_dir())


def purge_loaded_copies(warehouse: Warehouse) -> None:
    """dlt keeps a loaded package's rows (its completed jobs) unless told not to, which
    ingestion now does; packages of older runs still hold theirs."""
    for jobs in warehouse.dlt_pipelines_dir().glob("*/load/loaded/*/completed_jobs"):
        shutil.rmtree(jobs)


def _erase(
    sql: SqlClient, ids: list[str], settings: PrivacySettings, requested_via: str, scope: str
) -> tuple[str, dict[str, int]]:
    """Delete, suppress and record in the caller's transaction: (request id, rows deleted)."""
    sql.execute(f"create schema if not exists {RAW}")
    sql.execute(
        # no primary key (DuckLake has none): an id already listed is not added again
        f"""create table if not exists {RAW_SUPPRESSIONS} (
            id_token varchar, id_sha256 varchar, added_at timestamptz)"""
    )
    sql.execute(
        f"""create table if not exists {RAW_ERASURES} (
            request_id varchar, requested_at timestamptz, requested_via varchar,
            scope varchar, identities integer, rows_deleted json)"""
    )
    deleted: dict[str, int] = {}
    sql.execute("create temp table forget_ids (id varchar)")
    sql.executemany("insert into forget_ids values (?)", [[i] for i in ids])
    deleted[RAW_EVENTS] = sql.delete(
        RAW_EVENTS,
        "anonymous_id in (select id from forget_ids) or user_id in (select id from forget_ids)",
    )
    deleted[RAW_REJECTED] = sql.delete(
        RAW_REJECTED,
        f"_kafka_key in (select id from forget_ids) "
        f"or {PAYLOAD_IDS} && (select list(id) from forget_ids)",
    )
    now = datetime.now(UTC)
    sql.executemany(
        f"insert into {RAW_SUPPRESSIONS} select $1, $2, $3 "
        f"where not exists (select 1 from {RAW_SUPPRESSIONS} where id_token = $1)",
        # the keyed token for ingestion; a plain sha256 for staging, which has no key
        [[settings.token(i), id_sha256(i), now] for i in ids],
    )
    request_id = str(uuid.uuid4())
    sql.execute(
        f"insert into {RAW_ERASURES} values (?, ?, ?, ?, ?, ?)",
        [request_id, now, requested_via, scope, len(ids), json.dumps(deleted)],
    )
    return request_id, deleted


def _stitched_identities(
    sql: SqlClient, *, user_id: str | None, anonymous_id: str | None
) -> list[str]:
    """The id asked for and every id the identity graph gives its person as a whole."""
    asked = user_id or anonymous_id or ""
    rows = sql.rows(
        f"""select identifier from {STAGING}.{IDENTITY_MODEL}
            where user_id = (
                select user_id from {STAGING}.{IDENTITY_MODEL} where identifier = ?
            )""",
        [asked],
    )
    return sorted({asked} | {identifier for (identifier,) in rows})
