"""JSON in and out of the collector: orjson when installed (dlt brings it), else the stdlib.

Parsing and serialising are most of the collector's work per event, and orjson does both several
times faster. Both paths refuse NaN and Infinity, which are not JSON and would reach Kafka as
messages the warehouse cannot read.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency of dlt
    orjson = None  # type: ignore[assignment]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _std_loads(data: bytes) -> Any:
    return json.loads(data, parse_constant=_no_constants)


def _std_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def loads(data: bytes) -> Any:
    """Parse a request body; raises ValueError (or UnicodeDecodeError) when it is not JSON."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the standard library names the problem
    return _std_loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, the Kafka message value."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:
            pass  # an integer beyond 64 bits
    return _std_dumps(value)
