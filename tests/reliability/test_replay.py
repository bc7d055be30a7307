"""Dead-letter replay after the cause is fixed: the rows that now pass load exactly once."""

from __future__ import annotations

import os
import subprocess
import sys

from pipelines.events import dumps
from pipelines.ingest import ingest
from pipelines.producer import produce
from tests.conftest import REPO_ROOT
from tests.helpers import query, scalar, settings_for


def _replay(warehouse, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "replay-rejected"],
        env={**os.environ, "DUCKDB_PATH": str(warehouse.path), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_replay_loads_what_now_passes_exactly_once(broker, make_topic, warehouse) -> None:
    topic = make_topic(partitions=2)
    big = {
        "messageId": "big-1",
        "type": "track",
        "event": "Report Exported",
        "anonymousId": "a1",
        "timestamp": "2026-05-01T10:00:00Z",
        "properties": {"rows": "x" * 40_000},
    }
    messages = [
        (b"a1", dumps(big), None),
        (b"a2", b"still not json", None),
        (b"a3", dumps({**big, "messageId": "ok-1", "properties": {}}), None),
    ]
    settings = settings_for(broker.bootstrap, topic)
    produce(messages, settings, topic)
    result = ingest(settings, warehouse)
    assert (result.loaded, result.rejected) == (1, 2)

    # unchanged limits: nothing passes yet
    assert "loaded 0, 2 still rejected" in _replay(warehouse)
    # the operator raises the event size limit (the cause), then replays
    out = _replay(warehouse, TRACKFLOW_MAX_EVENT_BYTES="65536")
    assert "loaded 1, 1 still rejected" in out
    assert "loaded 0, 1 still rejected" in _replay(warehouse, TRACKFLOW_MAX_EVENT_BYTES="65536")

    assert sorted(r[0] for r in query(warehouse, "select message_id from raw.tracking_events")) == [
        "big-1",
        "ok-1",
    ]
    # dead letters stay as the audit trail
    assert scalar(warehouse, "select count(*) from raw.tracking_events_rejected") == 2
