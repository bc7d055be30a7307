"""One pipeline stage on threads of its own: `work` applied to each item, results in order.

Ingestion runs three stages at once: the poller thread decodes Kafka records (Python), stage
threads validate and minimise the micro-batches after it (DuckDB, which releases the GIL), and
the caller's thread writes the ones before to dlt's parquet files. Queues are bounded, so memory
holds a few batches whatever the speed of each stage.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

DONE = object()  # what a producer thread puts on its queue after the last item
_PUT_WAIT_S = 0.1


def received(ready: queue.Queue[Any]) -> Iterator[Any]:
    """The items a producer thread puts on `ready`, until DONE; an exception it puts is raised
    here, in the consuming thread."""
    while True:
        item = ready.get()
        if item is DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def staged(
    items: Iterator[T], work: Callable[[T], R], *, depth: int = 2, workers: int = 1
) -> Generator[R, None, None]:
    """Yield `work(item)` for each item, in order, computed on `workers` threads up to `depth`
    results ahead. An exception in `items` or `work` is raised here. Closing this generator
    stops the stage and closes `items` on the stage thread (the thread that iterates them)."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(value: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=_PUT_WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        pending: deque[Future[R]] = deque()
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="ingest-work") as pool:
                for item in items:
                    pending.append(pool.submit(work, item))
                    if len(pending) >= workers and not hand_over(pending.popleft().result()):
                        break
                while pending and not stop.is_set():
                    hand_over(pending.popleft().result())
            hand_over(DONE)
        except BaseException as exc:  # handed to the consuming thread, which re-raises it
            for future in pending:
                future.cancel()
            hand_over(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="ingest-stage", daemon=True)
    thread.start()
    try:
        yield from received(ready)
    finally:
        stop.set()
        thread.join()
