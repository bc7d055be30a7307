"""Resources, built from the settings model (pipelines/config.py): same names, same defaults.

A value that came from an environment variable is passed as `dg.EnvVar`, so the UI and the run
config show the variable's name rather than its value (passwords included).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel

from orchestration.project import dbt_environment, dbt_resource
from pipelines.config import (
    IngestSettings,
    KafkaSettings,
    QualityThresholds,
    Settings,
    TrackingPlanSettings,
    WarehouseSettings,
)
from pipelines.warehouse import Warehouse, open_warehouse


def _default(section: type[BaseModel], name: str) -> Any:
    value = section.model_fields[name].default
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value) if isinstance(value, Path) else value


class KafkaResource(dg.ConfigurableResource):
    """Where ingestion reads from (the fields of pipelines.config.KafkaSettings)."""

    bootstrap_servers: str = _default(KafkaSettings, "bootstrap_servers")
    topics: str = _default(KafkaSettings, "topics")  # comma separated
    consumer_group: str = _default(KafkaSettings, "consumer_group")
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None
    ssl_check_hostname: bool = True
    sasl_oauth_token_url: str | None = None
    sasl_oauth_client_id: str | None = None
    sasl_oauth_client_secret: str | None = None
    sasl_oauth_scope: str | None = None

    def settings(self) -> KafkaSettings:
        # the same fields, by name; empty strings (unset variables in the UI) mean unset
        values = {k: v for k, v in self.model_dump().items() if v != "" and v is not None}
        return KafkaSettings.of(**values)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse shared by dlt (raw), dbt (staging, analytics) and the checks."""

    kind: str = _default(WarehouseSettings, "kind")
    # relative paths are relative to where Dagster runs (the repo root for make dev/demo)
    duckdb_path: str = _default(WarehouseSettings, "duckdb_path")
    memory_limit: str = _default(WarehouseSettings, "memory_limit")
    ducklake_catalog: str | None = None
    ducklake_data_path: str | None = None
    state_dir: str = _default(WarehouseSettings, "state_dir")

    def settings(self) -> WarehouseSettings:
        return WarehouseSettings.of(
            kind=self.kind,  # validated by the settings model
            duckdb_path=Path(self.duckdb_path),
            memory_limit=self.memory_limit,
            ducklake_catalog=self.ducklake_catalog,
            ducklake_data_path=self.ducklake_data_path,
            state_dir=Path(self.state_dir),
        )

    def open(self) -> Warehouse:
        return open_warehouse(self.settings())

    @contextmanager
    def dbt_env(self) -> Iterator[None]:
        """The environment of a dbt invocation started inside the block.

        The warehouse's dbt target. DBT_INDIRECT_SELECTION=buildable: the graph is split in two
        dbt_assets (staging, marts), and a test spanning both (a singular test reading a staging
        model and a mart) must run with the build that makes all its parents, not with the
        first one; dagster-dbt still sets its own value when a run selects individual checks.
        DBT_EXCLUDE_RESOURCE_TYPES=unit_test: dbt's unit tests check the SQL against fixtures,
        not the data, so they run in `make test`, not in every scheduled run (dbt's advice for
        production; they cost more than a one-day run's models).
        """
        with dbt_environment(
            self.open(),
            DBT_INDIRECT_SELECTION="buildable",
            DBT_EXCLUDE_RESOURCE_TYPES="unit_test",
        ):
            yield


class IngestionResource(dg.ConfigurableResource):
    """Bounds of one micro-batch run (the fields of pipelines.config.IngestSettings)."""

    max_messages: int = _default(IngestSettings, "max_messages")
    max_seconds: float = _default(IngestSettings, "max_seconds")
    batch_size: int = _default(IngestSettings, "batch_size")
    messages_per_load: int = _default(IngestSettings, "messages_per_load")
    max_event_bytes: int = _default(IngestSettings, "max_event_bytes")
    # partition shards per run: in parallel processes on a ducklake warehouse, one after
    # another on a DuckDB file (it takes one writer)
    shards: int = _default(IngestSettings, "shards")
    # node_exporter textfile directory for each run's figures (unset: none)
    metrics_dir: str | None = None
    # where a partition with no stored offset starts: earliest | latest | an ISO timestamp
    start_from: str = "earliest"

    def limits(self) -> IngestSettings:
        return IngestSettings.of(
            max_messages=self.max_messages,
            max_seconds=self.max_seconds,
            batch_size=self.batch_size,
            messages_per_load=self.messages_per_load,
            max_event_bytes=self.max_event_bytes,
            shards=self.shards,
            metrics_dir=Path(self.metrics_dir) if self.metrics_dir else None,
        )


class ThresholdsResource(dg.ConfigurableResource):
    """Thresholds of the custom asset checks (pipelines.config.QualityThresholds)."""

    max_rejected_rate: float = _default(QualityThresholds, "max_rejected_rate")
    max_duplicate_rate: float = _default(QualityThresholds, "max_duplicate_rate")
    max_consumer_lag: int = _default(QualityThresholds, "max_consumer_lag")
    max_raw_age_hours: float = _default(QualityThresholds, "max_raw_age_hours")


class TrackingPlanResource(dg.ConfigurableResource):
    """The tracking plan ingestion checks against and the violation-rate check reads
    (pipelines.config.TrackingPlanSettings)."""

    plan_file: str | None = None
    plan_mode: str = _default(TrackingPlanSettings, "plan_mode")

    def settings(self) -> TrackingPlanSettings:
        return TrackingPlanSettings.of(
            plan_file=Path(self.plan_file) if self.plan_file else None, plan_mode=self.plan_mode
        )


def _fields(section: BaseModel, resource: type[dg.ConfigurableResource]) -> dict[str, Any]:
    """The section's values for the resource's fields; strings set from the environment stay
    `dg.EnvVar`s, so the UI shows the variable's name and never a secret."""
    values: dict[str, Any] = {}
    for name, info in type(section).model_fields.items():
        if name not in resource.model_fields:
            continue
        value = getattr(section, name)
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, Path):
            value = str(value)
        if info.alias and name in section.model_fields_set and isinstance(value, str):
            value = dg.EnvVar(info.alias)
        values[name] = value
    return values


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources of the code location, from the settings read at load time."""
    return {
        "kafka": KafkaResource(**_fields(settings.kafka, KafkaResource)),
        "warehouse": WarehouseResource(**_fields(settings.warehouse, WarehouseResource)),
        "ingestion": IngestionResource(**_fields(settings.ingest, IngestionResource)),
        "thresholds": ThresholdsResource(**_fields(settings.thresholds, ThresholdsResource)),
        "tracking_plan": TrackingPlanResource(
            **_fields(settings.tracking_plan, TrackingPlanResource)
        ),
        "dbt": dbt_resource(),
    }
