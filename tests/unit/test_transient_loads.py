"""Which failed loads ingestion retries by itself: conflicts between writers of one lake, never a
load that would fail the same way again."""

from __future__ import annotations

from dlt.common.destination.exceptions import SchemaUpdateError

from pipelines.ingest import is_transient


def _raised_from(cause: Exception) -> RuntimeError:
    # as dlt wraps a destination error: the step failure with the schema error as its cause
    try:
        try:
            raise SchemaUpdateError("kafka", [], cause)
        except SchemaUpdateError as inner:
            raise RuntimeError("load step failed") from inner
    except RuntimeError as outer:
        return outer


def test_losing_the_race_to_create_the_dataset_is_retried() -> None:
    # two shards' first loads on an empty lake: the slower one finds the schema made meanwhile
    lost = _raised_from(Exception('Catalog Error: Schema with name "raw" already exists!'))
    assert is_transient(lost)


def test_a_commit_conflict_is_retried() -> None:
    assert is_transient(_raised_from(Exception("TransactionContext Error: Transaction conflict")))


def test_a_permanent_schema_error_is_not_retried() -> None:
    denied = _raised_from(Exception("Permission Error: cannot create schema raw"))
    assert not is_transient(denied)
