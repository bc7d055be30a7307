"""COLLECTOR_WORKERS: several collector processes accepting on one port, to use more than one core.

The parent binds the port (resolving port 0, failing early when it is taken, and holding it while
workers come and go) without listening on it, and starts the workers, each a fresh interpreter
(spawn) listening on a socket of its own bound to the same port with SO_REUSEPORT: the kernel
spreads new connections over the workers' sockets by a hash of their addresses. On one shared
socket, whichever worker woke first accepted a whole burst of connections: the benchmark's 8
connections, opened at once, all went to one of two workers, the other idle. The price: the
connections still waiting in a dead worker's accept queue are reset (their clients retry). Workers
share nothing else: each has its own producer, its own connection cap (COLLECTOR_MAX_CONNECTIONS
each) and its own rate-limit buckets, so a write key may send COLLECTOR_RATE_LIMIT events per second
to each worker.

Metrics use prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR names the directory,
else a temporary one is made and removed at the end. The workers inherit the variable, so their
prometheus_client starts in that mode, and a scrape reaching any worker sums them all. What an
earlier run left there is removed first, as prometheus_client requires.

A worker that dies is replaced (its counts stay in the sums); one that fails while starting stops
the lot, as its replacement would fail the same way. On SIGTERM or SIGINT every worker is sent
SIGTERM (it drains its requests and flushes its producer, as a single collector does) and waited
for.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from uvicorn.config import STARTUP_FAILURE

from pipelines.config import CollectorSettings

log = logging.getLogger(__name__)

# what a worker runs: the settings and the address it binds (with `bind`) and serves
Worker = Callable[[CollectorSettings, str, int], None]

# on top of the shutdown timeout, before a worker that has not stopped is killed
EXIT_GRACE_S = 5.0


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to the port, which other sockets of this user may bind too (SO_REUSEPORT):
    the kernel balances connections over those that listen."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _metrics_dir(settings: CollectorSettings) -> tuple[CollectorSettings, Path | None]:
    """The settings with a metrics directory, emptied, and the directory to remove at the end."""
    if settings.metrics_dir is None:
        made = Path(tempfile.mkdtemp(prefix="trackflow-collector-metrics-"))
        return settings.model_copy(update={"metrics_dir": made}), made
    for stale in settings.metrics_dir.glob("*.db"):
        stale.unlink()
    return settings, None


def supervise(settings: CollectorSettings, host: str, port: int, worker: Worker) -> None:
    """Run settings.workers processes of `worker` on one port until SIGTERM/SIGINT."""
    # never listening: it takes no connections, only holds the port for the workers
    sock = bind(host, port)
    port = sock.getsockname()[1]
    settings, made = _metrics_dir(settings)
    assert settings.metrics_dir is not None
    # inherited by the workers: prometheus_client reads it when they import it
    env_before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.metrics_dir)
    spawn = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def start() -> BaseProcess:
        process = spawn.Process(
            target=worker, args=(settings, host, port), name="trackflow-collector"
        )
        process.start()
        return process

    failed = False
    workers = [start() for _ in range(settings.workers)]
    log.info(
        "collector on http://%s:%d: %d workers %s, metrics in %s",
        host,
        port,
        len(workers),
        [p.pid for p in workers],
        settings.metrics_dir,
    )
    try:
        while not stop.wait(0.5):
            for i, process in enumerate(workers):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("a collector worker failed to start; stopping")
                    failed = True
                    stop.set()
                    break
                log.warning(
                    "collector worker %s exited (%s); starting another",
                    process.pid,
                    process.exitcode,
                )
                workers[i] = start()
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: a graceful shutdown
        for process in workers:
            process.join(settings.shutdown_timeout_s + EXIT_GRACE_S)
            if process.is_alive():
                log.warning("collector worker %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        if env_before is None:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = env_before
    if failed:
        raise SystemExit(STARTUP_FAILURE)
