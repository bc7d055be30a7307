"""COLLECTOR_RATE_LIMIT: accepted events per second per write key, a token bucket per key.

Each write key has a bucket holding at most one second's worth of events (`burst`, at least 1),
full at start and refilled continuously at `rate` per second. A request of n valid events takes n
tokens at once or none: it is accepted whole or refused whole (429), so nothing of a refused
request reaches Kafka and resending it creates no duplicate. Over any window of T seconds a key is
accepted at most `rate * T + burst` events (in requests no larger than the burst).

A request larger than the burst could never fit; rather than refuse it for ever, it is taken when
the bucket is full and leaves the bucket in debt, so the key waits for it afterwards and the rate
over time still holds (the bound is then `rate * T + the largest request`).

Buckets live in one process and are touched only from its event loop (no lock): several collector
processes each allow the full rate. Only configured write keys get a bucket, so memory is bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, n: int, now: float) -> float:
        """Take n tokens and return 0.0, or take none and return the seconds until they fit."""
        self._refill(now)
        if self.tokens >= n or self.tokens >= self.burst:
            self.tokens -= n
            return 0.0
        # a request over the burst waits for a full bucket (then goes into debt)
        return (min(n, self.burst) - self.tokens) / self.rate

    def give_back(self, n: int, now: float) -> None:
        """Return the tokens of events that were not accepted after all (the broker failed)."""
        self._refill(now)
        self.tokens = min(self.burst, self.tokens + n)


class RateLimiter:
    """One token bucket per write key."""

    def __init__(
        self,
        rate: float,
        write_keys: Iterable[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        # one second's worth, and at least one event, or a key below 1/s could send nothing
        self.burst = max(rate, 1.0)
        self.clock = clock
        now = clock()
        self._buckets = {key: TokenBucket(rate, self.burst, now) for key in write_keys}

    def take(self, write_key: str, n: int) -> int:
        """0 when the key may send these n events now (they are counted), else the whole seconds
        to wait before they fit: the Retry-After of the 429."""
        wait = self._buckets[write_key].take(n, self.clock())
        return 0 if wait <= 0 else max(1, math.ceil(wait))

    def give_back(self, write_key: str, n: int) -> None:
        self._buckets[write_key].give_back(n, self.clock())
