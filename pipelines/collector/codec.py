"""JSON in and out of the collector: numbers kept exactly as sent, nesting bounded, text only.

Bodies are parsed by the standard library, which keeps every integer exact (orjson, several times
faster, reads an integer beyond 64 bits as a float: a 30-digit id became 1.2345678901234568e+29).
Each float is checked as it is read: one a double cannot hold exactly (1e400, 1e-400, 30
significant digits) is refused (`bad_number`) rather than stored changed. NaN and Infinity are
not JSON and are refused too. Serialising, the hot path, is orjson's.

Nesting is bounded at 254 levels, as deep as orjson serialises, so that nothing after parsing can
exhaust a stack. The warehouse's own rule (32 levels, `too_deep`) is applied to each stamped event
(`screen.py`, `rules.py`).

Refusals carry the error codes of `pipelines/envelope.py` where the warehouse has one.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import orjson

from pipelines.envelope import MAX_DEPTH

# how deep orjson serialises; a parsed body is refused past it
MAX_NESTING = 254


class BadJson(ValueError):
    """The body is refused; `code` is the envelope's error code (or the collector's own)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _no_constants(name: str) -> Any:
    raise BadJson("not_json", f"{name} is not valid JSON")


def _exact_float(text: str) -> float:
    value = float(text)
    if repr(value) == text:  # the shortest form of its double, as nearly every client writes
        return value
    # equal as decimals: nothing beyond the double's precision or range was dropped
    if not math.isfinite(value) or Decimal(repr(value)) != Decimal(text):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise BadJson(
            "bad_number",
            f"the number {shown} cannot be stored exactly (beyond a double's range or "
            "precision); send it as a string",
        )
    return value


_DECODER = json.JSONDecoder(parse_float=_exact_float, parse_constant=_no_constants)


def _too_deep() -> BadJson:
    return BadJson("too_deep", f"objects/arrays nest deeper than {MAX_DEPTH} levels")


def _not_text(detail: str) -> BadJson:
    return BadJson("not_utf8", f"body holds a lone UTF-16 surrogate, which is not text: {detail}")


def _check_slowly(value: Any) -> None:
    """Nesting and text, for the rare body orjson cannot serialise for its integers."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise _not_text(str(exc)) from None
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_NESTING:
            raise _too_deep()
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)


def _check(value: Any) -> None:
    """At most MAX_NESTING levels and no lone surrogate (JSON can escape one; no UTF-8 holds it)."""
    try:
        orjson.dumps(value)  # in C, and it refuses both
    except TypeError as exc:
        message = str(exc)
        if "Recursion" in message:
            raise _too_deep() from None
        if "surrogates" in message:
            raise _not_text(message) from None
        _check_slowly(value)  # an integer beyond 64 bits stopped orjson before the rest


def loads(data: bytes) -> Any:
    """Parse a request body, numbers exact, or raise BadJson."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson("not_utf8", f"body is not valid UTF-8: {exc}") from None
    try:
        value = _DECODER.decode(text)
    except BadJson:
        raise
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        # an integer of thousands of digits is past Python's conversion limit
        code = "bad_number" if "integer string conversion" in str(exc) else "not_json"
        raise BadJson(code, str(exc)) from None
    _check(value)
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, the Kafka message value."""
    try:
        return orjson.dumps(value)
    except TypeError:
        pass  # an integer beyond 64 bits, kept exact by the standard library
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
