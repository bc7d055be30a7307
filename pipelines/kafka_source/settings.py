"""Constants of the Kafka source (no logic, no environment reads)."""

from typing import Final

RAW_DATASET: Final = "raw"
EVENTS_TABLE: Final = "tracking_events"
REJECTED_TABLE: Final = "tracking_events_rejected"
GAPS_TABLE: Final = "ingestion_gaps"
PIPELINE_NAME: Final = "trackflow_kafka"

# records per Arrow micro-batch; one dlt item each, so memory stays flat however long the drain
DEFAULT_BATCH_SIZE: Final = 50_000
# a run stops after this many messages (the rest waits for the next run)
DEFAULT_MAX_MESSAGES: Final = 5_000_000
DEFAULT_MAX_SECONDS: Final = 600.0
# a long drain is loaded in parts of this many messages, each committed with its offsets, so
# memory and the pending package stay the same size however large the backlog
DEFAULT_MESSAGES_PER_LOAD: Final = 250_000

POLL_TIMEOUT_MS: Final = 1_000
# consecutive empty polls that mean "caught up" while below the end offsets captured at start
EMPTY_POLLS_TO_STOP: Final = 2

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
