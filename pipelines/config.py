"""Every setting trackflow reads from the environment, typed, with its default written once.

One pydantic-settings model per concern; `Settings.load()` reads them all. The CLI, the collector
and the Dagster resources all take their values from here, and nothing else reads `os.environ`
for configuration. `load_dotenv()` gives `trackflow` the Dagster CLI's habit of reading `.env`
from the working directory (already-set variables win). `.env.example` lists every variable.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from pipelines.ip import IpMode

WarehouseKind = Literal["duckdb", "ducklake"]

# limits: Segment documents 32 KB per event and 500 KB per batch request
DEFAULT_MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2000
# COLLECTOR_WORKERS when unset: one per CPU, at most this many (each is a producer and ~170 MB)
MAX_DEFAULT_COLLECTOR_WORKERS = 8


def default_collector_workers() -> int:
    """One collector process per CPU this process may run on, at most
    MAX_DEFAULT_COLLECTOR_WORKERS (without a rate limit; see CollectorSettings)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_COLLECTOR_WORKERS))


DEFAULT_PSEUDONYMIZE_FIELDS = (
    "traits.email",
    "traits.phone",
    "traits.name",
    "properties.email",
    "context.traits.email",
)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and what it wants."""


def _split(value: Any) -> Any:
    """A comma separated environment value as a tuple (blank items dropped)."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


CommaList = Annotated[tuple[str, ...], NoDecode]

# the environment `from_env(env)` reads instead of os.environ
_given_env: ContextVar[Mapping[str, str] | None] = ContextVar("_given_env", default=None)


class _EnvSource(EnvSettingsSource):
    """Environment variables by their exact names (the aliases); nothing else is read."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = _given_env.get()
        if env is None:
            return super()._load_env_vars()
        return parse_env_vars(env, self.case_sensitive, self.env_ignore_empty, None)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if not field.alias:  # not configurable from the environment
            return None, field_name, False
        return super().get_field_value(field, field_name)


class _Section(BaseSettings):
    """Fields are set by their environment name (the alias) or by their Python name."""

    model_config = SettingsConfigDict(
        frozen=True, populate_by_name=True, extra="ignore", env_ignore_empty=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `.env` is loaded into the process environment by the cli (load_dotenv), so that dbt
        # and other subprocesses see it too
        return init_settings, _EnvSource(settings_cls)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read the process environment, or only `env` when given (tests, subprocesses)."""
        token = _given_env.set(env)
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError(_one_line(cls, exc)) from None
        finally:
            _given_env.reset(token)

    @classmethod
    def of(cls, **values: Any) -> Self:
        """Exactly these values and the defaults: the environment is not read."""
        token = _given_env.set({})
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(_one_line(cls, exc)) from None
        finally:
            _given_env.reset(token)

    @classmethod
    def variables(cls) -> list[str]:
        """The environment variables this section reads."""
        return [f.alias for f in cls.model_fields.values() if f.alias]

    def as_env(self) -> dict[str, str]:
        """The section as environment variables (for a subprocess that reads them back)."""
        env: dict[str, str] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if not info.alias or value is None or isinstance(value, BaseSettings):
                continue
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, dict):
                value = ",".join(f"{v}:{k}" for k, v in value.items())
            env[info.alias] = str(value).lower() if isinstance(value, bool) else str(value)
        return env


