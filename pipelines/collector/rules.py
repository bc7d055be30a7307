"""The warehouse's own rule at the door: `pipelines.events.validate` over a request's events,
as stamped and serialised, exactly the messages ingestion will read.

What ingestion would put in the dead letters (nesting past 32 levels, a NUL character, an id over
256 characters, a timestamp outside 2000..2099, more than 1000 properties...) is refused here
instead, whole and with the same error code, while the client can still fix and resend it. The
collector and ingestion share one rule rather than keeping two that drift apart. Only the events
`screen.py` cannot vouch for are sent here.

A run of the validator costs about 12 ms however few events it holds (DuckDB plans and starts a
query), so requests do not each get one: those that arrive while a run is under way share the
next. Runs go one at a time on a thread of their own; DuckDB frees the GIL while it works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from pipelines.collector.producer import Record
from pipelines.collector.validation import Problem
from pipelines.events import messages_table, validate

# the field a code is about, when there is just one
FIELDS = {
    "bad_type": "type",
    "missing_message_id": "messageId",
    "bad_message_id": "messageId",
    "missing_event": "event",
    "too_many_properties": "properties",
}

Job = tuple[Sequence[Record], "asyncio.Future[list[Problem]]"]


def problems_of(requests: Sequence[Sequence[Record]], max_bytes: int) -> list[list[Problem]]:
    """One validator run over the records of several requests: each request's problems."""
    rows: list[tuple[str, int, int, int, bytes | None, bytes | None]] = []
    owners: list[tuple[int, int]] = []
    for request, records in enumerate(requests):
        for index, (key, value) in enumerate(records):
            # the offset only tells the rows apart
            rows.append(("collector", 0, len(rows), 0, key, value))
            owners.append((request, index))
    _accepted, rejected = validate(messages_table(rows), max_bytes)
    found: list[list[Problem]] = [[] for _ in requests]
    for offset, code, message in zip(
        rejected.column("_kafka_offset").to_pylist(),
        rejected.column("error_code").to_pylist(),
        rejected.column("error_message").to_pylist(),
        strict=True,
    ):
        request, index = owners[offset]
        found[request].append(Problem(index, FIELDS.get(code, ""), message, code))
    for problems in found:
        problems.sort(key=lambda p: p.index or 0)
    return found


class WarehouseRules:
    """Checks requests' records with the warehouse's validator, many requests per run."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="collector-rules")
        self._waiting: list[Job] = []
        self._running = False

    async def check(self, records: Sequence[Record]) -> list[Problem]:
        """The problems the warehouse would find in these records; empty: it takes them all."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Problem]] = loop.create_future()
        self._waiting.append((records, answer))
        if not self._running:
            self._start(loop)
        return await answer

    # both run on the event loop's thread, so the waiting list needs no lock
    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs, self._waiting = self._waiting, []
        self._running = True
        run = loop.run_in_executor(
            self._executor, problems_of, [records for records, _ in jobs], self.max_bytes
        )
        run.add_done_callback(partial(self._finish, loop, jobs))

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        jobs: list[Job],
        run: asyncio.Future[list[list[Problem]]],
    ) -> None:
        self._running = False
        error = run.exception() if not run.cancelled() else asyncio.CancelledError()
        for i, (_records, answer) in enumerate(jobs):
            if answer.done():  # its request was cancelled meanwhile
                continue
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(run.result()[i])
        if self._waiting:
            self._start(loop)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
