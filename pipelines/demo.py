"""`make demo` without Dagster: embedded broker, a day of traffic, one ingest, dbt, a summary.

(The Dagster flavour, `python -m orchestration.demo`, runs the same steps as one asset graph.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from pipelines import broker
from pipelines.config import KafkaSettings, duckdb_path
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    settings = KafkaSettings.from_env()
    port = int(settings.bootstrap_servers.rsplit(":", 1)[1])
    st = broker.start(port=port)
    print(f"broker: {st.bootstrap} (pid {st.pid})")
    traffic = generate(
        events=20_000,
        users=800,
        days=1,
        seed=int(os.environ.get("SEED", "42")),
        faults={"duplicates", "late", "skew", "malformed"},
    )
    produce(traffic.messages, settings)
    print(f"produced {len(traffic.messages)} messages to {settings.topics[0]}")
    result = ingest(settings, duckdb_path())
    print(f"ingest: {result.summary()}")
    dbt = REPO / ".venv" / "bin" / "dbt"
    if (REPO / "dbt_project" / "dbt_project.yml").exists():
        subprocess.run(
            [
                str(dbt),
                "build",
                "--project-dir",
                "dbt_project",
                "--profiles-dir",
                "dbt_project",
                "--quiet",
            ],
            cwd=REPO,
            check=True,
        )
        with duckdb.connect(str(duckdb_path()), read_only=True) as con:
            sessions = con.execute("select count(*) from analytics.fct_sessions").fetchone()
        print(
            f"sessions so far: {sessions[0] if sessions else 0} "
            f"(generator's truth for this traffic: {traffic.truth['sessions']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
