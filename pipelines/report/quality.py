"""The data-quality panel: last ingestion, lag, rejected messages by error code, check results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.names import RAW_DLT_LOADS, RAW_EVENTS, RAW_GAPS, RAW_REJECTED
from pipelines.report.warehouse import Reader, plain


def empty_quality() -> dict[str, Any]:
    return {
        "last_load_at": None,
        "loads": 0,
        "newest_received_at": None,
        "data_age_seconds": None,
        "load_delay_p50_seconds": None,
        "load_delay_p95_seconds": None,
        "accepted": 0,
        "rejected": 0,
        "all_time_rejected_rate": None,
        "rejected_by_code": [],
        "open_gaps": [],
        "checks": [],
    }


def quality(wh: Reader, now: datetime) -> dict[str, Any]:
    out = empty_quality()
    if wh.has(RAW_DLT_LOADS):
        out.update(
            wh.one(
                "select max(inserted_at) as last_load_at, count(*) as loads "
                f"from {RAW_DLT_LOADS} where status = 0"
            )
        )
    if wh.has(RAW_EVENTS):
        row = wh.one(
            f"select count(*) as accepted, max(received_at) as newest_received_at from {RAW_EVENTS}"
        )
        out.update(row)
        newest = wh.sql.scalar(f"select max(received_at) from {RAW_EVENTS}")
        if newest is not None:
            out["data_age_seconds"] = (now - _utc(newest)).total_seconds()
        if wh.has(RAW_DLT_LOADS) and "_dlt_load_id" in wh.columns(RAW_EVENTS):
            # how long a message waited in Kafka before its load committed
            out.update(
                wh.one(
                    f"""
                    with delays as (
                        select epoch(l.inserted_at) - epoch(e._kafka_timestamp) as seconds
                        from {RAW_EVENTS} as e
                        join {RAW_DLT_LOADS} as l on l.load_id = e._dlt_load_id
                    )
                    select
                        quantile_cont(seconds, 0.5) as load_delay_p50_seconds,
                        quantile_cont(seconds, 0.95) as load_delay_p95_seconds
                    from delays
                    """
                )
            )
    if wh.has(RAW_REJECTED):
        by_code = wh.records(
            f"select error_code, count(*) as rejected from {RAW_REJECTED} "
            "group by error_code order by rejected desc, error_code"
        )
        rejected = sum(r["rejected"] for r in by_code)
        total = out["accepted"] + rejected
        for r in by_code:
            r["rate"] = r["rejected"] / total if total else None
        out["rejected"] = rejected
        out["all_time_rejected_rate"] = rejected / total if total else None
        out["rejected_by_code"] = by_code
    elif out["accepted"]:
        out["all_time_rejected_rate"] = 0.0
    if wh.has(RAW_GAPS):
        out["open_gaps"] = wh.records(
            "select detected_at, topic, partition, kind, expected_offset, log_start, detail "
            f"from {RAW_GAPS} where resolved_at is null order by detected_at"
        )
    return out


def warehouse_checks(wh: Reader, q: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks whose evidence is in the warehouse itself (Dagster's own come in as `checks`)."""
    checks = []
    if wh.has(RAW_GAPS):
        gaps = q["open_gaps"]
        checks.append(
            check(
                "warehouse",
                "no_open_ingestion_gaps",
                not gaps,
                actual=len(gaps),
                threshold=0,
                detail=(
                    f"{len(gaps)} unresolved gap(s) in {RAW_GAPS}; resume with "
                    "'trackflow ingest --resume-from earliest|TIME'"
                    if gaps
                    else "every partition was read without a gap"
                ),
            )
        )
    return checks


def dbt_checks(run_results: Path | None) -> list[dict[str, Any]]:
    """dbt tests (data and unit) from a run_results.json of `dbt build` / `dbt test`."""
    if run_results is None or not run_results.exists():
        return []
    try:
        results = json.loads(run_results.read_text())
    except (OSError, ValueError):
        return []
    ran_at = (results.get("metadata") or {}).get("generated_at")
    out = []
    for r in results.get("results") or []:
        uid = str(r.get("unique_id", ""))
        if not (uid.startswith("test.") or uid.startswith("unit_test.")):
            continue
        status = str(r.get("status", ""))
        out.append(
            check(
                "dbt",
                uid.split(".", 2)[-1],
                status == "pass",
                severity="warn" if status == "warn" else "error",
                actual=r.get("failures"),
                threshold=0,
                detail=status if status == "pass" else (r.get("message") or status),
                ran_at=ran_at,
            )
        )
    return out


def check(
    source: str,
    name: str,
    passed: bool,
    *,
    severity: str = "error",
    actual: Any = None,
    threshold: Any = None,
    detail: str | None = None,
    asset: str | None = None,
    ran_at: str | None = None,
) -> dict[str, Any]:
    return {
        "source": source,
        "name": name,
        "asset": asset,
        "passed": bool(passed),
        "severity": severity,
        "actual": plain(actual),
        "threshold": plain(threshold),
        "detail": detail,
        "ran_at": ran_at,
    }


def given_checks(checks: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Normalise checks handed in by the caller (Dagster): name and passed are required."""
    out = []
    for c in checks or []:
        if "name" not in c or "passed" not in c:
            raise ValueError(f"a check needs at least 'name' and 'passed': {c!r}")
        out.append(
            check(
                str(c.get("source", "dagster")),
                str(c["name"]),
                bool(c["passed"]),
                severity=str(c.get("severity", "error")).lower(),
                actual=c.get("actual"),
                threshold=c.get("threshold"),
                detail=c.get("detail") or c.get("description") or c.get("reason"),
                asset=c.get("asset"),
                ran_at=plain(c.get("ran_at")),
            )
        )
    return out


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
