"""Resources, configured from the environment (names and defaults: DESIGN.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.project import DBT_EXECUTABLE, dbt_project
from pipelines.config import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_DUCKDB_PATH,
    DEFAULT_GROUP,
    DEFAULT_TOPIC,
    KafkaSettings,
)


class KafkaResource(dg.ConfigurableResource):
    """Where ingestion reads from; mirrors pipelines.config.KafkaSettings."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    topics: str = DEFAULT_TOPIC  # comma separated
    consumer_group: str = DEFAULT_GROUP
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None

    def settings(self) -> KafkaSettings:
        topics = tuple(t.strip() for t in self.topics.split(",") if t.strip())
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            topics=topics or (DEFAULT_TOPIC,),
            consumer_group=self.consumer_group,
            security_protocol=self.security_protocol or None,
            sasl_mechanism=self.sasl_mechanism or None,
            sasl_username=self.sasl_username or None,
            sasl_password=self.sasl_password or None,
            ssl_cafile=self.ssl_cafile or None,
        )


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file shared by dlt (raw), dbt (staging, analytics) and the checks."""

    duckdb_path: str = DEFAULT_DUCKDB_PATH

    @property
    def path(self) -> Path:
        # relative paths are relative to where Dagster runs (the repo root for make dev/demo)
        return Path(self.duckdb_path).resolve()

    @contextmanager
    def dbt_env(self) -> Iterator[None]:
        """The environment of a dbt invocation started inside the block.

        DUCKDB_PATH absolute: dbt runs in dbt_project/, and the profile only reads the
        environment. DBT_INDIRECT_SELECTION=buildable: the graph is split in two dbt_assets
        (staging, marts), and a test spanning both (a singular test reading a staging model and a
        mart) must run with the build that makes all its parents, not with the first one.
        dagster-dbt still sets its own value when a run selects individual checks.
        DBT_EXCLUDE_RESOURCE_TYPES=unit_test: dbt's unit tests check the SQL against fixtures,
        not the data, so they run in `make test`, not in every scheduled run (dbt's advice for
        production; they cost more than a one-day run's models).
        """
        wanted = {
            "DUCKDB_PATH": str(self.path),
            "DBT_INDIRECT_SELECTION": "buildable",
            "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test",
        }
        before = {k: os.environ.get(k) for k in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


class IngestionConfig(dg.ConfigurableResource):
    """Bounds of one micro-batch run (defaults: pipelines.kafka_source.settings)."""

    max_messages: int = 5_000_000
    max_seconds: float = 600.0
    batch_size: int = 50_000
    # where a partition with no stored offset starts: earliest | latest | an ISO timestamp
    start_from: str = "earliest"


class QualityThresholds(dg.ConfigurableResource):
    """Thresholds of the custom asset checks."""

    max_rejected_rate: float = 0.05  # rejected / (accepted + rejected), latest load
    max_duplicate_rate: float = 0.05  # re-delivered rows / rows, latest load
    max_consumer_lag: int = 1_000_000  # messages left on the topic after a run
    max_raw_age_hours: float = 24.0  # newest received_at; matches the dbt source's error_after


def _env(name: str, default: str) -> str:
    # dg.EnvVar (a str) keeps the variable's name, not its value, in the UI and the run config;
    # an unset variable falls back to DESIGN.md's default
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_optional(name: str) -> str | None:
    return dg.EnvVar(name) if os.environ.get(name) else None


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def build_resources() -> dict[str, object]:
    """The resources of the code location, read from the environment at load time."""
    return {
        "kafka": KafkaResource(
            bootstrap_servers=_env("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP),
            topics=_env("TRACKING_TOPIC", DEFAULT_TOPIC),
            consumer_group=_env("KAFKA_CONSUMER_GROUP", DEFAULT_GROUP),
            security_protocol=_env_optional("KAFKA_SECURITY_PROTOCOL"),
            sasl_mechanism=_env_optional("KAFKA_SASL_MECHANISM"),
            sasl_username=_env_optional("KAFKA_SASL_USERNAME"),
            sasl_password=_env_optional("KAFKA_SASL_PASSWORD"),
            ssl_cafile=_env_optional("KAFKA_SSL_CAFILE"),
        ),
        "warehouse": WarehouseResource(duckdb_path=_env("DUCKDB_PATH", DEFAULT_DUCKDB_PATH)),
        "ingestion": IngestionConfig(
            max_messages=int(_env_number("TRACKFLOW_INGEST_MAX_MESSAGES", 5_000_000)),
            max_seconds=_env_number("TRACKFLOW_INGEST_MAX_SECONDS", 600.0),
        ),
        "thresholds": QualityThresholds(
            max_rejected_rate=_env_number("TRACKFLOW_MAX_REJECTED_RATE", 0.05),
            max_duplicate_rate=_env_number("TRACKFLOW_MAX_DUPLICATE_RATE", 0.05),
            max_consumer_lag=int(_env_number("TRACKFLOW_MAX_CONSUMER_LAG", 1_000_000)),
            max_raw_age_hours=_env_number("TRACKFLOW_MAX_RAW_AGE_HOURS", 24.0),
        ),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    }
