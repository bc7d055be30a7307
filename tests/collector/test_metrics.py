"""/metrics with prometheus_client: the standard process metrics beside the collector's series, the
content type of the format asked for, and COLLECTOR_WORKERS processes on one port whose counts
every scrape sums (prometheus_client's multiprocess mode), a killed worker's included."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from pipelines.broker import EmbeddedBroker, free_port
from pipelines.collector import CollectorSettings, SettingsError
from pipelines.collector.metrics import Metrics, in_multiprocess_mode
from pipelines.config import MAX_DEFAULT_COLLECTOR_WORKERS
from tests.collector.helpers import WEB_KEY, basic, drain, events, metric, samples

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
REQUESTS = "trackflow_collector_requests_total"


def test_metrics_hold_the_process_metrics_and_the_collector_series(
    client: httpx.Client,
) -> None:
    client.post("/v1/track", json={"event": "x", "anonymousId": "a"}, headers=basic(WEB_KEY))
    r = client.get("/metrics")
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = r.text
    for standard in ("process_cpu_seconds_total", "process_resident_memory_bytes"):
        assert metric(text, standard) > 0, standard
    assert metric(text, "process_open_fds") > 0
    assert samples(text, "python_info")
    assert samples(text, "python_gc_objects_collected_total")

    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["trackflow_collector_requests"] == "counter"
    assert types["trackflow_collector_events"] == "counter"
    assert types["trackflow_collector_rate_limited_events"] == "counter"
    assert types["trackflow_collector_connections_closed"] == "counter"
    assert types["trackflow_collector_produce_latency_seconds"] == "histogram"
    assert metric(text, REQUESTS, endpoint="/v1/track", status="200") == 1

    # a scraper asking for OpenMetrics gets it, under its own content type
    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert om.text.endswith("# EOF\n")
    assert 'trackflow_collector_requests_total{endpoint="/v1/track",status="200"} 1.0' in om.text


def test_multiprocess_settings() -> None:
    env = {"COLLECTOR_WRITE_KEYS": "k"}
    defaults = CollectorSettings.from_env(env)
    # one process per CPU the collector may run on, within the bound
    cpus = len(os.sched_getaffinity(0))
    assert defaults.workers == min(cpus, MAX_DEFAULT_COLLECTOR_WORKERS) >= 1
    assert defaults.metrics_dir is None
    # each process keeps its own rate-limit buckets: one process unless asked for more
    assert CollectorSettings.from_env({**env, "COLLECTOR_RATE_LIMIT": "50"}).workers == 1
    limited = {**env, "COLLECTOR_RATE_LIMIT": "50", "COLLECTOR_WORKERS": "3"}
    assert CollectorSettings.from_env(limited).workers == 3
    with pytest.raises(SettingsError, match="PROMETHEUS_MULTIPROC_DIR='/no/such/dir'"):
        CollectorSettings.from_env({**env, "PROMETHEUS_MULTIPROC_DIR": "/no/such/dir"})
    with pytest.raises(SettingsError, match="COLLECTOR_WORKERS"):
        CollectorSettings.from_env({**env, "COLLECTOR_WORKERS": "0"})


def test_workers_option_must_be_positive() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.collector", "--workers", "0"],
        env={**os.environ, "PYTHONPATH": str(REPO), "COLLECTOR_WRITE_KEYS": "k"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--workers must be at least 1" in proc.stderr


def test_a_metrics_directory_without_multiprocess_mode_is_refused(tmp_path: Path) -> None:
    # this test process imported prometheus_client without PROMETHEUS_MULTIPROC_DIR: its values
    # live in memory, where no other process could add them up
    assert not in_multiprocess_mode()
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR must be in the environment"):
        Metrics(tmp_path)


# -- several workers


def per_worker(directory: Path) -> dict[int, float]:
    """/v1/track answers 200 counted by each worker, from its own file."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)], accumulate=False):
            for s in family.samples:
                if s.name == REQUESTS and s.labels == {"endpoint": "/v1/track", "status": "200"}:
                    counts[int(path.stem.split("_")[-1])] = s.value
    return counts


