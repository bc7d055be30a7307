"""Definitions load; the exact asset and check keys; every dbt source has an upstream dlt asset."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from orchestration.assets.keys import INGESTION_POOL
from orchestration.definitions import defs
from orchestration.project import dbt_project
from pipelines.names import MARTS

RAW = {dg.AssetKey(["raw", "tracking_events"]), dg.AssetKey(["raw", "tracking_events_rejected"])}
# written by `trackflow forget` (the forget job), read by staging: an external asset
SUPPRESSIONS = dg.AssetKey(["raw", "privacy_suppressions"])
REPORT = {dg.AssetKey(["reporting", "report"])}
kafka_ingestion = defs.get_assets_def(dg.AssetKey(["raw", "tracking_events"]))
CUSTOM_CHECKS = {
    ("raw/tracking_events", "no_retention_gaps"),
    ("raw/tracking_events", "consumer_lag"),
    ("raw/tracking_events", "raw_freshness"),
    ("raw/tracking_events", "duplicate_rate"),
    ("raw/tracking_events", "tracking_plan_violation_rate"),
    ("raw/tracking_events_rejected", "latest_load_rejected_rate"),
    ("analytics/fct_sessions", "session_sanity"),
}
FUNNEL_CHECK = ("analytics/agg_funnel_daily", "funnel_monotonicity")
# per day partition, one on each mart
FRESHNESS_CHECKS = {(f"analytics/{mart}", "freshness_check") for mart in MARTS}


def _manifest() -> dict:
    return json.loads(dbt_project().manifest_path.read_text())


def _model_key(node: dict) -> dg.AssetKey:
    return dg.AssetKey([node["schema"], node["name"]])


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {
        "ingest_job",
        "marts_job",
        "everything_job",
        "microbatch_job",
        "forget_job",
        "replay_job",
    }
    assert {s.name for s in repo.schedule_defs} == {"ingest_schedule", "marts_schedule"}
    assert {s.name for s in repo.sensor_defs} == {
        "late_data_sensor",
        "microbatch_sensor",
        "alert_on_run_failure",
        "alert_on_failed_checks",
        "marts_freshness_sensor",
    }


def test_exact_asset_keys() -> None:
    models = [n for n in _manifest()["nodes"].values() if n["resource_type"] == "model"]
    expected = RAW | REPORT | {SUPPRESSIONS} | {_model_key(n) for n in models}
    assert set(defs.resolve_asset_graph().get_all_asset_keys()) == expected
    # the marts of the dbt engineer's list, once they exist, are among them
    assert {"fct_sessions", "dim_users"} <= {n["name"] for n in models}


def test_exact_check_keys() -> None:
    manifest = _manifest()
    models = {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    dbt_checks = {
        (_model_key(models[t["attached_node"]]).to_user_string(), t["name"])
        for t in manifest["nodes"].values()
        if t["resource_type"] == "test" and t.get("attached_node") in models
    }
    # source tests are checks on the dlt asset that loads the source
    sources = manifest["sources"]
    for t in manifest["nodes"].values():
        parents = t["depends_on"]["nodes"] if t["resource_type"] == "test" else []
        if len(parents) == 1 and parents[0] in sources:
            source = sources[parents[0]]
            dbt_checks.add((f"{source['schema']}/{source['name']}", t["name"]))
    expected = CUSTOM_CHECKS | FRESHNESS_CHECKS | dbt_checks
    if any(n["name"] == "agg_funnel_daily" for n in models.values()):
        expected.add(FUNNEL_CHECK)
    actual = {
        (k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys
    }
    assert actual == expected


def test_every_dbt_source_is_an_asset_of_the_graph() -> None:
    graph = defs.resolve_asset_graph()
    dlt_keys = set(kafka_ingestion.keys)
    assert dlt_keys == RAW
    manifest = _manifest()
    for source in manifest["sources"].values():
        key = dg.AssetKey([source["schema"], source["name"]])
        if key == SUPPRESSIONS:  # the operator's table: external, written by the forget job
            assert not graph.get(key).is_materializable
            continue
        assert key in dlt_keys, f"dbt source {source['unique_id']} has no dlt asset"
        assert graph.get(key).is_materializable
    # and the lineage is connected: the staging model reads the dlt asset
    stg = dg.AssetKey(["staging", "stg_raw__tracking_events"])
    assert dg.AssetKey(["raw", "tracking_events"]) in graph.get(stg).parent_keys
    # one connected graph: every mart reaches the raw events upstream
    for key in graph.get_all_asset_keys():
        if key.path[0] == "analytics":
            assert _reaches(graph, key), f"{key.to_user_string()} is cut off from raw"


def _reaches(graph, key: dg.AssetKey) -> bool:
    seen, todo = set(), [key]
    while todo:
        k = todo.pop()
        if k == dg.AssetKey(["raw", "tracking_events"]):
            return True
        if k not in seen:
            seen.add(k)
            todo += list(graph.get(k).parent_keys)
    return False


def test_partitions_pools_and_policies() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.path[0] == "analytics":
            assert node.partitions_def == defs.resolve_job_def("marts_job").partitions_def
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
        else:
            assert node.partitions_def is None
    assert kafka_ingestion.op.pool == INGESTION_POOL
    # transient failures retried with backoff (the permanent ones opt out where they are raised)
    policy = kafka_ingestion.op.retry_policy
    assert policy is not None and policy.max_retries >= 1
    assert policy.backoff == dg.Backoff.EXPONENTIAL
    assert defs.resolve_job_def("ingest_job").tags["trackflow/role"] == "ingestion"


def test_ingest_job_runs_its_own_checks_but_starts_no_dbt() -> None:
    """dbt's source tests would start dbt in every micro-batch; the job leaves them out."""
    ops = {node.name for node in defs.resolve_job_def("ingest_job").graph.node_defs}
    assert ops == {
        "kafka_ingestion",  # also reports consumer_lag and no_retention_gaps itself
        "raw__tracking_events_raw_freshness",
        "raw__tracking_events_duplicate_rate",
        "raw__tracking_events_tracking_plan_violation_rate",
        "raw__tracking_events_rejected_latest_load_rejected_rate",
    }
    everything = {node.name for node in defs.resolve_job_def("everything_job").graph.node_defs}
    assert "dbt_staging" in everything  # where the source tests still run


