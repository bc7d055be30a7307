"""The pseudonym pinned to published HMAC-SHA256 values, not to the project's own function.

The rule (README "Privacy", pipelines/privacy.py): a pseudonymised value becomes `p_` followed by
HMAC-SHA256(key = TRACKFLOW_PSEUDONYM_KEY, message = the value's UTF-8 bytes) in lower-case hex,
cut to its first 32 characters. Python computes it (PrivacySettings.token: the tokens erasure
stores) and so does DuckDB SQL (minimise on every ingested batch, drop_suppressed matching erased
people); each path must give the digest RFC 4231 publishes. Other tests compare the paths with
PrivacySettings.token, which only says they agree with each other.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from pipelines.events import dumps, messages_table, validate
from pipelines.privacy import PrivacySettings, drop_suppressed, minimise

VECTORS = [
    pytest.param(
        b"Jefe",
        "what do ya want for nothing?",
        # RFC 4231 test case 2: 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843
        "p_5bdcc146bf60754e6a042426089575c7",
        id="rfc4231-case-2",
    ),
    pytest.param(
        b"\xaa" * 131,
        "Test Using Larger Than Block-Size Key - Hash Key First",
        # RFC 4231 test case 6, a key longer than SHA-256's 64-byte block (hashed first):
        # 60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54
        "p_60e431591ee0b67f0d8a26aacbf5b77f",
        id="rfc4231-case-6-long-key",
    ),
]


def _accepted(events: list[dict]) -> tuple[pa.Table, pa.Table]:
    batch = messages_table(
        [("t", 0, i, 0, str(e.get("anonymousId")).encode(), dumps(e)) for i, e in enumerate(events)]
    )
    accepted, rejected = validate(batch)
    assert accepted.num_rows == len(events), rejected.column("error_message").to_pylist()
    return accepted, rejected


@pytest.mark.parametrize(("key", "value", "token"), VECTORS)
def test_python_token_is_the_published_hmac(key: bytes, value: str, token: str) -> None:
    assert PrivacySettings(key=key).token(value) == token


@pytest.mark.parametrize(("key", "value", "token"), VECTORS)
def test_minimise_writes_the_published_hmac(key: bytes, value: str, token: str) -> None:
    # the SQL path of ingestion: the field is replaced in its column and in the payload
    settings = PrivacySettings(pseudonymise=(("traits", "email"),), key=key)
    accepted, _ = _accepted(
        [
            {
                "messageId": "m1",
                "type": "identify",
                "anonymousId": "a1",
                "timestamp": "2026-01-01T00:00:00Z",
                "traits": {"email": value, "plan": "pro"},
            }
        ]
    )
    [row] = minimise(accepted, settings).to_pylist()
    assert json.loads(row["traits"]) == {"email": token, "plan": "pro"}
    assert json.loads(row["payload"])["traits"] == {"email": token, "plan": "pro"}


@pytest.mark.parametrize(("key", "value", "token"), VECTORS)
def test_suppression_matches_the_published_hmac(key: bytes, value: str, token: str) -> None:
    # the SQL path that drops an erased person's new events: it hashes each row's ids in DuckDB
    # and compares them with the stored tokens, here the published value written out
    settings = PrivacySettings(key=key)
    accepted, rejected = _accepted(
        [
            {"messageId": "m1", "type": "track", "event": "E", "anonymousId": value,
             "timestamp": "2026-01-01T00:00:00Z"},
            {"messageId": "m2", "type": "track", "event": "E", "anonymousId": "someone-else",
             "timestamp": "2026-01-01T00:00:00Z"},
        ]
    )  # fmt: skip
    kept, _, dropped = drop_suppressed(accepted, rejected, frozenset({token}), settings)
    assert kept.column("message_id").to_pylist() == ["m2"]
    assert dropped == 1
