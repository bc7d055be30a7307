"""Retention gaps: the embedded broker cannot delete records, so a fake client reaches this case."""

from __future__ import annotations

from kafka import TopicPartition

from pipelines.kafka_source.helpers import OffsetGapError, check_positions


def test_offset_below_log_start_is_a_retention_gap() -> None:
    tp0, tp1 = TopicPartition("events", 0), TopicPartition("events", 1)
    stored = {"events": {"0": {"next": 120, "fp": None}, "1": {"next": 500, "fp": None}}}
    gaps = check_positions(
        ("events",), stored, [tp0, tp1], begin={tp0: 400, tp1: 0}, end={tp0: 900, tp1: 800}
    )
    assert [(g.partition, g.kind, g.expected_offset, g.log_start) for g in gaps] == [
        (0, "retention", 120, 400)
    ]
    assert "280 messages were deleted" in gaps[0].detail
    message = str(OffsetGapError(gaps))
    assert message.startswith("events[0]: next offset 120 is below the log start 400")
    assert "--resume-from" in message


def test_partition_that_disappeared_is_a_gap() -> None:
    tp0 = TopicPartition("events", 0)
    stored = {"events": {"0": {"next": 0, "fp": None}, "3": {"next": 10, "fp": None}}}
    gaps = check_positions(("events",), stored, [tp0], begin={tp0: 0}, end={tp0: 0})
    assert [(g.partition, g.kind) for g in gaps] == [(3, "partition_missing")]