def test_microbatch_job_is_ingestion_then_one_days_staging_and_marts() -> None:
    """One run: the ingestion with its checks, staging, the marts and their checks; not the
    report, not the marts' freshness checks (their sensor evaluates them)."""
    job = defs.resolve_job_def("microbatch_job")
    ops = {node.name for node in job.graph.node_defs}
    ingest = {node.name for node in defs.resolve_job_def("ingest_job").graph.node_defs}
    assert ingest | {"dbt_staging", "dbt_marts"} <= ops
    assert not any(op.startswith(("freshness_check", "report")) for op in ops), ops
    assert job.partitions_def == defs.resolve_job_def("marts_job").partitions_def
    assert job.tags["trackflow/role"] == "ingestion"  # queued with the other ingestions


def test_every_asset_has_owners_a_layer_kinds_and_code() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert "team:data-engineering" in node.owners, key
        assert node.tags["trackflow/layer"] == node.group_name, key
        assert node.kinds, key
        if node.is_materializable:  # the external suppression list has no code of its own
            references = node.metadata["dagster/code_references"].code_references
            assert references and all(Path(r.file_path).exists() for r in references), key


def test_marts_are_contracts_the_report_an_exposure_and_steps_private() -> None:
    manifest = _manifest()
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    marts = {
        "fct_sessions",
        "dim_users",
        "fct_funnel_progress",
        "agg_funnel_daily",
        "agg_retention",
        "agg_conversion_drivers",
    }
    for name in marts:
        model = models[name]
        assert model["config"]["contract"]["enforced"] and model["access"] == "public", name
        assert all(column.get("data_type") for column in model["columns"].values()), name
    for name in ("int_identities__mapped", "int_events__stitched"):
        assert models[name]["access"] == "private"
    [report] = manifest["exposures"].values()
    assert {d.split(".")[-1] for d in report["depends_on"]["nodes"]} == marts
