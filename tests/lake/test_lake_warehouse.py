"""The same traffic into a DuckDB file (trackflow ingest + dbt build) and into a DuckLake (the
Dagster graph, ingestion in two shard processes): every mart identical. Then, on the lake, what
operators run: the report, dead-letter replay and erasure."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from orchestration.demo import materialize_everything
from orchestration.resources import IngestionResource, WarehouseResource
from pipelines.erasure import forget
from pipelines.ingest import ingest
from pipelines.names import MARTS
from pipelines.replay import replay_rejected
from pipelines.report import build_report
from pipelines.warehouse import DuckDBFile, DuckLake
from tests.helpers import dbt_build, query, scalar, settings_for
from tests.lake.conftest import PSEUDONYM_KEY
from tests.orchestration.helpers import (
    bound_defs,
    check_results,
    materializations,
    new_topic,
    recent_traffic,
    send,
    today,
)

DAYS = 2


@pytest.fixture
def built(broker, lake: DuckLake, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRACKFLOW_PSEUDONYM_KEY", PSEUDONYM_KEY)
    topic = new_topic(broker.bootstrap, partitions=4)
    traffic = recent_traffic(3_000, DAYS, seed=41, faults={"duplicates", "late", "malformed"})
    send(broker.bootstrap, topic, traffic.messages)
    # the file: the command line and dbt
    file = DuckDBFile(tmp_path / "file" / "warehouse.duckdb")
    assert ingest(settings_for(broker.bootstrap, topic), file).messages == len(traffic.messages)
    dbt_build(file)
    # the lake: one Dagster run of the whole graph, ingestion in two shard processes
    defs = bound_defs(broker.bootstrap, topic, file)
    resources = dict(defs.resources or {})
    resources["warehouse"] = WarehouseResource(
        kind="ducklake",
        ducklake_catalog=lake.catalog,
        ducklake_data_path=lake.data_path,
        state_dir=str(lake.state_dir),
    )
    resources["ingestion"] = IngestionResource(shards=2)
    lake_defs = dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        resources=resources,
        executor=defs.executor,
    )
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = materialize_everything(
            today() - timedelta(days=DAYS + 1),
            today(),
            instance=instance,
            defs=lake_defs,
            raise_on_error=False,
        )
    return {"file": file, "traffic": traffic, "result": result, "topic": topic}


def test_the_lake_equals_the_file_and_operators_work_on_it(built, lake: DuckLake) -> None:
    result: dg.ExecuteInProcessResult = built["result"]
    assert result.success
    failed = {k: e.metadata for k, e in check_results(result).items() if not e.passed}
    assert failed == {}
    raw = materializations(result)["raw/tracking_events"][0].metadata
    truth = built["traffic"].truth
    assert raw["shards"].value == 2  # two shard processes, every partition between them
    assert sorted(raw["offsets"].value) == [f"{built['topic']}[{p}]" for p in range(4)]
    assert raw["messages"].value == truth["messages"]
    assert scalar(lake, "select count(*) from analytics.fct_sessions") == truth["sessions"]

    # every mart: the lake and the file hold exactly the same rows
    file: DuckDBFile = built["file"]
    with lake.connect() as sql:
        sql.execute(f"attach '{file.path}' as file_copy (read_only)")
        for mart in MARTS:
            only_one_side = sql.scalar(
                f"""select count(*) from (
                    (select * from analytics.{mart}
                     except all select * from file_copy.analytics.{mart})
                    union all
                    (select * from file_copy.analytics.{mart}
                     except all select * from analytics.{mart}))"""
            )
            assert only_one_side == 0, mart
            assert sql.scalar(f"select count(*) from analytics.{mart}") > 0, mart

    # the report reads the lake
    summary = build_report(lake, lake.local_dir() / "report.html")
    assert summary.has_data and summary.headline["sessions"] == truth["sessions"]

    # dead letters replay (nothing malformed passes) on the lake, and erasure
    replayed = replay_rejected(lake)
    assert (replayed.examined, replayed.loaded) == (truth["malformed"], 0)
    person = query(
        lake,
        "select user_key from analytics.fct_sessions where user_key like 'user-%' "
        "group by 1 order by count(*) desc, 1 limit 1",
    )[0][0]
    data_dir = Path(lake.data_path.removeprefix("file://"))
    assert _data_files_holding(data_dir, person)  # the scan below can see them
    erased = forget(lake, user_id=person, requested_via="test")
    assert erased.rows_deleted["raw.tracking_events"] > 0
    for table, column in (
        ("raw.tracking_events", "user_id"),
        ("staging.stg_raw__tracking_events", "user_id"),
        ("analytics.fct_sessions", "user_key"),
        ("analytics.dim_users", "user_key"),
    ):
        assert scalar(lake, f"select count(*) from {table} where {column} = '{person}'") == 0
    # nothing of them left in the lake's files or its catalog database either
    assert _data_files_holding(data_dir, person) == []
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-d", _database(lake)],
        capture_output=True,
        check=True,
        env={**os.environ},
    ).stdout
    assert person.encode() not in dump
    assert json.loads(scalar(lake, "select rows_deleted from raw.privacy_erasures"))


def _data_files_holding(data_dir: Path, text: str) -> list[Path]:
    """Every parquet file under data_dir, referenced by the catalog or not, holding text in any
    value once decoded (the files are compressed: their raw bytes would not show it)."""
    token = re.compile(rf"(?<![\w-]){re.escape(text)}(?![\w-])")
    return [
        path
        for path in sorted(data_dir.rglob("*.parquet"))
        if token.search(str(pq.read_table(path).to_pylist()))
    ]


def _database(lake: DuckLake) -> str:
    return lake.catalog.split("dbname=")[1].split()[0]
