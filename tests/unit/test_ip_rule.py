"""The IP rule, checked from one table of cases on every path that applies it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.collector.enrich import enrich
from pipelines.config import PrivacyConfig
from pipelines.events import messages_table, validate
from pipelines.ip import apply_ip_rule, normalise_ip, truncate_ip
from pipelines.privacy import PrivacySettings, minimise
from pipelines.warehouse import DuckDBFile
from tests.shared.ip_cases import IP_CASES, IpCase

IDS = [repr(c.raw)[:40] for c in IP_CASES]


@pytest.mark.parametrize("case", IP_CASES, ids=IDS)
def test_the_rule(case: IpCase) -> None:
    assert truncate_ip(case.raw) == case.truncated
    assert normalise_ip(case.raw) == case.normalised
    assert apply_ip_rule(case.raw, "none") is None


@pytest.mark.parametrize("mode", ["truncate", "full", "none"])
def test_the_collector_applies_it(mode: str) -> None:
    for case in IP_CASES:
        event = enrich(
            {"type": "track", "event": "E", "anonymousId": "a", "context": {"ip": case.raw}},
            received_at="2026-01-01T00:00:00.000Z",
            client_ip="198.51.100.1",
            user_agent=None,
            ip_mode=mode,  # type: ignore[arg-type]
        )
        want = {"truncate": case.truncated, "full": case.normalised, "none": None}[mode]
        # a blank ip from the event falls back to the connection's address
        if not case.raw.strip() and mode != "none":
            want = apply_ip_rule("198.51.100.1", mode)  # type: ignore[arg-type]
        assert event["context"].get("ip") == want, case


@pytest.mark.parametrize("mode", ["truncate", "full", "none"])
def test_ingestion_applies_it(mode: str, tmp_path: Path) -> None:
    records = [
        (
            "t",
            0,
            i,
            0,
            b"k",
            json.dumps(
                {
                    "messageId": f"m{i}",
                    "type": "track",
                    "event": "E",
                    "anonymousId": "a",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "context": {"ip": case.raw, "locale": "en"},
                }
            ).encode(),
        )
        for i, case in enumerate(IP_CASES)
    ]
    accepted, rejected = validate(messages_table(records))
    assert rejected.num_rows == 0
    rules = PrivacySettings.resolve(
        PrivacyConfig(ip_mode=mode, pseudonym_key="k"),  # type: ignore[arg-type]
        DuckDBFile(tmp_path / "w.duckdb"),
    )
    rows = minimise(accepted, rules).to_pylist()
    for case, row in zip(IP_CASES, rows, strict=True):
        want = {"truncate": case.truncated, "full": case.normalised, "none": None}[mode]
        for stored in (json.loads(row["context"]), json.loads(row["payload"])["context"]):
            assert stored.get("ip") == want, case
            assert stored["locale"] == "en"
