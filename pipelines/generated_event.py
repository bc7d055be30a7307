"""The generated event record: what the synthetic generator emits and every truth module reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Event:
    """One generated event as it truly happened (the truth is computed from these)."""

    message_id: str
    anonymous_id: str
    user_id: str | None
    type: str
    at: datetime  # true time
    received_at: datetime
    is_bot: bool
    body: dict[str, Any] = field(default_factory=dict)
    # the traffic channel the event carries (see pipelines.generator._Builder.emit)
    channel: str = "direct"
