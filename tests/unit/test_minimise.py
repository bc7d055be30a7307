"""Minimisation's two routes (text replacement and JSON merge-patch) give the same JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import PrivacyConfig
from pipelines.events import messages_table, validate
from pipelines.privacy import PrivacySettings, minimise
from pipelines.warehouse import DuckDBFile

KEY_ENV = {"TRACKFLOW_PSEUDONYM_KEY": "unit-test-key"}


def privacy(env: dict[str, str], tmp_path: Path) -> PrivacySettings:
    return PrivacySettings.resolve(PrivacyConfig.from_env(env), DuckDBFile(tmp_path / "w.duckdb"))


def minimised(payloads: list[str], env: dict[str, str], tmp_path: Path) -> list[dict]:
    batch = messages_table([("t", 0, i, 0, b"k", p.encode()) for i, p in enumerate(payloads)])
    accepted, rejected = validate(batch)
    assert rejected.num_rows == 0, rejected.column("error_message").to_pylist()
    settings = privacy({**KEY_ENV, **env}, tmp_path)
    out = minimise(accepted, settings)
    return [
        {
            "payload": json.loads(row["payload"]),
            "context": json.loads(row["context"]) if row["context"] else None,
            "traits": json.loads(row["traits"]) if row["traits"] else None,
            "properties": json.loads(row["properties"]) if row["properties"] else None,
        }
        for row in out.to_pylist()
    ]


def event(context: str, extra: str = "") -> str:
    return (
        '{"messageId":"m","type":"identify","anonymousId":"a",'
        f'"timestamp":"2026-01-01T00:00:00Z","context":{context}{extra}}}'
    )


@pytest.mark.parametrize(
    ("context", "want_ip"),
    [
        ('{"ip":"203.0.113.7","locale":"en"}', "203.0.113.0"),  # compact: text route
        ('{"ip": "203.0.113.7", "locale": "en"}', "203.0.113.0"),  # spaced: text route
        ('{\n  "ip":\n    "203.0.113.7"}', "203.0.113.0"),  # other spacing: merge-patch
        ('{"ip":"203.0.113.7","note":"caf\\u00e9"}', "203.0.113.0"),  # escapes: merge-patch
        ('{"ip":"\\u0032\\u00303.0.113.7"}', "203.0.113.0"),  # escaped ip itself
        ('{"ip":"203.0.113.7","203.0.113.7":1}', "203.0.113.0"),  # value also a key
        ('{"ip":"2001:db8:85a3:8d3:1319:8a2e:370:7348"}', "2001:db8:85a3::"),
        ('{"ip":"203.0.113.0"}', "203.0.113.0"),  # already truncated
    ],
)
def test_ip_is_truncated_in_context_and_payload(context: str, want_ip: str, tmp_path) -> None:
    [row] = minimised([event(context)], {}, tmp_path)
    original = json.loads(event(context))
    assert row["context"]["ip"] == want_ip
    assert row["payload"]["context"]["ip"] == want_ip
    # nothing else changed
    assert {k: v for k, v in row["context"].items() if k != "ip"} == {
        k: v for k, v in original["context"].items() if k != "ip"
    }
    assert {k: v for k, v in row["payload"].items() if k != "context"} == {
        k: v for k, v in original.items() if k != "context"
    }


def test_ip_elsewhere_in_the_payload_is_truncated_too(tmp_path) -> None:
    [row] = minimised(
        [event('{"ip":"198.51.100.23"}', ',"properties":{"client":"198.51.100.23","n":1}')],
        {},
        tmp_path,
    )
    assert row["payload"]["context"]["ip"] == "198.51.100.0"
    assert row["payload"]["properties"] == {"client": "198.51.100.0", "n": 1}
    assert row["properties"] == {"client": "198.51.100.0", "n": 1}
    assert "198.51.100.23" not in json.dumps(row)


def test_an_escaped_copy_of_the_ip_is_found_too(tmp_path) -> None:
    [row] = minimised(
        [event('{"ip":"198.51.100.23"}', ',"properties":{"c":"\\u0031\\u00398.51.100.23"}')],
        {},
        tmp_path,
    )
    assert row["properties"] == {"c": "198.51.100.0"}
    assert row["payload"]["properties"] == {"c": "198.51.100.0"}


def test_ip_mode_none_removes_it(tmp_path) -> None:
    [row] = minimised(
        [event('{"ip":"198.51.100.23","locale":"en"}')], {"TRACKFLOW_IP_MODE": "none"}, tmp_path
    )
    assert row["context"].get("ip") is None and row["context"]["locale"] == "en"
    assert row["payload"]["context"].get("ip") is None


def test_non_string_ip_and_pseudonymised_traits(tmp_path) -> None:
    settings = privacy(KEY_ENV, tmp_path)
    [row] = minimised(
        [event('{"ip":12345}', ',"traits":{"email":"ann@example.com","plan":"pro"}')], {}, tmp_path
    )
    # not an address: never stored as if it were one
    assert row["context"].get("ip") is None and row["payload"]["context"].get("ip") is None
    assert row["traits"] == {"email": settings.token("ann@example.com"), "plan": "pro"}
    assert row["payload"]["traits"]["email"] == settings.token("ann@example.com")
    assert "ann@example.com" not in json.dumps(row)


def test_legacy_shape_details_are_minimised_in_the_payload(tmp_path) -> None:
    settings = privacy(KEY_ENV, tmp_path)
    legacy = (
        '{"type":"newsletter_signup","timestamp":"2026-01-01T00:00:00Z",'
        '"details":{"email":"bo@example.com"}}'
    )
    batch = messages_table([("t", 0, 0, 0, b"visitor-1", legacy.encode())])
    accepted, _ = validate(batch)
    [row] = minimise(accepted, settings).to_pylist()
    token = settings.token("bo@example.com")
    assert json.loads(row["properties"]) == {"email": token}
    assert json.loads(row["payload"])["details"] == {"email": token}
    assert "bo@example.com" not in row["payload"]
