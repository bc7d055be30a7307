"""One warehouse built the real way (generator -> embedded broker -> ingest -> dbt build) and
the report built from it, shared by the report tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.broker import EmbeddedBroker
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce
from pipelines.report import ReportSummary, build_report
from tests.helpers import settings_for

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT = Path(sys.executable).parent / "dbt"
FAULTS = {"duplicates", "late", "skew", "malformed"}

# a check as Dagster would hand it over (failing, so the panel must show it)
DAGSTER_CHECK = {
    "name": "rejected_rate",
    "asset": "raw/tracking_events_rejected",
    "passed": False,
    "severity": "ERROR",
    "actual": 0.0097,
    "threshold": 0.005,
    "detail": "50 of 5150 messages rejected",
}


@dataclass
class DemoWarehouse:
    path: Path
    work: Path
    truth: dict[str, Any]
    run_results: Path


@pytest.fixture(scope="session")
def demo_warehouse(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> DemoWarehouse:
    work = tmp_path_factory.mktemp("report")
    warehouse = work / "warehouse.duckdb"
    topic = f"report.{uuid.uuid4().hex[:10]}"
    traffic = generate(events=5_000, users=250, days=2, seed=11, faults=FAULTS)
    settings = settings_for(broker.bootstrap, topic)
    produce(traffic.messages, settings, topic)
    ingest(settings, warehouse)
    cmd = [
        str(DBT),
        "build",
        "--project-dir",
        "dbt_project",
        "--profiles-dir",
        "dbt_project",
        "--target-path",
        str(work / "dbt_target"),
        "--log-path",
        str(work / "dbt_logs"),
    ]
    env = {**os.environ, "DUCKDB_PATH": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"dbt build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return DemoWarehouse(warehouse, work, traffic.truth, work / "dbt_target" / "run_results.json")


@pytest.fixture(scope="session")
def report(demo_warehouse: DemoWarehouse) -> ReportSummary:
    return build_report(
        demo_warehouse.path,
        demo_warehouse.work / "out" / "report.html",
        checks=[DAGSTER_CHECK],
        dbt_run_results=demo_warehouse.run_results,
    )


def embedded(html_path: Path, element_id: str = "report-data") -> Any:
    """The JSON a page embeds in <script type="application/json" id=...>, read from the file."""
    html = html_path.read_text(encoding="utf-8")
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert m, f"no <script id={element_id}> in {html_path}"
    return json.loads(m.group(1))
