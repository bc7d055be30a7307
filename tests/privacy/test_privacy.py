"""Minimisation before the warehouse, erasure that really erases, and no way back for the data."""

from __future__ import annotations

import json
import os

import pytest

from pipelines.config import PrivacyConfig
from pipelines.erasure import forget
from pipelines.events import dumps, messages_table, validate
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.privacy import PrivacySettings
from pipelines.producer import produce
from pipelines.warehouse import DuckDBFile, Warehouse
from tests.helpers import byte_leaks, dbt_build, every_cell, query, scalar, settings_for

KEY = "test-pseudonym-key"


def _tokens(warehouse: Warehouse) -> PrivacySettings:
    return PrivacySettings.resolve(PrivacyConfig(pseudonym_key=KEY), warehouse)


@pytest.fixture(scope="module")
def built(broker, tmp_path_factory):
    os.environ["TRACKFLOW_PSEUDONYM_KEY"] = KEY
    warehouse = DuckDBFile(tmp_path_factory.mktemp("privacy") / "warehouse.duckdb")
    topic = f"privacy.{os.getpid()}"
    settings = settings_for(broker.bootstrap, topic)
    traffic = generate(events=4_000, users=150, days=2, seed=21)
    produce(traffic.messages + PLANTED, settings, topic)
    assert ingest(settings, warehouse).loaded == 4_000 + 1
    dbt_build(warehouse)
    yield warehouse, settings, traffic
    os.environ.pop("TRACKFLOW_PSEUDONYM_KEY", None)


# a visitor whose anonymous id is a word every payload holds as a key ("type"), with one event
# and one dead letter; and a dead letter of the person test_forget erases whose bytes do not
# parse, keyed by someone else, naming them only in its text
PERSON = "user-00013"
_TS = 1_795_737_756_769
PLANTED = [
    (
        b"type",
        dumps(
            {
                "messageId": "planted-type-1",
                "type": "track",
                "event": "Product Viewed",
                "anonymousId": "type",
                "timestamp": "2026-11-28T10:00:00Z",
            }
        ),
        _TS,
    ),
    (
        b"type",
        dumps({"messageId": "planted-type-2", "type": "track", "event": "E", "anonymousId": "type",
               "timestamp": "not a time"}),
        _TS,
    ),
    (b"someone-else", b'{"type": "track", "userId" : "' + PERSON.encode() + b'", "event": "E', _TS),
]  # fmt: skip


def _events(traffic) -> list[dict]:
    return [json.loads(v) for _, v, _ in traffic.messages]


def test_pseudonymised_fields_never_in_clear_text(built) -> None:
    warehouse, _, traffic = built
    emails = {e["traits"]["email"] for e in _events(traffic) if "email" in e.get("traits", {})}
    ips = {e["context"]["ip"] for e in _events(traffic)}
    assert emails and ips
    cells = every_cell(warehouse)
    assert not [t for t, text in cells if any(m in text for m in emails)]
    assert not [
        t
        for t, text in cells
        if any(f"{ip}'" in text or f'{ip}"' in text for ip in ips if not ip.endswith(".0"))
    ]
    # the same input maps to the same token, so joins on it still work
    privacy = _tokens(warehouse)
    email = sorted(emails)[0]
    tokens = scalar(
        warehouse,
        "select count(distinct traits::json->>'email') from "
        "raw.tracking_events where traits::json->>'email' = "
        f"'{privacy.token(email)}'",
    )
    assert tokens == 1


PER_ENTITY_MODELS = {
    "analytics.fct_sessions": "user_key",
    "analytics.dim_users": "user_key",
    "analytics.fct_funnel_progress": "user_key",
    "staging.int_events__stitched": "user_key",
    "staging.stg_raw__tracking_events": "anonymous_id",
}


def _others(warehouse: Warehouse, person: str) -> dict[str, list[tuple]]:
    """Every row that is not the person's, in raw, dead letters and the per-entity models."""
    tables = {
        "raw.tracking_events": f"anonymous_id is distinct from '{person}'",
        "raw.tracking_events_rejected": "true",
        **{t: f"{c} is distinct from '{person}'" for t, c in PER_ENTITY_MODELS.items()},
    }
    return {
        table: sorted(query(warehouse, f"select * from {table} where {where}"), key=repr)
        for table, where in tables.items()
    }


