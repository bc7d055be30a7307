"""The standard process metrics (process_cpu_seconds_total, process_resident_memory_bytes, ...) of
every live collector process, labelled by pid, for prometheus_client's multiprocess mode.

In that mode a scrape reaches whichever worker accepts it. prometheus_client's ProcessCollector
would describe that one worker only, a different one from scrape to scrape: a CPU counter that
jumps between processes reads as resets. So the answering worker reads /proc for each process that
writes to the metrics directory (its files are named after its pid) and is still running. A dead
worker's counters stay in the sums (the files remain, so totals never go back); its process
metrics, which only mean something while it runs, go.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector


def _pid_of(path: Path) -> int | None:
    # prometheus_client names them <type>_<pid>.db (gauges <type>_<mode>_<pid>.db)
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


class WorkerProcessCollector(Collector):
    def __init__(self, directory: Path, proc: Path = Path("/proc")) -> None:
        self.directory = directory
        self.proc = proc

    def live_pids(self) -> list[int]:
        pids = {pid for f in self.directory.glob("*.db") if (pid := _pid_of(f)) is not None}
        return sorted(pid for pid in pids if (self.proc / str(pid)).is_dir())

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.live_pids():
            reader = ProcessCollector(pid=partial(int, pid), proc=str(self.proc), registry=None)
            # a process that ended between the listing and the read yields nothing
            for family in reader.collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        return list(families.values())
