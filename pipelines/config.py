"""Settings read from the environment (names and defaults are a contract, see DESIGN.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_TOPIC = "tracking.events"
DEFAULT_GROUP = "trackflow-ingest"
DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    topics: tuple[str, ...] = (DEFAULT_TOPIC,)
    consumer_group: str = DEFAULT_GROUP
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KafkaSettings:
        e = os.environ if env is None else env
        topics = tuple(
            t.strip() for t in e.get("TRACKING_TOPIC", DEFAULT_TOPIC).split(",") if t.strip()
        )
        return cls(
            bootstrap_servers=e.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP),
            topics=topics or (DEFAULT_TOPIC,),
            consumer_group=e.get("KAFKA_CONSUMER_GROUP", DEFAULT_GROUP),
            security_protocol=e.get("KAFKA_SECURITY_PROTOCOL") or None,
            sasl_mechanism=e.get("KAFKA_SASL_MECHANISM") or None,
            sasl_username=e.get("KAFKA_SASL_USERNAME") or None,
            sasl_password=e.get("KAFKA_SASL_PASSWORD") or None,
            ssl_cafile=e.get("KAFKA_SSL_CAFILE") or None,
        )

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments shared by kafka-python consumers, producers and admin clients."""
        cfg: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers.split(",")}
        if self.security_protocol:
            cfg["security_protocol"] = self.security_protocol
        if self.sasl_mechanism:
            cfg["sasl_mechanism"] = self.sasl_mechanism
            cfg["sasl_plain_username"] = self.sasl_username
            cfg["sasl_plain_password"] = self.sasl_password
        if self.ssl_cafile:
            cfg["ssl_cafile"] = self.ssl_cafile
        return cfg


def duckdb_path(env: dict[str, str] | None = None) -> Path:
    e = os.environ if env is None else env
    return Path(e.get("DUCKDB_PATH", DEFAULT_DUCKDB_PATH))
