"""The report's "Tracking plan" data: violations by event and rule, and the daily trend of the
share of events that break the plan (rates from pipelines/tracking_plan/rates.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

from pipelines.report.warehouse import Reader, plain
from pipelines.tracking_plan.rates import daily_rates, violations_by_rule

TREND_DAYS: Final = 30


def tracking_plan(wh: Reader) -> dict[str, Any] | None:
    """None when no plan ever checked this warehouse's events (no violations table)."""
    by_rule = [{k: plain(v) for k, v in r.items()} for r in violations_by_rule(wh.sql)]
    rates = daily_rates(wh.sql, TREND_DAYS)
    if not rates and not by_rule:
        return None
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rates:
        day = days[plain(r["day"])]
        day[0] += r["events"]
        day[1] += r["violating"]
    trend = [
        {"day": d, "events": n, "violating": bad, "rate": bad / n if n else 0.0}
        for d, (n, bad) in sorted(days.items())
    ]
    return {"by_rule": by_rule, "trend": trend}
