"""Reading a request body within Segment's size limits and the body timeout, before any of it is
trusted, and the refusal every later step raises."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from starlette.requests import ClientDisconnect, Request

from pipelines.collector.validation import Problem

# a refusal lists this many problems and counts the rest: a reply never grows with the request
# (170,000 empty events once made a 37.5 MB answer)
MAX_LISTED_PROBLEMS = 20


class RequestRefused(Exception):
    """Answer the request with `status` and a JSON body; nothing of it is produced."""

    def __init__(
        self,
        status: int,
        error: str,
        problems: list[Problem] | None = None,
        headers: dict[str, str] | None = None,
        events: int = 0,
        code: str = "invalid_events",
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.problems = problems or []
        self.headers = headers or {}
        # how many events the refused request carried, when known, for the metrics
        self.events = events
        self.code = code
        self.source = "unknown"

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"success": False, "error": self.error, "code": self.code}
        if self.problems:
            payload["error_count"] = len(self.problems)
            payload["errors"] = [p.as_dict() for p in self.problems[:MAX_LISTED_PROBLEMS]]
        return payload


def unauthorised() -> RequestRefused:
    return RequestRefused(
        401,
        "missing or unknown write key; send it as the Basic auth user name or as writeKey",
        headers={"WWW-Authenticate": 'Basic realm="trackflow"'},
        code="unauthorised",
    )


def too_large(limit: int, what: str) -> RequestRefused:
    return RequestRefused(
        413, f"{what} is larger than the limit of {limit} bytes", code="too_large"
    )


def gunzip(data: bytes, limit: int, what: str) -> bytes:
    """The inflated body, every gzip member of it (RFC 1952 allows several), within `limit`."""
    parts: list[bytes] = []
    size = 0
    while True:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            raise RequestRefused(400, f"body is not valid gzip: {exc}", code="bad_gzip") from None
        size += len(out)
        # a small gzip can inflate to gigabytes; stop at the limit rather than after
        if size > limit or inflater.unconsumed_tail:
            raise too_large(limit, what)
        if not inflater.eof:
            raise RequestRefused(400, "body is truncated gzip", code="bad_gzip")
        parts.append(out)
        data = inflater.unused_data
        if not data:
            return b"".join(parts)


def is_gzip(request: Request) -> bool:
    """Whether the body is gzip; refuses (415) any other encoding before the body is read."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip"):
        raise RequestRefused(
            415,
            f"Content-Encoding {encoding[:40]!r} is not supported; use gzip",
            code="bad_encoding",
        )
    return encoding == "gzip"


async def read_body(request: Request, limit: int, what: str, timeout_s: float) -> bytes:
    """The body as sent (still compressed), at most `limit` bytes, within `timeout_s`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit, what)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit, what)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestRefused(
            408,
            f"the body did not arrive within {timeout_s:g}s",
            # the rest of a late body is not waited for: the connection ends with the answer
            headers={"Connection": "close"},
            code="timeout",
        ) from None
    except ClientDisconnect:
        # nobody reads the answer; the status is for the metrics (nginx's "client closed")
        raise RequestRefused(499, "the client closed the connection", code="disconnected") from None
    return b"".join(chunks)
