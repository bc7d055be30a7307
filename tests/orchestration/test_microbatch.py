"""microbatch_sensor against the embedded broker, and microbatch_job in real Dagster execution.

The sensor is evaluated with `build_sensor_context` on a real (temp) instance and the code
location's definitions bound to a fresh topic: it requests a run when the consumer group lags,
skips when nothing is new and while an ingestion run is unfinished. One heavy scenario (a module
fixture) runs what the sensor requested, in process: raw, staging and today's marts in one run,
the events just produced in `fct_sessions`, the second dbt invocation starting from the first
one's parse, and the sensor quiet afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster import DagsterRunStatus

from orchestration.microbatch import LAG_TAG, TRIGGER_TAG
from pipelines.broker import EmbeddedBroker
from pipelines.warehouse import DuckDBFile
from tests.helpers import scalar

from .helpers import bound_defs, materializations, new_topic, send, today

SENSOR = "microbatch_sensor"


def _visit(anonymous_id: str, path: str) -> bytes:
    """A page view happening now (an envelope the validator accepts)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {
            "messageId": str(uuid.uuid4()),
            "type": "page",
            "name": path,
            "anonymousId": anonymous_id,
            "timestamp": now,
            "sentAt": now,
            "receivedAt": now,
            "context": {
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) trackflow-tests",
                "page": {"url": f"https://shop.example.com{path}", "path": path, "title": path},
                "library": {"name": "analytics.js", "version": "5.2.0"},
            },
        }
    ).encode()


def _visits(visitors: list[str]) -> list[tuple[bytes | None, bytes | None, int | None]]:
    return [
        (v.encode(), _visit(v, path), None) for v in visitors for path in ("/", "/pricing", "/docs")
    ]


def _evaluate(defs: dg.Definitions, instance: dg.DagsterInstance) -> Any:
    sensor = defs.get_sensor_def(SENSOR)
    # the daemon binds the code location's resources; a test context is given them
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, resources=dict(defs.resources or {})
    )
    return sensor(context)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


@pytest.fixture
def topic_defs(broker: EmbeddedBroker, tmp_path: Path) -> tuple[str, dg.Definitions]:
    topic = new_topic(broker.bootstrap, partitions=2)
    return topic, bound_defs(broker.bootstrap, topic, DuckDBFile(tmp_path / "w.duckdb"))


