"""The tracking plan on a DuckLake warehouse: dlt creates raw.tracking_plan_violations in the
lake, blocked events are dead letters there, and a replay under `flag` loads them and records
their violations in the same table."""

from __future__ import annotations

import json

from pipelines.config import PrivacyConfig, TrackingPlanSettings
from pipelines.ingest import ingest
from pipelines.producer import produce
from pipelines.replay import replay_rejected
from pipelines.warehouse import DuckLake
from tests.helpers import query, settings_for
from tests.integration.test_tracking_plan_ingest import (
    SAMPLE_PLAN,
    _traffic_with_planted_violations,
)
from tests.lake.conftest import PSEUDONYM_KEY


def test_violations_and_plan_dead_letters_on_the_lake(broker, make_topic, lake: DuckLake) -> None:
    messages, expected = _traffic_with_planted_violations()
    blocked = {m for m, v in expected.items() if ("unplanned", "") not in v}
    topic = make_topic(partitions=2)
    settings = settings_for(broker.bootstrap, topic)
    produce(messages, settings, topic)
    privacy = PrivacyConfig.of(pseudonym_key=PSEUDONYM_KEY)

    block = TrackingPlanSettings.of(plan_file=SAMPLE_PLAN, plan_mode="block")
    result = ingest(settings, lake, privacy=privacy, tracking_plan=block)

    assert result.rejected == len(blocked)
    rows = query(lake, "select message_id, rule, field, action from raw.tracking_plan_violations")
    assert {m for m, *_ in rows} == set(expected)
    assert {(r, f) for m, r, f, _ in rows if m in blocked} == {
        v for m in blocked for v in expected[m]
    }
    assert {a for m, *_, a in rows if m in blocked} == {"blocked"}

    # under flag the same plan keeps them: the replay loads every one, with its violations
    flag = TrackingPlanSettings.of(plan_file=SAMPLE_PLAN, plan_mode="flag")
    replayed = replay_rejected(lake, ["plan_violation"], privacy=privacy, tracking_plan=flag)
    assert (replayed.loaded, replayed.still_rejected) == (len(blocked), 0)
    kept_after_replay = query(
        lake,
        "select distinct message_id from raw.tracking_plan_violations "
        "where action = 'kept' and _dlt_load_id like 'replay-%'",
    )
    assert {m for (m,) in kept_after_replay} == blocked
    loaded = {m for (m,) in query(lake, "select distinct message_id from raw.tracking_events")}
    assert loaded == {json.loads(v)["messageId"] for _, v, _ in messages}
