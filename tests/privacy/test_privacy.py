"""Minimisation before the warehouse, erasure that really erases, and no way back for the data."""

from __future__ import annotations

import json
import os

import pytest

from pipelines.config import PrivacyConfig
from pipelines.erasure import forget
from pipelines.events import messages_table, validate
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.privacy import PrivacySettings
from pipelines.producer import produce
from pipelines.warehouse import DuckDBFile, Warehouse
from tests.helpers import dbt_build, every_cell, scalar, settings_for

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
    produce(traffic.messages, settings, topic)
    assert ingest(settings, warehouse).loaded == 4_000
    dbt_build(warehouse)
    yield warehouse, settings, traffic
    os.environ.pop("TRACKFLOW_PSEUDONYM_KEY", None)


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


def test_forget_erases_everything_and_nothing_comes_back(built, broker) -> None:
    warehouse, settings, traffic = built
    events = _events(traffic)
    # someone who logged in on more than one anonymous id: reached partly through stitching
    by_user: dict[str, set[str]] = {}
    for e in events:
        if e.get("userId"):
            by_user.setdefault(e["userId"], set()).add(e["anonymousId"])
    user, anon_ids = max(by_user.items(), key=lambda kv: (len(kv[1]), kv[0]))
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

    def leaks() -> list[str]:
        return sorted(
            {
                t
                for t, text in every_cell(warehouse)
                if any(i in text for i in person_ids) or email_token in text
            }
        )

    assert leaks() == []
    assert scalar(warehouse, "select count(*) from analytics.fct_sessions") == (
        sessions_before - theirs
    )
    audit = scalar(warehouse, "select count(*) from raw.privacy_erasures")
    assert audit == 1  # and (checked above) it holds none of their ids

    # replay the whole topic from the earliest offset with a fresh pipeline, then a backfill
    replay = ingest(settings, warehouse, pipeline_name="replay_from_earliest")
    assert replay.suppressed == result.rows_deleted["raw.tracking_events"]
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
