"""Alerts reach the webhook: a failed run, and a run whose checks failed, posted as Slack-style
JSON to a local HTTP server that records what it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest

from orchestration.alerts import build_alert_sensors
from pipelines.config import OrchestrationSettings


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"type": self.headers["Content-Type"], **json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


@dg.asset(key=["analytics", "thing"])
def thing() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset_check(asset=thing)
def thing_is_fine() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, metadata={"reason": "12 of 100 rows are wrong"})


@dg.op
def breaks() -> None:
    raise dg.Failure(description="the broker is gone")


@dg.job
def breaking_job() -> None:
    breaks()


def _sensors(url: str) -> dict[str, dg.SensorDefinition]:
    settings = OrchestrationSettings(alert_webhook=url, dagster_url="http://dagster.internal")
    return {s.name: s for s in build_alert_sensors(settings)}


def _context(sensor: str, result: dg.ExecuteInProcessResult, instance, event_type: str):
    event = next(e for e in result.all_events if e.event_type_value == event_type)
    run = instance.get_run_by_id(result.run_id)
    return dg.build_run_status_sensor_context(
        sensor_name=sensor, dagster_event=event, dagster_instance=instance, dagster_run=run
    )


def test_a_failed_run_is_posted(webhook, tmp_path) -> None:
    url, received = webhook
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = breaking_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        context = _context("alert_on_run_failure", result, instance, "PIPELINE_FAILURE")
        _sensors(url)["alert_on_run_failure"](context.for_run_failure())
    [alert] = received
    assert alert["type"] == "application/json"
    assert alert["trackflow"]["run_id"] == result.run_id
    assert alert["trackflow"]["failed_steps"] == ["breaks"]
    assert alert["trackflow"]["url"] == f"http://dagster.internal/runs/{result.run_id}"
    assert "breaking_job" in alert["text"] and "breaks" in alert["text"]
    assert alert["blocks"][0]["text"]["text"] == "trackflow run failed"


def test_failed_checks_of_a_successful_run_are_posted(webhook, tmp_path) -> None:
    url, received = webhook
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize([thing, thing_is_fine], instance=instance)
        assert result.success
        context = _context("alert_on_failed_checks", result, instance, "PIPELINE_SUCCESS")
        _sensors(url)["alert_on_failed_checks"](context)
    [alert] = received
    assert alert["trackflow"]["failed_checks"] == [
        {"asset": "analytics/thing", "check": "thing_is_fine", "reason": "12 of 100 rows are wrong"}
    ]
    assert "analytics/thing" in alert["text"] and "12 of 100 rows are wrong" in alert["text"]


def test_without_a_webhook_nothing_is_sent(webhook, tmp_path) -> None:
    _, received = webhook
    sensors = {s.name: s for s in build_alert_sensors(OrchestrationSettings(alert_webhook=None))}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = breaking_job.execute_in_process(instance=instance, raise_on_error=False)
        context = _context("alert_on_run_failure", result, instance, "PIPELINE_FAILURE")
        skipped = sensors["alert_on_run_failure"](context.for_run_failure())
    assert isinstance(skipped, dg.SkipReason) and received == []
