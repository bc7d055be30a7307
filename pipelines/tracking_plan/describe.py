"""One violation as a sentence that names the field and the rule, never the field's value.

Violations are kept beside the events but outlive an erasure of them, so a sentence says what
was expected (`properties.total is a string, not number`), not what a person sent.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

_SHOWN_CHARS = 80


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def location(part: str, error: ValidationError) -> str:
    """`properties.items[2].sku`: where in the event the rule failed."""
    where = part
    for step in error.absolute_path:
        where += f"[{step}]" if isinstance(step, int) else f".{step}"
    return where


def sentence(part: str, error: ValidationError) -> str:
    where = location(part, error)
    rule, wanted = error.validator, error.validator_value
    if rule == "type":
        wants = " or ".join(wanted) if isinstance(wanted, list) else str(wanted)
        return f"{where} is {json_type(error.instance)}, not {wants}"
    if rule == "required":  # one error per missing name; its message names only that name
        return f"{where}: {error.message}"
    if rule == "additionalProperties" and isinstance(error.instance, dict):
        declared = set((error.schema or {}).get("properties", {}))
        extra = sorted(k for k in error.instance if k not in declared)
        return f"{where} has properties the plan does not declare: {', '.join(extra)[:200]}"
    if rule == "enum":
        return f"{where} is not one of {_shown(wanted)}"
    if rule == "const":
        return f"{where} is not {_shown(wanted)}"
    return f"{where} fails {rule}: {_shown(wanted)}"


def unplanned_sentence(kind: str, name: str | None) -> str:
    what = {"track": "event", "page": "page", "screen": "screen"}.get(kind, kind)
    return f"{what} {name!r} is not in the tracking plan"
