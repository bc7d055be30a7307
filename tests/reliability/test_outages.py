"""Broker unreachable at start and mid-drain; warehouse locked by another process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from pipelines.broker import EmbeddedBroker, free_port
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.kafka_source.helpers import BrokerUnavailable
from pipelines.kafka_source.settings import CONSUMER_DEFAULTS
from pipelines.offsets import ALL_PARTITIONS, confirmed_offsets
from pipelines.producer import produce
from pipelines.warehouse import WarehouseLocked
from tests.helpers import limits, scalar, settings_for
from tests.reliability.proxy import OutageProxy


@pytest.fixture
def proxied(tmp_path):
    """(broker, proxy): clients only reach the broker through the proxy."""
    public = free_port()
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log", advertised_port=public)
    broker.start()
    proxy = OutageProxy(public, broker.port)
    proxy.up()
    yield broker, proxy, f"127.0.0.1:{public}"
    proxy.down()
    broker.stop()


def test_unreachable_at_start_then_catch_up(proxied, warehouse) -> None:
    _, proxy, bootstrap = proxied
    settings = settings_for(bootstrap, "events")
    traffic = generate(events=2_000, users=60, seed=3)
    produce(traffic.messages, settings, "events")
    assert ingest(settings, warehouse, limits=limits(max_messages=500)).loaded == 500
    before = confirmed_offsets(warehouse, settings.topics, ALL_PARTITIONS)

    proxy.down()
    with pytest.raises(BrokerUnavailable) as err:
        ingest(settings, warehouse)
    assert f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}" in str(err.value)
    # no offset advanced
    assert confirmed_offsets(warehouse, settings.topics, ALL_PARTITIONS) == before

    proxy.up()
    assert ingest(settings, warehouse).loaded == 1_500
    assert scalar(warehouse, "select count(distinct message_id) from raw.tracking_events") == 2_000
    assert scalar(warehouse, "select count(*) from raw.tracking_events") == 2_000


def test_outage_mid_drain_fails_loudly_and_moves_no_offset(proxied, warehouse, monkeypatch) -> None:
    _, proxy, bootstrap = proxied
    # small fetches, so the drain still needs the broker after the first micro-batch
    monkeypatch.setitem(CONSUMER_DEFAULTS, "max_partition_fetch_bytes", 16 * 1024)
    monkeypatch.setitem(CONSUMER_DEFAULTS, "fetch_max_bytes", 64 * 1024)
    settings = settings_for(bootstrap, "events")
    traffic = generate(events=20_000, users=300, seed=4)
    # small record batches: the broker returns whole batches whatever the fetch size
    produce(traffic.messages, settings, "events", batch_bytes=16 * 1024)

    cut = threading.Event()

    def on_batch(stats) -> None:
        if not cut.is_set():
            cut.set()
            proxy.down()  # after the first micro-batch, in the middle of the drain

    with pytest.raises(BrokerUnavailable) as err:
        ingest(settings, warehouse, limits=limits(batch_size=1_000), on_batch=on_batch)
    assert f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}" in str(err.value)
    assert confirmed_offsets(warehouse, settings.topics, ALL_PARTITIONS) == {}
    # nothing of the failed drain was loaded: no raw row at all
    if warehouse.exists():
        with warehouse.connect(read_only=True) as sql:
            assert not sql.has_table("raw.tracking_events") or not sql.scalar(
                "select count(*) from raw.tracking_events"
            )

    proxy.up()
    result = ingest(settings, warehouse)
    assert result.loaded == 20_000
    assert scalar(warehouse, "select count(*) from raw.tracking_events") == 20_000


def test_locked_warehouse_is_a_clear_retryable_failure(broker, make_topic, warehouse) -> None:
    topic = make_topic(partitions=2)
    settings = settings_for(broker.bootstrap, topic)
    produce(generate(events=1_000, users=40, seed=5).messages, settings, topic)
    assert ingest(settings, warehouse).loaded == 1_000
    produce(generate(events=500, users=30, seed=6).messages, settings, topic)

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
            " print('locked', flush=True);"
            " time.sleep(120)",
            str(warehouse.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseLocked) as err:
            ingest(settings, warehouse)
        assert "locked by another process" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.2)
    assert scalar(warehouse, "select count(*) from raw.tracking_events") == 1_000  # intact
    # the retry loads exactly what the failed run could not
    assert ingest(settings, warehouse).loaded in (0, 500)
    assert scalar(warehouse, "select count(distinct message_id) from raw.tracking_events") == 1_500
    assert scalar(warehouse, "select count(*) from raw.tracking_events") == 1_500