def test_forget_matches_identities_exactly(built) -> None:
    """`forget --anonymous-id type` used to delete every dead letter (matched by substring)."""
    warehouse, _, _ = built
    before = _others(warehouse, "type")
    rejected_before = scalar(warehouse, "select count(*) from raw.tracking_events_rejected")

    result = forget(warehouse, anonymous_id="type", requested_via="test")

    assert result.rows_deleted == {"raw.tracking_events": 1, "raw.tracking_events_rejected": 1}
    after = _others(warehouse, "type")
    # exactly the visitor's dead letter went; nobody else's row changed anywhere
    assert len(after["raw.tracking_events_rejected"]) == rejected_before - 1
    gone = [r for r in before["raw.tracking_events_rejected"] if r not in after[
        "raw.tracking_events_rejected"]]  # fmt: skip
    assert len(gone) == 1 and b"planted-type-2" in gone[0][6]
    before["raw.tracking_events_rejected"] = after["raw.tracking_events_rejected"]
    assert after == before


def test_forget_erases_everything_and_nothing_comes_back(built, broker) -> None:
    warehouse, settings, traffic = built
    events = _events(traffic)
    # someone who logged in on more than one anonymous id: reached partly through stitching
    by_user: dict[str, set[str]] = {}
    for e in events:
        if e.get("userId"):
            by_user.setdefault(e["userId"], set()).add(e["anonymousId"])
    user, anon_ids = max(by_user.items(), key=lambda kv: (len(kv[1]), kv[0]))
    assert user == PERSON
    person_ids = {user} | anon_ids
    email_token = _tokens(warehouse).token(f"{user}@example.com")
    sessions_before = scalar(warehouse, "select count(*) from analytics.fct_sessions")
    theirs = scalar(
        warehouse, f"select count(*) from analytics.fct_sessions where user_key = '{user}'"
    )
    assert theirs > 0

    result = forget(warehouse, user_id=user, requested_via="test")
    assert result.identities == len(person_ids)
    assert result.rows_deleted["raw.tracking_events"] == sum(
        1 for e in events if e["anonymousId"] in anon_ids or e.get("userId") == user
    )
    # the broken dead letter that names them in its text went too
    assert result.rows_deleted["raw.tracking_events_rejected"] == 1

    def leaks() -> list[str]:
        return sorted(
            {
                t
                for t, text in every_cell(warehouse)
                if any(i in text for i in person_ids) or email_token in text
            }
        )

    assert leaks() == []
    # nor in the bytes: no free block of the file, no copy in dlt's working directory
    assert byte_leaks(warehouse, person_ids | {email_token}) == []
    assert scalar(warehouse, "select count(*) from analytics.fct_sessions") == (
        sessions_before - theirs
    )
    audit = scalar(warehouse, "select count(*) from raw.privacy_erasures")
    assert audit == 2  # this one and the one before; (checked above) no ids in either

    # replay the whole topic from the earliest offset with a fresh pipeline, then a backfill
    with warehouse.connect() as sql:  # forget where ingestion stood: it starts at the earliest
        sql.execute("delete from raw.ingestion_offsets")
    replay = ingest(settings, warehouse, pipeline_name="replay_from_earliest")
    # their rows, their broken dead letter (named in its text), and the "type" visitor erased
    # before: its event and its dead letter
    assert replay.suppressed == result.rows_deleted["raw.tracking_events"] + 1 + 2
    dbt_build(warehouse, "--full-refresh")
    assert leaks() == []

    # a path that skips ingestion (say, raw restored from a backup) still cannot bring them back
    # into the models: staging applies the suppression list too
    theirs_raw = [
        ("restore", 0, i, ts, key, value)
        for i, ((key, value, ts), e) in enumerate(zip(traffic.messages, events, strict=True))
        if e["anonymousId"] in anon_ids or e.get("userId") == user
    ]
    restored, _ = validate(messages_table(theirs_raw))
    with warehouse.connect() as sql:
        sql.register("restored", restored)
        sql.execute(
            "insert into raw.tracking_events by name "
            "select *, 'restore' as _dlt_load_id from restored"
        )
    dbt_build(warehouse, "--full-refresh")
    models = [
        (t, text) for t, text in every_cell(warehouse) if t.startswith(("staging.", "analytics."))
    ]
    assert not [t for t, text in models if any(i in text for i in person_ids)]
