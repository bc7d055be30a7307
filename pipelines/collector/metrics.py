"""The collector's Prometheus metrics, kept by prometheus_client.

One process: a registry per app (tests run several apps in one process), holding the collector's
series and the standard process, platform and GC collectors. Several processes serving one port
(COLLECTOR_WORKERS, see workers.py) share PROMETHEUS_MULTIPROC_DIR: prometheus_client's multiprocess
mode, where each process writes its values to files there and whichever process a scrape reaches
sums them all. That mode is chosen by prometheus_client when it is imported, from the environment,
so the variable must be set before the process starts; process metrics are then given per worker
(process_metrics.py) and the GC collector, which can only see the answering process, is left out.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import values
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from pipelines.collector.process_metrics import WorkerProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def in_multiprocess_mode() -> bool:
    """Whether prometheus_client keeps values in files (PROMETHEUS_MULTIPROC_DIR was set when it
    was imported) rather than in this process's memory."""
    return values.ValueClass is not values.MutexValue


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        own: CollectorRegistry | None = self.registry
        if multiprocess_dir is not None:
            if not in_multiprocess_mode():
                raise RuntimeError(
                    "PROMETHEUS_MULTIPROC_DIR must be in the environment before the collector "
                    "starts: prometheus_client chooses where values live when it is imported"
                )
            # values go to this process's files; every process's files are read at each scrape
            own = None
            MultiProcessCollector(self.registry, path=str(multiprocess_dir))
            self.registry.register(WorkerProcessCollector(multiprocess_dir))
            PlatformCollector(registry=self.registry)
        else:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

        self._requests = Counter(
            "trackflow_collector_requests",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"],
            registry=own,
        )
        self._events = Counter(
            "trackflow_collector_events",
            "Events by outcome: accepted (acknowledged by Kafka), rejected (invalid, too large or"
            " unauthorised), failed (broker unavailable).",
            ["outcome", "source"],
            registry=own,
        )
        self._rate_limited = Counter(
            "trackflow_collector_rate_limited_events",
            "Events refused 429 because their write key was over COLLECTOR_RATE_LIMIT.",
            ["source"],
            registry=own,
        )
        self._closed = Counter(
            "trackflow_collector_connections_closed",
            "Connections the collector closed by its deadlines (idle, header_timeout, drain), for"
            " oversized headers (header_too_large), or refused over the cap (over_limit).",
            ["reason"],
            registry=own,
        )
        self._latency = Histogram(
            "trackflow_collector_produce_latency_seconds",
            "Time from a request's first send to the broker's last acknowledgement.",
            buckets=LATENCY_BUCKETS,
            registry=own,
        )

    def request(self, endpoint: str, status: int) -> None:
        self._requests.labels(endpoint=endpoint, status=str(status)).inc()

    def event_outcome(self, outcome: str, source: str, n: int) -> None:
        """outcome: accepted (in kafka), rejected (invalid, 4xx), failed (broker, 503)."""
        if n:
            self._events.labels(outcome=outcome, source=source).inc(n)

    def rate_limited(self, source: str, n: int) -> None:
        if n:
            self._rate_limited.labels(source=source).inc(n)

    def connection_closed(self, reason: str) -> None:
        """reason: idle, header_timeout, header_too_large, drain (a body sent after its answer),
        over_limit."""
        self._closed.labels(reason=reason).inc()

    def produce_latency(self, seconds: float) -> None:
        self._latency.observe(seconds)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asks for (Accept), and its content type:
        Prometheus text 0.0.4 by default, OpenMetrics when asked."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
