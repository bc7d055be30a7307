"""Helpers for the Dagster tests: definitions bound to a test broker/topic/warehouse, traffic."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from orchestration.resources import KafkaResource, WarehouseResource
from pipelines.config import KafkaSettings
from pipelines.generator import Traffic, generate
from pipelines.producer import produce
from pipelines.warehouse import DuckDBFile


@functools.cache
def today() -> date:
    """The UTC day the test session started, the same for the whole session: traffic, partition
    ranges and expectations computed from it agree even when the session crosses midnight."""
    return datetime.now(UTC).date()


def new_topic(bootstrap: str, partitions: int = 4) -> str:
    name = f"dagster.{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    return name


def bound_defs(bootstrap: str, topic: str, warehouse: DuckDBFile) -> dg.Definitions:
    """The code location's definitions with resources pointing at the test broker/warehouse."""
    from orchestration.definitions import defs

    resources = dict(defs.resources or {})
    resources["kafka"] = KafkaResource(
        bootstrap_servers=bootstrap, topics=topic, consumer_group=f"g-{uuid.uuid4().hex[:8]}"
    )
    resources["warehouse"] = WarehouseResource(duckdb_path=str(warehouse.path))
    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources=resources,
        executor=defs.executor,
    )


def send(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes, int]]) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap, topics=(topic,))
    produce(messages, settings, topic)


def recent_traffic(events: int, days: int, seed: int = 11, **kw: object) -> Traffic:
    """Traffic over the `days` days before today (so freshness holds)."""
    return generate(
        events=events,
        users=max(50, events // 25),
        days=days,
        seed=seed,
        start=today() - timedelta(days=days),
        **kw,  # type: ignore[arg-type]
    )


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e
        for e in result.get_asset_check_evaluations()
    }


def materializations(
    result: dg.ExecuteInProcessResult,
) -> dict[str, list[dg.AssetMaterialization]]:
    out: dict[str, list[dg.AssetMaterialization]] = {}
    for m in result.get_asset_materialization_events():
        mat = m.materialization
        out.setdefault(mat.asset_key.to_user_string(), []).append(mat)
    return out
