"""Constants of the Kafka source (no logic, no environment reads; run limits: pipelines.config)."""

from typing import Final

POLL_TIMEOUT_MS: Final = 1_000
# consecutive empty polls that mean "caught up" while below the end offsets captured at start
EMPTY_POLLS_TO_STOP: Final = 2
# once past the end offsets captured at start: how long a poll may wait for a fetch already
# in flight (end offsets are only a lower bound: Tansu reports the last batch's base offset + 1)
FLUSH_POLL_TIMEOUT_MS: Final = 250
# ... and how long it goes on reading once past them. A run drains what was there when it
# started; without a bound, steady traffic (never a quiet 250 ms) kept one run following the
# stream until max_seconds while nothing reached the warehouse. Whatever arrives later is the
# next run's: the batch holding the reported end came in the fetch that passed it.
FLUSH_MAX_SECONDS: Final = 1.0

# connection retries before a run fails naming the servers
CONNECT_ATTEMPTS: Final = 5
CONNECT_BACKOFF_S: Final = 0.5

# how long an empty poll's follow-up metadata request may take before the broker counts as gone
REACHABLE_TIMEOUT_MS: Final = 5_000

CONSUMER_DEFAULTS: Final = {
    "enable_auto_commit": False,
    "auto_offset_reset": "none",
    "fetch_max_bytes": 64 * 1024 * 1024,
    "max_partition_fetch_bytes": 16 * 1024 * 1024,
    "fetch_min_bytes": 1,
    "fetch_max_wait_ms": 100,
    "request_timeout_ms": 30_000,
    "check_crcs": True,
    # each connect attempt gives up after this; CONNECT_ATTEMPTS bounds the total
    "bootstrap_timeout_ms": 3_000,
    "reconnect_backoff_max_ms": 1_000,
}
