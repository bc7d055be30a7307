"""Session-wide fixtures: a private embedded broker on a free port, temp warehouses, topics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from pipelines.broker import EmbeddedBroker
from pipelines.warehouse import DuckDBFile

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


@pytest.fixture
def make_topic(broker: EmbeddedBroker):
    """Create a fresh uniquely named topic: make_topic(partitions=4) -> name."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)

    def _make(partitions: int = 4, prefix: str = "test") -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        admin.create_topics([NewTopic(name, partitions, 1)])
        return name

    yield _make
    admin.close()


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBFile:
    """A fresh DuckDB-file warehouse for one test (not created until something writes it)."""
    return DuckDBFile(tmp_path / "warehouse.duckdb")
