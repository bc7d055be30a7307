"""Prometheus text exposition for the few numbers an operator of the collector watches.

Small enough to write out rather than add a client library: counters by label set and one
latency histogram, all touched only from the event loop thread.
"""

from __future__ import annotations

import bisect
from collections import Counter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.events: Counter[tuple[str, str]] = Counter()
        self.closed: Counter[str] = Counter()
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0

    def request(self, endpoint: str, status: int) -> None:
        self.requests[(endpoint, status)] += 1

    def event_outcome(self, outcome: str, source: str, n: int) -> None:
        """outcome: accepted (in kafka), rejected (invalid, 4xx), failed (broker, 503)."""
        if n:
            self.events[(outcome, source)] += n

    def connection_closed(self, reason: str) -> None:
        """reason: idle, header_timeout, header_too_large, drain (a body sent after its answer),
        over_limit."""
        self.closed[reason] += 1

    def produce_latency(self, seconds: float) -> None:
        self._bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds
        self._latency_count += 1

    def render(self) -> str:
        lines = [
            "# HELP trackflow_collector_requests_total HTTP requests by endpoint and status.",
            "# TYPE trackflow_collector_requests_total counter",
        ]
        for (endpoint, status), n in sorted(self.requests.items()):
            labels = _labels(endpoint=endpoint, status=str(status))
            lines.append(f"trackflow_collector_requests_total{labels} {n}")
        lines += [
            "# HELP trackflow_collector_events_total Events by outcome: accepted (acknowledged by"
            " Kafka), rejected (invalid, too large or unauthorised), failed (broker unavailable).",
            "# TYPE trackflow_collector_events_total counter",
        ]
        for (outcome, source), n in sorted(self.events.items()):
            labels = _labels(outcome=outcome, source=source)
            lines.append(f"trackflow_collector_events_total{labels} {n}")
        lines += [
            "# HELP trackflow_collector_connections_closed_total Connections the collector closed"
            " by its deadlines (idle, header_timeout, drain), for oversized headers"
            " (header_too_large), or refused over the cap (over_limit).",
            "# TYPE trackflow_collector_connections_closed_total counter",
        ]
        for reason, n in sorted(self.closed.items()):
            lines.append(
                f"trackflow_collector_connections_closed_total{_labels(reason=reason)} {n}"
            )
        lines += [
            "# HELP trackflow_collector_produce_latency_seconds Time from a request's first send"
            " to the broker's last acknowledgement.",
            "# TYPE trackflow_collector_produce_latency_seconds histogram",
        ]
        cumulative = 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), self._bucket_counts, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(
                f'trackflow_collector_produce_latency_seconds_bucket{{le="{le}"}} {cumulative}'
            )
        lines.append(f"trackflow_collector_produce_latency_seconds_sum {self._latency_sum}")
        lines.append(f"trackflow_collector_produce_latency_seconds_count {self._latency_count}")
        return "\n".join(lines) + "\n"
