"""Alerts to a webhook (Slack-compatible JSON) when a run fails or a run's checks fail.

`TRACKFLOW_ALERT_WEBHOOK` unset: the sensors skip. The message names the run, the job, the
failing step or the failing checks with their assets and reasons, and links to the run in the UI
(`TRACKFLOW_DAGSTER_URL`). Slack's incoming webhooks take `text` (and show `blocks`); a generic
receiver gets the same facts as fields under `trackflow`.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import dagster as dg

from pipelines.config import OrchestrationSettings

TIMEOUT_S = 10


def post(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310 - configured
        answer.read()


def payload(
    title: str, run: dg.DagsterRun, ui_url: str, lines: list[str], facts: dict[str, Any]
) -> dict[str, Any]:
    link = f"{ui_url.rstrip('/')}/runs/{run.run_id}"
    text = f"{title}: {run.job_name} run {run.run_id[:8]}\n" + "\n".join(lines) + f"\n<{link}|open>"
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"{run.job_name} · <{link}|{run.run_id}>"}],
            },
        ],
        "trackflow": {"run_id": run.run_id, "job": run.job_name, "url": link, **facts},
    }


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str, str]]:
    """(asset, check, reason) of every check that failed in the run."""
    out = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        event = record.get_dagster_event()
        evaluation = event.event_specific_data
        if isinstance(evaluation, dg.AssetCheckEvaluation) and not evaluation.passed:
            reason = evaluation.metadata.get("reason")
            out.append(
                (
                    evaluation.asset_key.to_user_string(),
                    evaluation.check_name,
                    str(reason.value if reason is not None else evaluation.description or ""),
                )
            )
    return out


def build_alert_sensors(settings: OrchestrationSettings) -> list[dg.SensorDefinition]:
    """A sensor for failed runs and one for succeeded runs whose checks failed."""
    webhook, ui_url = settings.alert_webhook, settings.dagster_url

    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts a failed run (step, reason, link) to TRACKFLOW_ALERT_WEBHOOK.",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
        if not webhook:
            return dg.SkipReason("TRACKFLOW_ALERT_WEBHOOK is not set")
        run = context.dagster_run
        steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
        reason = (context.failure_event.message or "").splitlines()[0]
        checks = failed_checks(context.instance, run.run_id)
        lines = [f"*failed:* {', '.join(steps) or run.job_name}", reason]
        lines += [f"*check failed:* {asset} · {check}: {why}" for asset, check, why in checks]
        post(
            webhook,
            payload(
                "trackflow run failed",
                run,
                ui_url,
                lines,
                {"failed_steps": steps, "reason": reason, "failed_checks": _facts(checks)},
            ),
        )
        return None

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="alert_on_failed_checks",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts the checks that failed in a successful run to TRACKFLOW_ALERT_WEBHOOK.",
    )
    def alert_on_failed_checks(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
        if not webhook:
            return dg.SkipReason("TRACKFLOW_ALERT_WEBHOOK is not set")
        run = context.dagster_run
        checks = failed_checks(context.instance, run.run_id)
        if not checks:
            return dg.SkipReason(f"every check of run {run.run_id} passed")
        lines = [f"*check failed:* {asset} · {check}: {why}" for asset, check, why in checks]
        post(
            webhook,
            payload(
                "trackflow checks failed", run, ui_url, lines, {"failed_checks": _facts(checks)}
            ),
        )
        return None

    return [alert_on_run_failure, alert_on_failed_checks]


def _facts(checks: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"asset": a, "check": c, "reason": r} for a, c, r in checks]
