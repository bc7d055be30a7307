"""The tracking plan: bad plans fail in one line; batches split by flag / block against a truth
computed here from the planted events."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.events import dumps, messages_table, validate
from pipelines.tracking_plan import PLAN_VIOLATION, PlanError, check_batch, load_plan, parse_plan

REPO = Path(__file__).resolve().parents[2]

PLAN = """
unplanned_events: flag
events:
  Order Completed:
    properties:
      type: object
      required: [order_id, total]
      properties:
        order_id: {type: string}
        total: {type: number, minimum: 0}
pages:
  Home:
    context:
      type: object
      required: [page]
"""


def _event(i: int, kind: str = "track", **fields: object) -> dict[str, object]:
    return {
        "messageId": f"m-{i}",
        "type": kind,
        "anonymousId": f"a-{i}",
        "timestamp": "2026-05-01T10:00:00Z",
        **fields,
    }


# (event, the violations it must produce as (rule, field)); an empty list: conforms
PLANTED: list[tuple[dict[str, object], list[tuple[str, str]]]] = [
    (_event(0, event="Order Completed", properties={"order_id": "o1", "total": 9.5}), []),
    (
        _event(1, event="Order Completed", properties={"order_id": "o1", "total": "9.5"}),
        [("type", "properties.total")],
    ),
    (
        _event(2, event="Order Completed", properties={"total": -1}),
        [("required", "properties"), ("minimum", "properties.total")],
    ),
    (  # no properties at all: one violation per missing name
        _event(3, event="Order Completed"),
        [("required", "properties"), ("required", "properties")],
    ),
    (_event(4, event="Order Done", properties={}), [("unplanned", "")]),
    (_event(5, kind="page", name="Home", context={"page": {"path": "/"}}), []),
    (_event(6, kind="page", name="Home", context={}), [("required", "context")]),
    (_event(7, kind="page", name="Elsewhere"), []),  # unplanned pages are allowed by default
    (_event(8, kind="identify", traits={"plan": 1}), []),  # identify calls are not planned
    # the same payload as a violating event: validated once, reported for each event
    (
        _event(9, event="Order Completed", properties={"order_id": "o1", "total": "9.5"}),
        [("type", "properties.total")],
    ),
]


def _accepted() -> object:
    records = [("t", 0, i, 0, b"k", dumps(e)) for i, (e, _) in enumerate(PLANTED)]
    accepted, rejected = validate(messages_table(records))
    assert rejected.num_rows == 0
    return accepted


def _truth() -> list[tuple[str, str, str]]:
    return sorted(
        (str(event["messageId"]), rule, where)
        for event, expected in PLANTED
        for rule, where in expected
    )


def test_flag_keeps_every_event_and_records_each_violation() -> None:
    plan = parse_plan(PLAN, "plan.yaml")
    outcome = check_batch(_accepted(), plan, "flag")  # type: ignore[arg-type]
    assert outcome.kept.num_rows == len(PLANTED)
    assert outcome.blocked.num_rows == 0
    rows = outcome.violations.to_pylist()
    assert sorted((r["message_id"], r["rule"], r["field"]) for r in rows) == _truth()
    assert {r["plan_version"] for r in rows} == {plan.version}
    assert {r["action"] for r in rows} == {"kept"}
    by_id = {r["message_id"]: r for r in rows}
    assert by_id["m-1"]["message"] == "properties.total is a string, not number"
    assert by_id["m-1"]["schema_path"] == "events/Order Completed/properties/properties/total/type"
    assert by_id["m-4"]["event"] == "Order Done"
    assert by_id["m-6"]["event"] == "Home" and by_id["m-6"]["type"] == "page"
    assert by_id["m-6"]["message"] == "context: 'page' is a required property"


def test_block_dead_letters_planned_violations_but_not_unplanned_events() -> None:
    plan = parse_plan(PLAN, "plan.yaml")
    accepted = _accepted()
    outcome = check_batch(accepted, plan, "block")  # type: ignore[arg-type]
    planned_bad = {
        str(e["messageId"]) for e, expected in PLANTED if expected and expected[0][0] != "unplanned"
    }
    kept = set(outcome.kept.column("message_id").to_pylist())
    assert kept == {str(e["messageId"]) for e, _ in PLANTED} - planned_bad
    assert outcome.blocked.num_rows == len(planned_bad)
    assert set(outcome.blocked.column("error_code").to_pylist()) == {PLAN_VIOLATION}
    # the dead letter holds the payload as it was accepted, so a replay can load it as it is
    payloads = dict(
        zip(
            accepted.column("message_id").to_pylist(),
            accepted.column("payload").to_pylist(),
            strict=True,
        )
    )
    offsets = outcome.blocked.column("_kafka_offset").to_pylist()
    for offset, payload in zip(offsets, outcome.blocked.column("payload").to_pylist(), strict=True):
        assert payload.decode() == payloads[f"m-{offset}"]
    message = dict(zip(offsets, outcome.blocked.column("error_message").to_pylist(), strict=True))
    assert message[1] == "breaks the tracking plan: properties.total is a string, not number"
    actions = {(r["message_id"], r["action"]) for r in outcome.violations.to_pylist()}
    assert ("m-4", "kept") in actions and ("m-1", "blocked") in actions


def test_the_sample_plan_accepts_the_generated_traffic() -> None:
    from pipelines.generator import generate

    plan = load_plan(REPO / "docs" / "tracking_plan.yaml")
    traffic = generate(events=3000, users=200, days=2, seed=3)
    records = [("t", 0, i, 0, k, v) for i, (k, v, _) in enumerate(traffic.messages)]
    accepted, _ = validate(messages_table(records))
    outcome = check_batch(accepted, plan, "block")
    assert outcome.violations.num_rows == 0
    assert outcome.kept.num_rows == accepted.num_rows == len(traffic.messages)


def test_the_version_is_the_content_hash() -> None:
    assert parse_plan(PLAN).version == parse_plan(PLAN).version
    assert parse_plan(PLAN).version != parse_plan(PLAN + "\n# changed\n").version


BAD_PLANS = [
    ("events: [\n", "TRACKING_PLAN plan.yaml: line 2, column 1: not valid YAML: "),
    (
        "events:\n  Order Completed:\n"
        "    properties: {type: object, properties: {t: {type: strin}}}",
        "TRACKING_PLAN plan.yaml: events.Order Completed.properties.properties.t.type: "
        "'strin' is not valid under any of the given schemas",
    ),
    (
        "events:\n  X:\n    propertes: {}\n",
        "TRACKING_PLAN plan.yaml: events.X: Additional properties are not allowed "
        "('propertes' was unexpected)",
    ),
    ("colour: red\n", "TRACKING_PLAN plan.yaml: Additional properties are not allowed"),
    (
        "unplanned_events: block\n",
        "TRACKING_PLAN plan.yaml: unplanned_events: 'block' is not one of ['allow', 'flag']",
    ),
    ("events:\n  X:\n    max_violation_rate: 2\n", "TRACKING_PLAN plan.yaml: events.X."),
    ("- a list\n", "TRACKING_PLAN plan.yaml: ['a list'] is not of type 'object'"),
]


@pytest.mark.parametrize(("text", "start"), BAD_PLANS)
def test_a_bad_plan_fails_in_one_line(tmp_path: Path, text: str, start: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml")
    assert str(caught.value).startswith(start), str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(PlanError):
        load_plan(path)


def test_a_missing_plan_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"^TRACKING_PLAN .*nope\.yaml: cannot be read"):
        load_plan(tmp_path / "nope.yaml")