def _one_line(cls: type[BaseSettings], exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    info = cls.model_fields.get(field)
    name = (info.alias if info else None) or field
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith(name):  # the validator already named the variable
        return message
    return f"{name}={error.get('input')!r}: {message}"


class KafkaSettings(_Section):
    """Where events are read from and written to."""

    bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    topics: CommaList = Field(("tracking.events",), alias="TRACKING_TOPIC")
    consumer_group: str = Field("trackflow-ingest", alias="KAFKA_CONSUMER_GROUP")
    security_protocol: str | None = Field(None, alias="KAFKA_SECURITY_PROTOCOL")
    sasl_mechanism: str | None = Field(None, alias="KAFKA_SASL_MECHANISM")
    sasl_username: str | None = Field(None, alias="KAFKA_SASL_USERNAME")
    sasl_password: str | None = Field(None, alias="KAFKA_SASL_PASSWORD", repr=False)
    ssl_cafile: str | None = Field(None, alias="KAFKA_SSL_CAFILE")
    # mutual TLS: the client's certificate and key (PEM), the key's password if it has one
    ssl_certfile: str | None = Field(None, alias="KAFKA_SSL_CERTFILE")
    ssl_keyfile: str | None = Field(None, alias="KAFKA_SSL_KEYFILE")
    ssl_password: str | None = Field(None, alias="KAFKA_SSL_PASSWORD", repr=False)
    # whether the brokers' certificates must name the host connected to (turn off only for IPs)
    ssl_check_hostname: bool = Field(True, alias="KAFKA_SSL_CHECK_HOSTNAME")
    # SASL OAUTHBEARER: tokens from an OAuth 2.0 client-credentials endpoint
    sasl_oauth_token_url: str | None = Field(None, alias="KAFKA_SASL_OAUTH_TOKEN_URL")
    sasl_oauth_client_id: str | None = Field(None, alias="KAFKA_SASL_OAUTH_CLIENT_ID")
    sasl_oauth_client_secret: str | None = Field(
        None, alias="KAFKA_SASL_OAUTH_CLIENT_SECRET", repr=False
    )
    sasl_oauth_scope: str | None = Field(None, alias="KAFKA_SASL_OAUTH_SCOPE")

    _split_topics = field_validator("topics", mode="before")(_split)

    @field_validator("topics")
    @classmethod
    def _some_topic(cls, topics: tuple[str, ...]) -> tuple[str, ...]:
        if not topics:
            raise ValueError("name at least one topic")
        return topics

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments shared by kafka-python consumers, producers and admin clients."""
        cfg: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers.split(",")}
        if self.security_protocol:
            cfg["security_protocol"] = self.security_protocol
        if self.sasl_mechanism == "OAUTHBEARER":
            from pipelines.kafka_oauth import ClientCredentialsTokenProvider

            if not (self.sasl_oauth_token_url and self.sasl_oauth_client_id):
                raise SettingsError(
                    "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SASL_OAUTH_TOKEN_URL, "
                    "KAFKA_SASL_OAUTH_CLIENT_ID and KAFKA_SASL_OAUTH_CLIENT_SECRET"
                )
            cfg["sasl_mechanism"] = self.sasl_mechanism
            cfg["sasl_oauth_token_provider"] = ClientCredentialsTokenProvider(
                self.sasl_oauth_token_url,
                self.sasl_oauth_client_id,
                self.sasl_oauth_client_secret or "",
                self.sasl_oauth_scope,
            )
        elif self.sasl_mechanism:
            cfg["sasl_mechanism"] = self.sasl_mechanism
            cfg["sasl_plain_username"] = self.sasl_username
            cfg["sasl_plain_password"] = self.sasl_password
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password"):
            if getattr(self, name):
                cfg[name] = getattr(self, name)
        if not self.ssl_check_hostname:
            cfg["ssl_check_hostname"] = False
        return cfg


class WarehouseSettings(_Section):
    """Which warehouse, and where (see pipelines/warehouse)."""

    kind: WarehouseKind = Field("duckdb", alias="TRACKFLOW_WAREHOUSE")
    duckdb_path: Path = Field(Path("data/warehouse.duckdb"), alias="DUCKDB_PATH")
    # DuckDB keeps a buffer cache up to 80% of RAM by default: capped so a load's memory does not
    # grow with the warehouse (512MB keeps a 3M-event drain within 1.23x the peak of a 300k one)
    memory_limit: str = Field("512MB", alias="DUCKDB_MEMORY_LIMIT")
    # ducklake: the catalog database (DuckDB's form, e.g. postgres:dbname=lake host=db user=x)
    ducklake_catalog: str | None = Field(None, alias="DUCKLAKE_CATALOG", repr=False)
    # ducklake: where the parquet files live, spelled the same by every host (file:// or s3://)
    ducklake_data_path: str | None = Field(None, alias="DUCKLAKE_DATA_PATH")
    # this host's own working files for a shared warehouse (dlt's state, the default report)
    state_dir: Path = Field(Path(".trackflow"), alias="TRACKFLOW_STATE_DIR")


class PrivacyConfig(_Section):
    """What minimisation does to personal data before it is stored (pipelines/privacy.py)."""

    drop_fields: CommaList = Field((), alias="TRACKFLOW_DROP_FIELDS")
    pseudonymize_fields: CommaList = Field(
        DEFAULT_PSEUDONYMIZE_FIELDS, alias="TRACKFLOW_PSEUDONYMIZE_FIELDS"
    )
    ip_mode: IpMode = Field("truncate", alias="TRACKFLOW_IP_MODE")
    pseudonym_key: str | None = Field(None, alias="TRACKFLOW_PSEUDONYM_KEY", repr=False)

    _split_fields = field_validator("drop_fields", "pseudonymize_fields", mode="before")(_split)


class IngestSettings(_Section):
    """Bounds of one ingestion run and of one message."""

    max_messages: int = Field(5_000_000, gt=0, alias="TRACKFLOW_INGEST_MAX_MESSAGES")
    max_seconds: float = Field(600.0, gt=0, alias="TRACKFLOW_INGEST_MAX_SECONDS")
    # records per Arrow micro-batch; one dlt item each, so memory stays flat however long the drain
    batch_size: int = Field(50_000, gt=0, alias="TRACKFLOW_INGEST_BATCH_SIZE")
    # a long drain is loaded in parts of this many messages, each committed with its offsets
    messages_per_load: int = Field(250_000, gt=0, alias="TRACKFLOW_INGEST_MESSAGES_PER_LOAD")
    # the largest accepted message, at the collector and at ingestion
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, gt=0, alias="TRACKFLOW_MAX_EVENT_BYTES")
    # how many partition shards the Dagster ingestion runs (in parallel on a ducklake warehouse)
    shards: int = Field(1, ge=1, alias="TRACKFLOW_INGEST_SHARDS")
    # a node_exporter textfile directory where each run writes its figures (unset: none)
    metrics_dir: Path | None = Field(None, alias="TRACKFLOW_METRICS_DIR")


class QualityThresholds(_Section):
    """Thresholds of the Dagster asset checks."""

    max_rejected_rate: float = Field(0.05, ge=0, alias="TRACKFLOW_MAX_REJECTED_RATE")
    max_duplicate_rate: float = Field(0.05, ge=0, alias="TRACKFLOW_MAX_DUPLICATE_RATE")
    max_consumer_lag: int = Field(1_000_000, ge=0, alias="TRACKFLOW_MAX_CONSUMER_LAG")
    # newest received_at; matches the dbt source's error_after
    max_raw_age_hours: float = Field(24.0, gt=0, alias="TRACKFLOW_MAX_RAW_AGE_HOURS")


class TrackingPlanSettings(_Section):
    """The tracking plan (pipelines/tracking_plan): per event, a JSON Schema its parts must meet."""

    # unset: no plan, nothing is checked beyond the envelope. (Field names that no common
    # variable shares: a field is also filled from the variable of its own name, e.g. PATH.)
    plan_file: Path | None = Field(None, alias="TRACKING_PLAN")
    # flag: keep violating events and record each violation; block: dead-letter them
    plan_mode: Literal["flag", "block"] = Field("flag", alias="TRACKING_PLAN_MODE")

    @field_validator("plan_mode", mode="before")
    @classmethod
    def _lower_mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class OrchestrationSettings(_Section):
    """The Dagster instance, the schedules' crons, the micro-batch sensor's interval and where
    the marts' day partitions begin."""

    ingest_cron: str = Field("*/5 * * * *", alias="TRACKFLOW_INGEST_CRON")
    marts_cron: str = Field("2-59/5 * * * *", alias="TRACKFLOW_MARTS_CRON")
    # seconds between two looks of microbatch_sensor at the consumer group's lag
    microbatch_interval_seconds: int = Field(
        10, ge=1, alias="TRACKFLOW_MICROBATCH_INTERVAL_SECONDS"
    )
    partitions_start: str = Field("2024-01-01", alias="TRACKFLOW_PARTITIONS_START")
    dagster_home: Path = Field(Path(".dagster_home"), alias="DAGSTER_HOME")
    # where failed runs and failed checks are posted (Slack-compatible JSON); unset: nowhere
    alert_webhook: str | None = Field(None, alias="TRACKFLOW_ALERT_WEBHOOK", repr=False)
    # the Dagster UI, for links in alerts
    dagster_url: str = Field("http://127.0.0.1:3000", alias="TRACKFLOW_DAGSTER_URL")
    # raw/tracking_events is stale when not materialized for this long
    raw_freshness_minutes: int = Field(60, gt=0, alias="TRACKFLOW_RAW_FRESHNESS_MINUTES")
    # each mart's latest complete day partition must be built by this time (UTC)
    marts_freshness_cron: str = Field("0 3 * * *", alias="TRACKFLOW_MARTS_FRESHNESS_CRON")
    # who answers for the assets (Dagster owners: an email or team:<name>)
    asset_owner: str = Field("team:data-engineering", alias="TRACKFLOW_ASSET_OWNER")


def _write_keys(value: Any) -> Any:
    """`key1,web:key2` -> {write key: source name}; unnamed keys become source1, source2, ..."""
    if not isinstance(value, str):
        return value
    keys: dict[str, str] = {}
    for position, item in enumerate((i.strip() for i in value.split(",")), start=1):
        if not item:
            continue
        source, sep, key = item.partition(":")
        if not sep:
            source, key = f"source{position}", item
        source, key = source.strip(), key.strip()
        if not key or not source:
            raise SettingsError(
                f"COLLECTOR_WRITE_KEYS entry {item!r} must be 'key' or 'source:key'"
            )
        keys[key] = source
    return keys


class CollectorSettings(_Section):
    """The HTTP collector. At least one write key is required: a deployment never accepts
    anonymous traffic by accident."""

    write_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, alias="COLLECTOR_WRITE_KEYS", repr=False, validate_default=True
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, exclude=True)
    # the collector checks events against the same plan, in the same mode, before Kafka
    tracking_plan: TrackingPlanSettings = Field(default_factory=TrackingPlanSettings, exclude=True)
    # origins allowed to call the api from a browser; "*" allows any origin
    cors_origins: CommaList = Field((), alias="COLLECTOR_CORS_ORIGINS")
    ip_mode: IpMode = Field("truncate", alias="COLLECTOR_IP_MODE")
    produce_timeout_ms: float = Field(5000.0, gt=0, alias="COLLECTOR_PRODUCE_TIMEOUT_MS")
    retry_after_s: int = Field(5, gt=0, alias="COLLECTOR_RETRY_AFTER_S")
    compression: str | None = Field("lz4", alias="COLLECTOR_COMPRESSION")
    # the demo page embeds a write key: served only when asked for
    demo_page: bool = Field(False, alias="COLLECTOR_DEMO_PAGE")
    shutdown_timeout_s: float = Field(10.0, gt=0, alias="COLLECTOR_SHUTDOWN_TIMEOUT_S")
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, gt=0, alias="TRACKFLOW_MAX_EVENT_BYTES")
    max_batch_bytes: int = Field(MAX_BATCH_BYTES, gt=0, alias="COLLECTOR_MAX_BATCH_BYTES")
    # Segment sets no count; its clients send at most a few hundred. Bounds the work of a request
    max_batch_events: int = Field(MAX_BATCH_EVENTS, gt=0, alias="COLLECTOR_MAX_BATCH_EVENTS")
    # addresses (or networks) of the reverse proxies whose X-Forwarded-For/-Proto are believed
    trusted_proxies: CommaList = Field((), alias="COLLECTOR_TRUSTED_PROXIES")
    # a connection with no request under way is closed after this long (fresh or kept alive)
    idle_timeout_s: float = Field(5.0, gt=0, alias="COLLECTOR_IDLE_TIMEOUT_S")
    # from a request's first byte until its headers are complete
    header_timeout_s: float = Field(10.0, gt=0, alias="COLLECTOR_HEADER_TIMEOUT_S")
    # from the end of the headers until the body is complete
    body_timeout_s: float = Field(30.0, gt=0, alias="COLLECTOR_BODY_TIMEOUT_S")
    # open connections; one more is answered 503 and closed at once
    max_connections: int = Field(1000, gt=0, alias="COLLECTOR_MAX_CONNECTIONS")
    # threads that parse, check and serialise requests, off the event loop
    cpu_threads: int = Field(2, gt=0, alias="COLLECTOR_CPU_THREADS")
    # accepted events per second per write key, in each process (collector/ratelimit.py); unset:
    # no limit
    rate_limit: float | None = Field(None, gt=0, alias="COLLECTOR_RATE_LIMIT")
    # processes serving the one port (collector/workers.py), with multiprocess metrics; unset: one
    # per CPU (see _default_workers)
    workers: int = Field(None, gt=0, alias="COLLECTOR_WORKERS", validate_default=True)
    # prometheus_client's multiprocess mode: every process writes its metrics to files here and
    # /metrics sums them. prometheus_client reads the same variable itself, at import
    metrics_dir: Path | None = Field(None, alias="PROMETHEUS_MULTIPROC_DIR")

    _parse_keys = field_validator("write_keys", mode="before")(_write_keys)
    _split_proxies = field_validator("trusted_proxies", mode="before")(_split)

    @field_validator("workers", mode="before")
    @classmethod
    def _default_workers(cls, value: Any, info: ValidationInfo) -> Any:
        """Unset: one process per CPU this process may run on (at most
        MAX_DEFAULT_COLLECTOR_WORKERS), since one process is one core; but one when a rate limit is
        set, as each process keeps its own buckets and N of them would let N times the limit in."""
        if value is not None:
            return value
        return 1 if info.data.get("rate_limit") is not None else default_collector_workers()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"COLLECTOR_TRUSTED_PROXIES entry {proxy!r} is not an IP address or network"
                ) from None
        return proxies

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        return tuple(o.rstrip("/") for o in _split(value))

    @field_validator("ip_mode", "compression", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("compression")
    @classmethod
    def _no_compression(cls, value: str | None) -> str | None:
        return None if value in (None, "", "none") else value

    @field_validator("metrics_dir")
    @classmethod
    def _a_directory(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_dir():
            raise ValueError(f"PROMETHEUS_MULTIPROC_DIR={str(path)!r} is not a directory")
        return path

    @field_validator("write_keys")
    @classmethod
    def _some_key(cls, keys: dict[str, str]) -> dict[str, str]:
        if not keys:
            raise ValueError(
                "COLLECTOR_WRITE_KEYS is empty; set one or more comma-separated write keys "
                "(optionally named 'source:key'), e.g. COLLECTOR_WRITE_KEYS=web:dev-write-key"
            )
        return keys

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        section = super().from_env(env)
        return section.model_copy(
            update={
                "kafka": KafkaSettings.from_env(env),
                "tracking_plan": TrackingPlanSettings.from_env(env),
            }
        )

    @property
    def topic(self) -> str:
        """The collector produces to the first of the configured tracking topics."""
        return self.kafka.topics[0]

    @property
    def produce_timeout_s(self) -> float:
        return self.produce_timeout_ms / 1000


class Settings:
    """All sections, read once from the environment."""

    sections: ClassVar[tuple[type[_Section], ...]] = (
        KafkaSettings,
        WarehouseSettings,
        PrivacyConfig,
        IngestSettings,
        QualityThresholds,
        OrchestrationSettings,
        CollectorSettings,
        TrackingPlanSettings,
    )

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.kafka = KafkaSettings.from_env(env)
        self.warehouse = WarehouseSettings.from_env(env)
        self.privacy = PrivacyConfig.from_env(env)
        self.ingest = IngestSettings.from_env(env)
        self.thresholds = QualityThresholds.from_env(env)
        self.orchestration = OrchestrationSettings.from_env(env)
        self.tracking_plan = TrackingPlanSettings.from_env(env)

    @classmethod
    def variables(cls) -> list[str]:
        """Every environment variable trackflow reads for its configuration."""
        return sorted({name for section in cls.sections for name in section.variables()})


def load_dotenv(path: Path = Path(".env")) -> bool:
    """Read `.env` into the environment, as the Dagster CLI does; set variables win."""
    import dotenv

    return bool(path.is_file() and dotenv.load_dotenv(path, override=False))
