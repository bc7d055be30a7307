"""Write keys as Segment takes them: Basic auth with the key as user name, or writeKey in the body.

The body form exists for browsers: a beacon cannot set headers, and a `text/plain` POST without an
Authorization header needs no CORS preflight.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any


def key_from_authorization(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


def key_from_body(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        return body["writeKey"] or None
    return None


def source_for(write_keys: Mapping[str, str], key: str | None) -> str | None:
    """The source name a write key belongs to, or None when the key is missing or unknown."""
    return write_keys.get(key) if key else None
