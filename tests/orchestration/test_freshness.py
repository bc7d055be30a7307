"""Freshness: a policy on raw, and a per-day-partition check on every mart (a missed day fails)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from orchestration.definitions import defs

SESSIONS = dg.AssetKey(["analytics", "fct_sessions"])


def _evaluate(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    key = dg.AssetCheckKey(SESSIONS, "freshness_check")
    job = dg.define_asset_job("freshness_probe", selection=dg.AssetSelection.checks(key))
    probe = dg.Definitions(
        assets=defs.assets, asset_checks=defs.asset_checks, jobs=[job], resources=defs.resources
    )
    result = probe.resolve_job_def("freshness_probe").execute_in_process(instance=instance)
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def _materialize(instance: dg.DagsterInstance, partition: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(SESSIONS, partition=partition))


def test_raw_has_a_freshness_policy() -> None:
    raw = defs.resolve_asset_graph().get(dg.AssetKey(["raw", "tracking_events"]))
    policy = raw.freshness_policy
    assert policy is not None and policy.fail_window.to_timedelta() == timedelta(hours=1)


def test_each_mart_is_checked_for_its_latest_day(tmp_path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        missing = _evaluate(instance)
        assert not missing.passed  # nothing built
        tick = datetime.fromtimestamp(
            float(missing.metadata["dagster/latest_cron_tick_timestamp"].value), UTC
        )
        # the day partition open at the last deadline (today's exists: end_offset=1) is due
        due = tick.date().isoformat()
        # an older day does not make the due one fresh
        _materialize(instance, (tick.date() - timedelta(days=1)).isoformat())
        assert not _evaluate(instance).passed
        _materialize(instance, due)
        assert _evaluate(instance).passed