def test_sensor_is_stopped_by_default_and_looks_often() -> None:
    from orchestration.definitions import defs

    sensor = defs.get_sensor_def(SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == "microbatch_job"
    assert sensor.minimum_interval_seconds == 10  # TRACKFLOW_MICROBATCH_INTERVAL_SECONDS


def test_sensor_skips_an_empty_topic_and_requests_a_run_when_the_group_lags(
    broker: EmbeddedBroker, topic_defs: tuple[str, dg.Definitions], instance
) -> None:
    topic, defs = topic_defs
    skipped = _evaluate(defs, instance)
    assert isinstance(skipped, dg.SkipReason)
    assert "no messages past the committed offsets" in str(skipped.skip_message)

    send(broker.bootstrap, topic, _visits(["a-1", "a-2"]))
    request = _evaluate(defs, instance)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == today().isoformat()
    assert request.tags[TRIGGER_TAG] == SENSOR
    assert int(request.tags[LAG_TAG]) >= 1  # Tansu may report the last batch's start as its end
    # the same unloaded messages: the same run key (a failed run is not requested again) ...
    again = _evaluate(defs, instance)
    assert isinstance(again, dg.RunRequest) and again.run_key == request.run_key
    # ... new ones: a new key
    send(broker.bootstrap, topic, _visits(["a-3"]))
    newer = _evaluate(defs, instance)
    assert isinstance(newer, dg.RunRequest) and newer.run_key != request.run_key


@pytest.mark.parametrize("job_name", ["microbatch_job", "ingest_job"])
@pytest.mark.parametrize("status", [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTED])
def test_sensor_skips_while_an_ingestion_run_is_unfinished(
    broker: EmbeddedBroker,
    topic_defs: tuple[str, dg.Definitions],
    instance,
    job_name: str,
    status: DagsterRunStatus,
) -> None:
    topic, defs = topic_defs
    send(broker.bootstrap, topic, _visits(["b-1"]))
    job = defs.resolve_job_def(job_name)
    # a run carries its job's tags (trackflow/role=ingestion), as the daemon creates it
    run = instance.create_run_for_job(job, status=status, tags=job.tags)
    skipped = _evaluate(defs, instance)
    assert isinstance(skipped, dg.SkipReason)
    assert run.run_id in str(skipped.skip_message)
    # once it is over, the lag it left is picked up
    instance.report_run_failed(run)
    assert isinstance(_evaluate(defs, instance), dg.RunRequest)


def test_sensor_fails_its_tick_naming_an_unreachable_broker(tmp_path: Path, instance) -> None:
    defs = bound_defs("127.0.0.1:1", "nowhere", DuckDBFile(tmp_path / "w.duckdb"))
    with pytest.raises(Exception, match=r"KAFKA_BOOTSTRAP_SERVERS=127\.0\.0\.1:1"):
        _evaluate(defs, instance)


@pytest.fixture(scope="module")
def microbatch(
    broker: EmbeddedBroker,
    module_warehouse: DuckDBFile,
    dagster_instance: dg.DagsterInstance,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Visits produced now; the sensor's request run in process (a private DBT_TARGET_PATH, so
    the parses of this run's dbt invocations can be read from their logs); the sensor again."""
    topic = new_topic(broker.bootstrap)
    defs = bound_defs(broker.bootstrap, topic, module_warehouse)
    visitors = [f"visitor-{uuid.uuid4()}" for _ in range(5)]
    messages = _visits(visitors)
    send(broker.bootstrap, topic, messages)
    request = _evaluate(defs, dagster_instance)
    assert isinstance(request, dg.RunRequest)
    targets = tmp_path_factory.mktemp("dbt_target")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DBT_TARGET_PATH", str(targets))
        result = defs.resolve_job_def("microbatch_job").execute_in_process(
            instance=dagster_instance,
            partition_key=request.partition_key,
            tags=request.tags,
            raise_on_error=False,
        )
    logs = {
        step: (targets / d.name / "dbt.log").read_text(errors="replace")
        for step in ("dbt_staging", "dbt_marts")
        for d in targets.glob(f"{step}-*")
    }
    return {
        "defs": defs,
        "visitors": visitors,
        "messages": len(messages),
        "result": result,
        "targets": targets,
        "dbt_logs": logs,
        "after": _evaluate(defs, dagster_instance),
    }


def test_microbatch_job_loads_raw_and_builds_todays_marts_in_one_run(
    microbatch: dict[str, Any], module_warehouse: DuckDBFile
) -> None:
    result: dg.ExecuteInProcessResult = microbatch["result"]
    assert result.success
    mats = materializations(result)
    raw = mats["raw/tracking_events"][0].metadata
    assert raw["rows_loaded"].value == microbatch["messages"]
    assert raw["total_lag"].value == 0
    window = {"min_date": today().isoformat(), "max_date": today().isoformat()}
    assert [m.partition for m in mats["analytics/fct_sessions"]] == [today().isoformat()]
    assert mats["analytics/fct_sessions"][0].metadata["dbt_vars"].value == window
    staging = [k for k in mats if k.startswith("staging/")]
    assert staging and all(mats[k][0].metadata["dbt_vars"].value == window for k in staging)
    # every check the run evaluated passed
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert not failed, [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in failed]
    # the visits produced just before are sessions now, one per visitor
    ids = "', '".join(microbatch["visitors"])
    sessions = scalar(
        module_warehouse,
        f"""select count(distinct session_id) from analytics.fct_sessions,
        unnest(anonymous_ids) as t(a) where a in ('{ids}')""",
    )
    assert sessions == len(microbatch["visitors"])


def test_microbatch_parses_the_dbt_project_at_most_once(microbatch: dict[str, Any]) -> None:
    """Staging and the marts pass the same vars: the marts' dbt starts from staging's parse,
    which is kept in the base target directory for the next run."""
    logs = microbatch["dbt_logs"]
    assert set(logs) == {"dbt_staging", "dbt_marts"}
    full_parse = ("Unable to do partial parsing", "Partial parse save file not found")
    assert not any(marker in logs["dbt_marts"] for marker in full_parse)
    assert (microbatch["targets"] / "partial_parse.msgpack").is_file()


def test_sensor_is_quiet_after_the_run(microbatch: dict[str, Any]) -> None:
    after = microbatch["after"]
    assert isinstance(after, dg.SkipReason)
    assert "no messages past the committed offsets" in str(after.skip_message)
