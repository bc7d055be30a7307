"""Schedules: micro-batch ingestion every 5 minutes, today's marts two minutes later.

Both crons are configurable (TRACKFLOW_INGEST_CRON, TRACKFLOW_MARTS_CRON) and start stopped:
switch them on in the UI (Automation) or with `dagster schedule start ingest_schedule`.
"""

from __future__ import annotations

from datetime import UTC

import dagster as dg
from dagster import DagsterRunStatus, RunsFilter

from orchestration.jobs import Jobs
from pipelines.config import OrchestrationSettings

# a run in one of these states still holds (or will hold) its place in the queue and pools
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def _unfinished_runs(context: dg.ScheduleEvaluationContext, job_name: str) -> int:
    runs = context.instance.get_run_records(
        filters=RunsFilter(job_name=job_name, statuses=UNFINISHED), limit=1
    )
    return len(runs)


def build_schedules(jobs: Jobs, settings: OrchestrationSettings) -> list[dg.ScheduleDefinition]:
    """The ingestion and marts schedules on the configured crons (stopped until switched on)."""
    ingest_job, marts_job = jobs.ingest, jobs.marts

    @dg.schedule(
        job=ingest_job,
        cron_schedule=settings.ingest_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def ingest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        """A micro-batch; skipped while the previous one is still queued or running (the pool and
        the run queue would hold it anyway: skipping keeps the queue from piling up)."""
        if _unfinished_runs(context, ingest_job.name):
            return dg.SkipReason("the previous ingestion run has not finished")
        tick = context.scheduled_execution_time
        return dg.RunRequest(run_key=f"ingest-{tick:%Y%m%dT%H%M}" if tick else None)

    @dg.schedule(
        job=marts_job,
        cron_schedule=settings.marts_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def marts_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        """Today's marts partition after each micro-batch (earlier days: the late-data sensor)."""
        if _unfinished_runs(context, marts_job.name):
            return dg.SkipReason("the previous marts run has not finished")
        tick = context.scheduled_execution_time
        today = tick.astimezone(UTC).date().isoformat()
        return dg.RunRequest(run_key=f"marts-{tick:%Y%m%dT%H%M}", partition_key=today)

    return [ingest_schedule, marts_schedule]
