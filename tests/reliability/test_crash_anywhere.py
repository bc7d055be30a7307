"""SIGKILL the ingestion 20+ times while a producer keeps sending: nothing lost, nothing twice."""

from __future__ import annotations

from tests.reliability.crash import run_crash_test


def test_crash_anywhere_loses_and_duplicates_nothing(tmp_path) -> None:
    report = run_crash_test(tmp_path, kills=20, events=30_000)
    print(report.line())
    assert report.kills >= 20
    # kills landed inside the pipeline's steps, not only during interpreter startup
    assert sum(n for p, n in report.kills_by_phase.items() if p != "startup") >= 3
    assert report.lost == 0
    assert report.duplicated == 0
    assert report.staged == report.produced_valid
    assert report.rejected == report.produced_malformed
