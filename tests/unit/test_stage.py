"""The ingestion stage thread: order, errors from either side, and an early stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pipelines.kafka_source.stage import staged


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_in_order_computed_off_the_callers_thread(workers: int) -> None:
    caller = threading.get_ident()
    seen_threads: set[int] = set()

    def square(x: int) -> int:
        seen_threads.add(threading.get_ident())
        time.sleep(0.002 * (x % 3 == 0))  # with two workers, later items often finish first
        return x * x

    assert list(staged(iter(range(50)), square, workers=workers)) == [x * x for x in range(50)]
    assert len(seen_threads) == workers and caller not in seen_threads


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_in_the_work_reaches_the_caller_after_the_results_before_it(workers: int) -> None:
    def work(x: int) -> int:
        if x == 3:
            raise ValueError("bad batch 3")
        return x

    got: list[int] = []
    with pytest.raises(ValueError, match="bad batch 3"):
        for x in staged(iter(range(10)), work, workers=workers):
            got.append(x)
    assert got == [0, 1, 2]


def test_an_error_in_the_items_reaches_the_caller() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError, match="broker gone"):
        list(staged(items(), lambda x: x))


def test_closing_early_closes_the_items_on_the_thread_that_iterates_them() -> None:
    closed_on: list[int] = []
    produced: list[int] = []

    def items() -> Iterator[int]:
        try:
            for i in range(1_000):
                produced.append(i)
                yield i
        finally:
            closed_on.append(threading.get_ident())

    results = staged(items(), lambda x: x, depth=2)
    assert [next(results), next(results)] == [0, 1]
    results.close()
    assert len(closed_on) == 1 and closed_on[0] != threading.get_ident()
    # bounded: the stage ran at most a few items ahead of what was taken
    assert len(produced) <= 2 + 2 + 2