def worker_pids(directory: Path) -> set[int]:
    """Workers that are running: each made a histogram file named after it when it started."""
    pids = {int(p.stem.split("_")[-1]) for p in directory.glob("histogram_*.db")}
    return {pid for pid in pids if Path(f"/proc/{pid}").is_dir()}


@pytest.fixture
def workers(broker: EmbeddedBroker, topic: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`python -m pipelines.collector --workers 2`; its url and metrics directory."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    # what an earlier run left (unreadable as metrics): removed when the collector starts
    (directory / "counter_999999.db").write_bytes(b"left over")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "COLLECTOR_WRITE_KEYS": f"web:{WEB_KEY}",
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TRACKING_TOPIC": topic,
        # the option wins over the variable
        "COLLECTOR_WORKERS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    log = tmp_path / "collector.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.collector", "--port", str(port), "--workers", "2"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield url, directory
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    assert rc == 0, log.read_text()[-3000:]


def send(url: str, n: int) -> None:
    """n single events at once, each on a connection of its own, so several workers take them."""

    def one(i: int) -> None:
        body = {"event": "multi", "anonymousId": f"a{i}"}
        assert httpx.post(f"{url}/v1/track", json=body, headers=basic(WEB_KEY)).status_code == 200

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))


def test_a_burst_of_connections_is_spread_over_the_workers(workers: tuple[str, Path]) -> None:
    # 16 keep-alive connections opened at once, as a load balancer's pool or the benchmark open
    # them; on one shared socket the first worker to wake accepted them all
    url, directory = workers

    async def burst() -> None:
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

            async def connection(i: int) -> None:
                for n in range(4):
                    body = {"event": "burst", "anonymousId": f"b{i}-{n}"}
                    r = await client.post("/v1/track", json=body, headers=basic(WEB_KEY))
                    assert r.status_code == 200

            await asyncio.gather(*(connection(i) for i in range(16)))

    asyncio.run(burst())
    counts = per_worker(directory)
    assert sum(counts.values()) == 64
    # by the kernel's hash of 16 connections, all on one of two workers has odds of 1 in 32768
    assert len(counts) == 2 and min(counts.values()) > 0, counts


def scrape(url: str) -> str:
    return httpx.get(f"{url}/metrics").text  # a new connection: any worker may answer


def test_workers_share_one_port_and_every_scrape_counts_them_all(
    workers: tuple[str, Path], broker: EmbeddedBroker, topic: str
) -> None:
    url, directory = workers
    sent = 0
    while len(per_worker(directory)) < 2:  # until both workers have served some
        assert sent < 800, f"one worker took all {sent} requests: {per_worker(directory)}"
        send(url, 8)
        sent += 8
    first = worker_pids(directory)
    assert len(first) == 2

    for _ in range(6):
        text = scrape(url)
        assert metric(text, REQUESTS, endpoint="/v1/track", status="200") == sent
        accepted = metric(
            text, "trackflow_collector_events_total", outcome="accepted", source="web"
        )
        assert accepted == sent
        assert metric(text, "trackflow_collector_produce_latency_seconds_count") == sent
        # the process metrics of each worker, by pid, not those of whichever answered
        started = samples(text, "process_start_time_seconds")
        assert {int(labels["pid"]) for labels, _ in started} == first
        assert len(samples(text, "process_cpu_seconds_total")) == 2

    # a worker dies: another takes its place, and its counts stay in the sums
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while len(worker_pids(directory) - {victim}) < 2:
        assert time.monotonic() < deadline, "the dead worker was not replaced"
        time.sleep(0.2)
    send(url, 8)
    sent += 8
    text = scrape(url)
    assert metric(text, REQUESTS, endpoint="/v1/track", status="200") == sent
    pids = {int(labels["pid"]) for labels, _ in samples(text, "process_start_time_seconds")}
    assert victim not in pids and len(pids) == 2

    stored = events(drain(broker.bootstrap, topic))
    assert len(stored) == sent
