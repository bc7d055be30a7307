"""The door's parsing, inflating and scrubbing without a broker: numbers exact or refused, depth
bounded, every refusal named, gzip members all read, the write key removed wherever it is."""

from __future__ import annotations

import gzip
import json

import pytest

from pipelines.collector.codec import MAX_NESTING, BadJson, dumps, loads
from pipelines.collector.intake import RequestRefused, gunzip
from pipelines.collector.scrub import credential_marks, holds_credential, without_credentials

pytestmark = pytest.mark.timeout(30)


def refusal(data: bytes) -> str:
    with pytest.raises(BadJson) as caught:
        loads(data)
    assert caught.value.message
    return caught.value.code


@pytest.mark.parametrize(
    "text",
    [
        "123456789012345678901234567890",
        "-" + "9" * 100,
        "18446744073709551616",
        "0.1",
        "0.0",
        "-0.0",
        "5e-324",
        "1.5e300",
        "0.30000000000000004",
        "12345678901234567",
    ],
)
def test_numbers_survive_parse_and_serialise(text: str) -> None:
    body = f'{{"v":{text},"s":"x"}}'.encode()
    value = loads(body)["v"]
    # the same number back: integers to the digit, others to the same double
    assert json.loads(dumps({"v": value}))["v"] == json.loads(text)
    if "." not in text and "e" not in text:
        assert dumps({"v": value}) == f'{{"v":{text}}}'.encode()


@pytest.mark.parametrize(
    "text", ["1e400", "-1e400", "1e-400", "1.2345678901e-315", "3.14159265358979323846"]
)
def test_numbers_that_would_change_are_refused(text: str) -> None:
    assert refusal(f'{{"v":[1,{{"w":{text}}}]}}'.encode()) == "bad_number"


def test_integers_past_pythons_conversion_limit_are_refused() -> None:
    assert refusal(b'{"v":' + b"1" * 5000 + b"}") == "bad_number"


def test_each_refusal_is_named() -> None:
    assert refusal(b"{not json") == "not_json"
    assert refusal(b'{"v": NaN}') == "not_json"
    assert refusal(b'{"v": "\xed\xa0\x80"}') == "not_utf8"
    assert refusal(b'{"v": "\\udc00"}') == "not_utf8"
    assert refusal(b'{"v": "\\ud800\\u0041"}') == "not_utf8"
    # a paired surrogate is a character (an emoji)
    assert loads(b'{"v": "\\ud83d\\ude00"}') == {"v": "\U0001f600"}
    # a lone surrogate beside an integer orjson cannot write is found all the same
    assert refusal(b'{"n": 123456789012345678901234567890, "v": ["\\udc00"]}') == "not_utf8"


def test_nesting_is_bounded_for_safety() -> None:
    """The warehouse's 32 levels are the screen's and validator's to apply per event; the body
    is bounded where nothing after parsing could recurse too deep."""
    deepest = b"[" * MAX_NESTING + b"]" * MAX_NESTING
    assert isinstance(loads(deepest), list)
    assert refusal(b"[" + deepest + b"]") == "too_deep"
    assert refusal(b"[" * 10_000 + b"]" * 10_000) == "too_deep"
    assert refusal(b"[" * 100_000) == "too_deep"
    # a deep body with an integer orjson cannot write takes the slow check
    big = b"123456789012345678901234567890"
    assert refusal(b"[" * 300 + big + b"]" * 300) == "too_deep"
    assert isinstance(loads(b"[" * 100 + big + b"]" * 100), list)


def test_gzip_members_are_all_read_within_the_limit() -> None:
    assert gunzip(gzip.compress(b'{"a":') + gzip.compress(b"1}"), 100, "x") == b'{"a":1}'
    with pytest.raises(RequestRefused) as caught:
        gunzip(gzip.compress(b"a" * 60) + gzip.compress(b"a" * 60), 100, "a batch")
    assert caught.value.status == 413
    with pytest.raises(RequestRefused) as caught:
        gunzip(gzip.compress(b"{}") + b"trailing junk", 100, "a batch")
    assert (caught.value.status, caught.value.code) == (400, "bad_gzip")


def test_the_write_key_is_removed_wherever_it_is() -> None:
    key = "s3cret"
    event = {
        "writeKey": key,
        "context": {"writeKey": "another", "library": {"name": "x"}},
        "properties": {"a": key, "b": [key, "keep", {"writeKey": 1, key: 2}], key: "named"},
        "traits": {"mentions": f"not {key} itself"},
    }
    marks = credential_marks(key)
    assert holds_credential(dumps(event), marks)
    clean = without_credentials(event, key)
    assert clean == {
        "context": {"library": {"name": "x"}},
        "properties": {"b": ["keep", {}]},
        "traits": {"mentions": f"not {key} itself"},
    }
    assert not holds_credential(dumps(clean), marks)
    assert not holds_credential(dumps({"properties": {"k": "nothing here"}}), marks)
