"""The tracking plan: declared JSON Schemas per event, checked at the collector and at ingestion.

`plan.py` reads and compiles the plan file, `check.py` checks batches of accepted events,
`describe.py` words a violation, `infer.py` drafts a plan from the events already loaded.
"""

from pipelines.tracking_plan.check import (
    PLAN_VIOLATION,
    VIOLATIONS_SCHEMA,
    PlanOutcome,
    check_batch,
)
from pipelines.tracking_plan.plan import PlanError, TrackingPlan, load_plan, parse_plan

__all__ = [
    "PLAN_VIOLATION",
    "VIOLATIONS_SCHEMA",
    "PlanError",
    "PlanOutcome",
    "TrackingPlan",
    "check_batch",
    "load_plan",
    "parse_plan",
]
