"""The tracking plan file: read it, refuse a bad one in one line, compile its schemas once.

A plan is YAML. `events` lists track events by name, `pages` and `screens` list page and screen
calls by name; each entry holds a JSON Schema for the event's `properties` and optionally for
its `traits` and `context`, and may set its own `max_violation_rate` (the Dagster check's
threshold; the plan-wide one is the default). `unplanned_events` / `unplanned_pages` /
`unplanned_screens` say what happens to calls the plan does not list: `allow` (nothing) or
`flag` (one violation each, never blocked). The plan's version is a hash of the file's bytes,
recorded with every violation, so a violation always names the plan that found it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError, best_match  # type: ignore[import-untyped]
from jsonschema.protocols import Validator  # type: ignore[import-untyped]
from jsonschema.validators import validator_for  # type: ignore[import-untyped]

# the envelope parts a plan may hold a schema for
PARTS: Final = ("properties", "traits", "context")
# plan section -> the envelope type it lists
SECTIONS: Final = {"events": "track", "pages": "page", "screens": "screen"}
UNPLANNED_KEYS: Final = {
    "track": "unplanned_events",
    "page": "unplanned_pages",
    "screen": "unplanned_screens",
}
DEFAULT_MAX_VIOLATION_RATE: Final = 0.01

Unplanned = Literal["allow", "flag"]

_RATE: Final = {"type": "number", "minimum": 0, "maximum": 1}
_ENTRY: Final = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string"},
        "max_violation_rate": _RATE,
        **{part: {"type": ["object", "boolean"]} for part in PARTS},
    },
}
# the shape of the plan file itself, checked with the same library as the events
PLAN_FILE_SCHEMA: Final = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{key: {"enum": ["allow", "flag"]} for key in UNPLANNED_KEYS.values()},
        "max_violation_rate": _RATE,
        "description": {"type": "string"},
        **{section: {"type": "object", "additionalProperties": _ENTRY} for section in SECTIONS},
    },
}


class PlanError(ValueError):
    """The plan cannot be used; the message is one line naming the file and the place."""


@dataclass(frozen=True)
class PlannedEvent:
    kind: str  # track | page | screen
    name: str
    # (part, compiled validator) for each part the plan holds a schema for
    validators: tuple[tuple[str, Validator], ...]
    max_violation_rate: float


@dataclass(frozen=True)
class TrackingPlan:
    source: str  # where it was read from, for messages
    version: str  # a hash of the file's bytes
    entries: dict[tuple[str, str], PlannedEvent]
    unplanned: dict[str, Unplanned]  # envelope type -> allow | flag
    max_violation_rate: float
    document: dict[str, Any] = field(repr=False)

    def lookup(self, kind: str, name: str | None) -> PlannedEvent | None:
        return self.entries.get((kind, name or ""))

    def flags_unplanned(self, kind: str) -> bool:
        return self.unplanned.get(kind) == "flag"

    def threshold(self, kind: str, name: str) -> float:
        entry = self.lookup(kind, name)
        return entry.max_violation_rate if entry else self.max_violation_rate


def _where(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path)


def _one_line(source: str, where: str, message: str) -> PlanError:
    flat = " ".join(message.split())
    return PlanError(f"TRACKING_PLAN {source}: {where + ': ' if where else ''}{flat}")


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise _one_line(source, where, f"not valid YAML: {problem}") from None


def _compile(schema: Any, where: str, source: str) -> Validator:
    """A validator for one schema (its own `$schema`, else 2020-12), or the schema's first fault."""
    cls = validator_for(schema, default=Draft202012Validator)
    error = best_match(cls(cls.META_SCHEMA).iter_errors(schema))
    if error is not None:
        inner = _where(error.absolute_path)
        raise _one_line(source, f"{where}.{inner}" if inner else where, error.message)
    return cls(schema)


def parse_plan(text: str, source: str = "<plan>") -> TrackingPlan:
    """A compiled plan from YAML text, or PlanError."""
    document = _parse_yaml(text, source)
    if document is None:
        document = {}
    error: ValidationError | None = best_match(
        Draft202012Validator(PLAN_FILE_SCHEMA).iter_errors(document)
    )
    if error is not None:
        raise _one_line(source, _where(error.absolute_path), error.message)
    default_rate = float(document.get("max_violation_rate", DEFAULT_MAX_VIOLATION_RATE))
    entries: dict[tuple[str, str], PlannedEvent] = {}
    for section, kind in SECTIONS.items():
        for name, entry in (document.get(section) or {}).items():
            validators = tuple(
                (part, _compile(entry[part], f"{section}.{name}.{part}", source))
                for part in PARTS
                if part in entry
            )
            rate = float(entry.get("max_violation_rate", default_rate))
            entries[(kind, str(name))] = PlannedEvent(kind, str(name), validators, rate)
    unplanned: dict[str, Unplanned] = {
        kind: document.get(key, "allow") for kind, key in UNPLANNED_KEYS.items()
    }
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return TrackingPlan(source, version, entries, unplanned, default_rate, document)


def load_plan(path: Path) -> TrackingPlan:
    """Read and compile the plan at `path`, or PlanError (missing file, bad YAML, bad schema)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _one_line(str(path), "", f"cannot be read ({reason})") from None
    return parse_plan(text, str(path))
