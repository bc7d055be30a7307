"""Throughput of `trackflow collect`: batches of 100 events posted over loopback, acks=all.

Starts a private embedded broker and the collector (uvicorn, in a subprocess, as the cli runs it),
posts pre-built batches from concurrent keep-alive connections for a bounded time, and prints
events/s. The collector's own /metrics confirm how many events Kafka acknowledged.

Each value of --workers (COLLECTOR_WORKERS: processes accepting on one port, each with its own
producer) is measured in turn against the same broker; ratios are against the first. By default
that is 1 and the collector's own default (one per CPU, at most 8), the figure a plain
`trackflow collect` gives. CPU time is counted over each process tree (a multi-worker collector's
work is in its children).

The client's own startup objects are frozen out of its garbage collections before it measures:
a full collection of them stalled it for 30-50 ms, counted as the collector's latency.

    .venv/bin/python benchmarks/collector_throughput.py [--seconds 20] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from pipelines.broker import EmbeddedBroker, free_port
from pipelines.config import default_collector_workers

WRITE_KEY = "bench-write-key"
TOPIC = "bench.tracking.events"
RESULTS = Path(__file__).parent / "results"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_batch(size: int, n: int) -> bytes:
    """One request body of `size` events shaped like a browser's (about 600 bytes each)."""
    anon = [str(uuid.uuid4()) for _ in range(20)]
    batch = [
        {
            "type": "track",
            "event": "button_click",
            "anonymousId": anon[i % len(anon)],
            "messageId": f"bench-{n}-{i}-{uuid.uuid4()}",
            "timestamp": "2026-11-26T10:00:00.000Z",
            "properties": {"buttonId": "myButton", "position": i, "variant": "b"},
            "context": {
                "library": {"name": "trackflow.js", "version": "1.0.0"},
                "page": {
                    "path": "/pricing",
                    "referrer": "https://www.example.com/",
                    "search": "?utm_source=newsletter",
                    "title": "Pricing",
                    "url": "https://shop.example/pricing?utm_source=newsletter",
                },
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36",
                "locale": "en-GB",
                "campaign": {"source": "newsletter"},
            },
        }
        for i in range(size)
    ]
    return json.dumps({"batch": batch, "sentAt": "2026-11-26T10:00:00.100Z"}).encode()


async def post_for(
    url: str, bodies: list[bytes], seconds: float, concurrency: int
) -> tuple[int, int, list[float]]:
    auth = httpx.BasicAuth(WRITE_KEY, "")
    ok = failed = 0
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, auth=auth, limits=limits, timeout=30) as client:

        async def worker(w: int) -> None:
            nonlocal ok, failed
            i = w
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                r = await client.post(
                    "/v1/batch",
                    content=bodies[i % len(bodies)],
                    headers={"Content-Type": "application/json"},
                )
                latencies.append(time.perf_counter() - started)
                if r.status_code == 200:
                    ok += 1
                else:
                    failed += 1
                i += concurrency

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return ok, failed, latencies


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants (the collector's workers are children)."""
    total = cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += tree_cpu_seconds(int(child))
    return total


def wait_healthy(url: str, collector: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or collector.poll() is not None:
            sys.exit("collector did not become healthy")
        time.sleep(0.2)


def measure(broker: EmbeddedBroker, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Post for --seconds against a collector of `workers` processes; its figures."""
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TRACKING_TOPIC": TOPIC,
        "COLLECTOR_WRITE_KEYS": f"bench:{WRITE_KEY}",
        "COLLECTOR_DEMO_PAGE": "false",
        "COLLECTOR_WORKERS": str(workers),
    }
    collector = subprocess.Popen(
        [sys.executable, "-m", "pipelines.collector", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, collector)
        bodies = [make_batch(args.batch, n) for n in range(64)]
        asyncio.run(post_for(url, bodies, args.warmup, args.concurrency))
        gc.collect()
        gc.freeze()
        assert broker.proc is not None
        # the client's own process only: the broker and the collector are its children
        cpu_of = {
            "collector": lambda: tree_cpu_seconds(collector.pid),
            "broker": lambda: tree_cpu_seconds(broker.proc.pid),
            "client": lambda: cpu_seconds(os.getpid()),
        }
        cpu_before = {name: read() for name, read in cpu_of.items()}
        ok, failed, latencies = asyncio.run(post_for(url, bodies, args.seconds, args.concurrency))
        cpu = {name: read() - cpu_before[name] for name, read in cpu_of.items()}
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        collector.terminate()
        collector.wait(30)
    accepted = re.search(r'events_total\{outcome="accepted",source="bench"\} (\d+)', metrics)
    events = ok * args.batch
    latencies.sort()
    return {
        "workers": workers,
        "requests_ok": ok,
        "requests_refused": failed,
        "events_per_s": events / args.seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "acknowledged_incl_warmup": int(accepted[1]) if accepted else None,
        "cpu_s": cpu,
        "collector_cpu_us_per_event": cpu["collector"] / max(events, 1) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to post")
    parser.add_argument("--concurrency", type=int, default=8, help="connections in parallel")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds posted before measuring")
    default = default_collector_workers()
    parser.add_argument(
        "--workers",
        default=",".join(dict.fromkeys(("1", str(default)))),
        help="comma separated COLLECTOR_WORKERS values, each measured in turn (the first is "
        f"the baseline of the ratios); default 1 and the collector's default here, {default}",
    )
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]

    with EmbeddedBroker(log_path=Path(f"/tmp/trackflow-bench-broker-{os.getpid()}.log")) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic(TOPIC, 4, 1)])
        admin.close()
        runs = [measure(broker, workers, args) for workers in counts]

    print(f"cpus: {os.cpu_count()}, broker: embedded tansu on 127.0.0.1, acks=all, lz4")
    print(f"batches of {args.batch}, {args.concurrency} connections, {args.seconds:.0f}s each")
    base = runs[0]["events_per_s"]
    print("workers  events/s  x first   p50 ms   p99 ms  refused  collector cpu/event  cpu s")
    for r in runs:
        cpu = ", ".join(f"{name} {used:.1f}" for name, used in r["cpu_s"].items())
        print(
            f"{r['workers']:>7}  {r['events_per_s']:>8,.0f}  {r['events_per_s'] / base:>7.2f}  "
            f"{r['p50_ms']:>7.1f}  {r['p99_ms']:>7.1f}  {r['requests_refused']:>7}  "
            f"{r['collector_cpu_us_per_event']:>16.0f} us  {cpu}"
        )
    print(
        "acknowledged by Kafka (collector metrics, incl. warm-up): "
        + ", ".join(str(r["acknowledged_incl_warmup"]) for r in runs)
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "collector.json"
    out.write_text(json.dumps({"batch": args.batch, "runs": runs}, indent=2))
    print(f"-> {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
