"""Rules that live in dbt and in Python agree: compiled by dbt, run next to the Python version.

The skew correction (staging's event_at; ingestion's event_days, which the late-data sensor
uses), the hash of erased ids (erasure writes it, staging matches it) and the labels of funnel
positions (dbt names them, the report shows declared funnels that have no attempts yet).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pytest

from pipelines.dbt import DBT_PROJECT_DIR, run_dbt
from pipelines.events import event_days
from pipelines.privacy import id_sha256
from pipelines.report.warehouse import declared_funnels
from pipelines.warehouse import DuckDBFile

INLINE = """{%- set positions = {} -%}
{%- for f in funnel_definitions() -%}
{%- do positions.update({f.name: funnel_position_names(f)}) -%}
{%- endfor -%}
{{ tojson({
    'event_at': event_at_sql('device_timestamp', 'sent_at', 'received_at'),
    'erased_id_hash': erased_id_hash('id'),
    'positions': positions,
}) }}"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("shared_rules")
    out = run_dbt(
        DuckDBFile(work / "w.duckdb"),
        "compile",
        "--quiet",
        "--target-path",
        str(work / "target"),
        "--inline",
        INLINE,
    )
    return json.loads(out.strip().splitlines()[-1])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# (device timestamp, sent_at, received_at): clocks ahead, behind, across midnight, no sent_at
SKEW_CASES = [
    (utc(2026, 3, 1, 23, 50), utc(2026, 3, 1, 23, 55), utc(2026, 3, 2, 0, 20)),
    (utc(2026, 3, 2, 0, 10), utc(2026, 3, 2, 0, 30), utc(2026, 3, 1, 23, 40)),
    (utc(2026, 3, 1, 12, 0), None, utc(2026, 3, 3, 12, 0)),
    (utc(2026, 3, 5, 1, 0), utc(2026, 3, 5, 1, 0), utc(2026, 3, 1, 22, 0)),
    (utc(2026, 2, 28, 23, 59, 59), utc(2026, 3, 1, 0, 0, 1), utc(2026, 3, 1, 0, 0, 1)),
]


def test_skew_correction_days_agree(compiled: dict) -> None:
    for case in SKEW_CASES:
        arrow = pa.table(
            {
                "timestamp": pa.array([case[0]], pa.timestamp("us", tz="UTC")),
                "sent_at": pa.array([case[1]], pa.timestamp("us", tz="UTC")),
                "received_at": pa.array([case[2]], pa.timestamp("us", tz="UTC")),
            }
        )
        [python_day] = event_days(arrow)
        with duckdb.connect() as con:
            # staging's columns are naive UTC timestamps
            con.execute("set TimeZone = 'UTC'")
            naive = [t.replace(tzinfo=None) if t else None for t in case]
            dbt_day = con.execute(
                f"select ({compiled['event_at']})::date from (select ?::timestamp as "
                "device_timestamp, ?::timestamp as sent_at, ?::timestamp as received_at)",
                naive,
            ).fetchone()[0]
        assert dbt_day == python_day, case


@pytest.mark.parametrize("value", ["user-1", "anon-é-ü", "", "a'b", "🙂" * 3, "x" * 300])
def test_erased_id_hash_agrees(compiled: dict, value: str) -> None:
    with duckdb.connect() as con:
        dbt_hash = con.execute(
            f"select {compiled['erased_id_hash']} from (select ?::varchar as id)", [value]
        ).fetchone()[0]
    assert dbt_hash == id_sha256(value)


# the two agreeing is not enough: both must be plain SHA-256 of the UTF-8 id (erasure writes the
# Python one, staging matches with the SQL one). FIPS 180-2's example, written out.
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_erased_id_hash_is_the_published_sha256(compiled: dict) -> None:
    with duckdb.connect() as con:
        dbt_hash = con.execute(
            f"select {compiled['erased_id_hash']} from (select ?::varchar as id)", ["abc"]
        ).fetchone()[0]
    assert dbt_hash == SHA256_ABC
    assert id_sha256("abc") == SHA256_ABC


def test_funnel_position_labels_agree(compiled: dict) -> None:
    declared = {f.name: list(f.step_names) for f in declared_funnels(DBT_PROJECT_DIR)}
    assert declared == compiled["positions"]
