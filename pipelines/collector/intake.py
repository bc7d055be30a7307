"""Reading a request body within Segment's size limits, before any of it is trusted."""

from __future__ import annotations

import zlib
from typing import Any

from starlette.requests import Request

from pipelines.collector.codec import loads
from pipelines.collector.validation import Problem


class RequestRefused(Exception):
    """Answer the request with `status` and a JSON body; nothing of it is produced."""

    def __init__(
        self,
        status: int,
        error: str,
        problems: list[Problem] | None = None,
        headers: dict[str, str] | None = None,
        events: int = 0,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.problems = problems or []
        self.headers = headers or {}
        # how many events the refused request carried, when known, for the metrics
        self.events = events
        self.source = "unknown"

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"success": False, "error": self.error}
        if self.problems:
            payload["errors"] = [p.as_dict() for p in self.problems]
        return payload


def too_large(limit: int, what: str) -> RequestRefused:
    return RequestRefused(413, f"{what} is larger than the limit of {limit} bytes")


def _gunzip(data: bytes, limit: int, what: str) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise RequestRefused(400, f"body is not valid gzip: {exc}") from None
    # a small gzip can inflate to gigabytes; stop at the limit rather than after
    if len(out) > limit or inflater.unconsumed_tail:
        raise too_large(limit, what)
    if not inflater.eof:
        raise RequestRefused(400, "body is truncated gzip")
    return out


async def read_body(request: Request, limit: int, what: str) -> bytes:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip"):
        raise RequestRefused(415, f"Content-Encoding {encoding!r} is not supported; use gzip")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit, what)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit, what)
        chunks.append(chunk)
    body = b"".join(chunks)
    return _gunzip(body, limit, what) if encoding == "gzip" else body


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestRefused(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise RequestRefused(400, "body must be a JSON object")
    return parsed
