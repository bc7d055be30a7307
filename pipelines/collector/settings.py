"""Collector settings from the environment.

`COLLECTOR_WRITE_KEYS` is required: the collector refuses to start without at least one key, so a
deployment never accepts anonymous traffic by accident.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pipelines.config import KafkaSettings

IpMode = Literal["truncate", "full", "none"]
IP_MODES: tuple[IpMode, ...] = ("truncate", "full", "none")

# segment's documented limits for its http tracking api
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024


class SettingsError(ValueError):
    """A collector setting is missing or malformed; the message says which and how to fix it."""


def parse_write_keys(raw: str) -> dict[str, str]:
    """`key1,web:key2` -> {write key: source name}; unnamed keys become source1, source2, ..."""
    keys: dict[str, str] = {}
    for position, item in enumerate((i.strip() for i in raw.split(",")), start=1):
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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be positive")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} must be true or false")


@dataclass(frozen=True)
class CollectorSettings:
    write_keys: Mapping[str, str]
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    # origins allowed to call the api from a browser; "*" allows any origin
    cors_origins: tuple[str, ...] = ()
    ip_mode: IpMode = "truncate"
    produce_timeout_s: float = 5.0
    retry_after_s: int = 5
    compression: str | None = "lz4"
    demo_page: bool = True
    shutdown_timeout_s: float = 10.0
    max_event_bytes: int = MAX_EVENT_BYTES
    max_batch_bytes: int = MAX_BATCH_BYTES

    def __post_init__(self) -> None:
        if not self.write_keys:
            raise SettingsError(
                "COLLECTOR_WRITE_KEYS is empty; set one or more comma-separated write keys "
                "(optionally named 'source:key'), e.g. COLLECTOR_WRITE_KEYS=web:dev-write-key"
            )
        if self.ip_mode not in IP_MODES:
            raise SettingsError(f"COLLECTOR_IP_MODE={self.ip_mode!r} must be one of {IP_MODES}")

    @property
    def topic(self) -> str:
        """The collector produces to the first of the configured tracking topics."""
        return self.kafka.topics[0]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CollectorSettings:
        e = os.environ if env is None else env
        origins = tuple(
            o.strip().rstrip("/")
            for o in e.get("COLLECTOR_CORS_ORIGINS", "").split(",")
            if o.strip()
        )
        compression = e.get("COLLECTOR_COMPRESSION", "lz4").strip().lower()
        return cls(
            write_keys=parse_write_keys(e.get("COLLECTOR_WRITE_KEYS", "")),
            kafka=KafkaSettings.from_env(dict(e)),
            cors_origins=origins,
            ip_mode=e.get("COLLECTOR_IP_MODE", "truncate").strip().lower(),  # type: ignore[arg-type]
            produce_timeout_s=_float(e, "COLLECTOR_PRODUCE_TIMEOUT_MS", 5000.0) / 1000,
            retry_after_s=int(_float(e, "COLLECTOR_RETRY_AFTER_S", 5)),
            compression=None if compression in ("", "none") else compression,
            demo_page=_bool(e, "COLLECTOR_DEMO_PAGE", True),
            shutdown_timeout_s=_float(e, "COLLECTOR_SHUTDOWN_TIMEOUT_S", 10.0),
        )
