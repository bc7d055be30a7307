"""What goes wrong setting up a shared warehouse is one clear line each; and shards on a DuckDB
file (one writer) fail clearly or wait their turn, never corrupt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.generator import generate
from pipelines.producer import ensure_topic, produce
from pipelines.warehouse import DuckDBFile, DuckLake
from tests.helpers import query, settings_for
from tests.lake.conftest import host_env, trackflow


def _one_line_failure(command: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"DUCKLAKE_CATALOG": "postgres:dbname=lake host=127.0.0.1 port=5999 user=postgres"},
         "cannot be reached"),
        ({"DUCKLAKE_CATALOG": "postgres:dbname=no_such_lake_db host=127.0.0.1 user=postgres"},
         "cannot be reached"),
        ({"DUCKLAKE_DATA_PATH": ""}, "needs DUCKLAKE_DATA_PATH"),
        ({"DUCKLAKE_CATALOG": ""}, "needs DUCKLAKE_CATALOG"),
        ({"TRACKFLOW_PSEUDONYM_KEY": ""}, "TRACKFLOW_PSEUDONYM_KEY is not set"),
        ({"DUCKLAKE_CATALOG": "sqlite:lake.db"}, "is not a PostgreSQL catalog"),
    ],
)  # fmt: skip
def test_bad_configuration_is_one_line(
    lake: DuckLake, tmp_path: Path, change: dict[str, str], expected: str
) -> None:
    env, cwd = host_env(lake, tmp_path, "bad", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", **change)
    line = _one_line_failure(trackflow("ingest"), env, cwd)
    assert expected in line
    assert "password" not in line or "password=***" in line


def test_a_missing_extension_is_one_line(lake: DuckLake, tmp_path: Path) -> None:
    """A host whose DuckDB has no ducklake extension and no wheel to install it from."""
    env, cwd = host_env(lake, tmp_path, "no-extension", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    code = (
        "import sys; sys.modules['duckdb_extension_ducklake'] = None;"
        "from pipelines.cli import app; app()"
    )
    line = _one_line_failure([sys.executable, "-c", code, "report"], env, cwd)
    assert "the DuckDB extension ducklake is not installed" in line
    assert "pip install duckdb-extension-ducklake" in line


def test_shards_on_a_duckdb_file_take_turns(broker, tmp_path: Path) -> None:
    topic = "file.shards"
    settings = settings_for(broker.bootstrap, topic)
    ensure_topic(settings, topic, partitions=4)
    traffic = generate(events=6_000, users=100, seed=43)
    produce(traffic.messages, settings, topic)
    warehouse = DuckDBFile(tmp_path / "warehouse.duckdb")
    env = {
        **os.environ,
        "TRACKFLOW_WAREHOUSE": "duckdb",
        "DUCKDB_PATH": str(warehouse.path),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TRACKING_TOPIC": topic,
    }
    runs = [
        subprocess.Popen(trackflow("ingest", "--shard", f"{i}/2"), env=env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]  # fmt: skip
    outcomes = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in runs]
    for code, err in outcomes:
        # the second writer is refused with the reason, or it found the file free in turn
        assert code == 0 or ("locked by another process" in err and code == 1), err
    for i in range(2):  # each shard again, one after the other: both finish
        done = subprocess.run(
            trackflow("ingest", "--shard", f"{i}/2"), env=env, cwd=tmp_path, capture_output=True
        )
        assert done.returncode == 0, done.stderr
    raw, distinct = query(
        warehouse,
        "select count(*), count(distinct (_kafka_partition, _kafka_offset)) "
        "from raw.tracking_events",
    )[0]
    assert raw == distinct == len(traffic.messages)
