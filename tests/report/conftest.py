"""One warehouse built the real way (generator -> embedded broker -> ingest -> dbt build) and
the report built from it, shared by the report tests."""

from __future__ import annotations

import json
import re
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
from pipelines.warehouse import DuckDBFile
from tests.helpers import dbt_build, settings_for

REPO_ROOT = Path(__file__).resolve().parents[2]
FAULTS = {"duplicates", "late", "skew", "malformed"}


@dataclass
class DemoWarehouse:
    warehouse: DuckDBFile
    work: Path
    truth: dict[str, Any]
    run_results: Path


@pytest.fixture(scope="session")
def demo_warehouse(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> DemoWarehouse:
    work = tmp_path_factory.mktemp("report")
    warehouse = DuckDBFile(work / "warehouse.duckdb")
    topic = f"report.{uuid.uuid4().hex[:10]}"
    traffic = generate(events=5_000, users=250, days=2, seed=11, faults=FAULTS, journeys=True)
    settings = settings_for(broker.bootstrap, topic)
    produce(traffic.messages, settings, topic)
    ingest(settings, warehouse)
    dbt_build(warehouse)  # its run_results.json lands in work/dbt_target
    return DemoWarehouse(warehouse, work, traffic.truth, work / "dbt_target" / "run_results.json")


@pytest.fixture(scope="session")
def report(demo_warehouse: DemoWarehouse) -> ReportSummary:
    (demo_warehouse.work / "out").mkdir()  # build_report creates no directory it is given
    return build_report(
        demo_warehouse.warehouse,
        demo_warehouse.work / "out" / "report.html",
        dbt_run_results=demo_warehouse.run_results,
    )


def embedded(html_path: Path, element_id: str = "report-data") -> Any:
    """The JSON a page embeds in <script type="application/json" id=...>, read from the file."""
    html = html_path.read_text(encoding="utf-8")
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert m, f"no <script id={element_id}> in {html_path}"
    return json.loads(m.group(1))
