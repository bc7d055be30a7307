"""Partition shards on separate "hosts" against one DuckLake warehouse: three at once, one
SIGKILLed in the middle of a load and started again on a new empty host, then the topic
re-sharded over two other new hosts. Raw and staging hold every message exactly once."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

from pipelines.dbt import run_dbt
from pipelines.generator import generate
from pipelines.producer import ensure_topic, produce
from pipelines.warehouse import DuckLake, WarehouseError
from tests.helpers import query, settings_for
from tests.lake.conftest import host_env, trackflow

PARTITIONS = 6
# small parts: each shard loads several times, so a kill can land inside a load
INGEST = ("ingest", "--messages-per-load", "1200", "--batch-size", "400")


def _shard(lake: DuckLake, root: Path, host: str, shard: str, topic: str, bootstrap: str):
    env, cwd = host_env(
        lake,
        root,
        host,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TRACKING_TOPIC=topic,
        TRACKFLOW_TRACE_PHASES="1",
    )
    return subprocess.Popen(
        trackflow(*INGEST, "--shard", shard),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_mid_load(
    victim: subprocess.Popen[str], lake: DuckLake, shard_partitions: list[int]
) -> bool:
    """SIGKILL the process once rows of a load it has not confirmed are in raw."""
    partitions = ",".join(map(str, shard_partitions))
    deadline = time.monotonic() + 120
    orphans = 0
    while victim.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(WarehouseError), lake.connect(read_only=True) as sql:
            if sql.has_table("raw._dlt_loads"):
                orphans = sql.scalar(
                    "select count(*) from raw.tracking_events where _kafka_partition in "
                    f"({partitions}) and _dlt_load_id not in (select load_id from raw._dlt_loads)"
                )
        if orphans:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            return True
    return False


def _until_caught_up(lake, root, host, shard, topic, bootstrap) -> None:
    for _ in range(10):
        proc = _shard(lake, root, host, shard, topic, bootstrap)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        if out.startswith("loaded 0 events, rejected 0"):
            return
    raise AssertionError(f"shard {shard} on {host} never caught up")


def test_shards_on_many_hosts_lose_and_repeat_nothing(broker, lake, tmp_path) -> None:
    topic = f"lake.shards.{tmp_path.name}"
    settings = settings_for(broker.bootstrap, topic)
    ensure_topic(settings, topic, partitions=PARTITIONS)
    first = generate(events=12_000, users=300, days=2, seed=31, faults={"duplicates", "malformed"})
    produce(first.messages, settings, topic)

    shards = {
        i: _shard(lake, tmp_path, f"h{i}", f"{i}/3", topic, broker.bootstrap) for i in range(3)
    }
    # shard 1 dies in the middle of a load: some of its rows written, the load not confirmed
    owned = [p for p in range(PARTITIONS) if p % 3 == 1]
    assert _kill_mid_load(shards[1], lake, owned), "no load of shard 1 was caught half-written"
    for i in (0, 2):
        out, err = shards[i].communicate(timeout=300)
        assert shards[i].returncode == 0, err[-2000:]
    # its replacement starts on a host with nothing on disk: positions come from the lake
    _until_caught_up(lake, tmp_path, "h1-new", "1/3", topic, broker.bootstrap)

    second = generate(events=6_000, users=200, days=1, seed=32, faults={"duplicates"})
    produce(second.messages, settings, topic)
    # re-sharded: two shards on two more new hosts take every partition between them
    reshard = [(f"h{3 + i}", f"{i}/2") for i in range(2)]
    procs = [
        _shard(lake, tmp_path, host, shard, topic, broker.bootstrap) for host, shard in reshard
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    for host, shard in reshard:
        _until_caught_up(lake, tmp_path, host, shard, topic, broker.bootstrap)

    produced = len(first.messages) + len(second.messages)
    raw, coordinates = query(
        lake,
        "select count(*), count(distinct (_kafka_partition, _kafka_offset)) "
        "from raw.tracking_events",
    )[0]
    rejected, rejected_coordinates = query(
        lake,
        "select count(*), count(distinct (_kafka_partition, _kafka_offset)) "
        "from raw.tracking_events_rejected",
    )[0]
    assert raw == coordinates  # no message loaded twice
    assert rejected == rejected_coordinates == first.truth["malformed"]
    assert raw + rejected == produced  # none lost
    run_dbt(lake, "run", "--select", "stg_raw__tracking_events", "--quiet")
    staged = {r[0] for r in query(lake, "select message_id from staging.stg_raw__tracking_events")}
    assert staged == set(first.valid_ids) | set(second.valid_ids)
    assert query(lake, "select count(*) from staging.stg_raw__tracking_events")[0][0] == len(staged)
