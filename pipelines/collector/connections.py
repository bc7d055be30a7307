"""Deadlines a slow client cannot stretch, and a cap on open connections, at the HTTP protocol.

uvicorn's only connection timer is keep-alive, armed after a response and disarmed by any byte: a
connection that sends nothing, stops mid-headers or sends a byte every few seconds is kept for
ever, and `limit_concurrency` answers 503 only once a request's headers are in. So the protocol
uvicorn runs (httptools, what it picks when installed) gets one timer per phase of a connection:

- idle: nothing under way (fresh, or kept alive after a response): closed after the idle timeout;
- headers: from a request's first byte until its headers are complete: 408 and closed;
- drain: answered early (401, 404, 413...) while the client still sends a body no one reads: closed
  after the body timeout.

While the app has the request there is none here: it reads the body within the body timeout itself
(`intake.read_body`, a 408 the client can read) and waits for the broker within the produce timeout.
A connection over the cap is answered 503 and closed before anything of it is read. httptools sets
no bound on the size of a request's headers (40 MB were taken in one test), so the guard does: a
request line and headers over MAX_HEADER_BYTES are answered 431 and the connection closed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from pipelines.config import CollectorSettings

# the request line and headers together; browsers keep all cookies of a site within ~16 KB
MAX_HEADER_BYTES = 64 * 1024


def _canned(status: str, error: str, code: str, extra: str = "") -> bytes:
    """A whole response written straight to the socket: nothing of the request is needed."""
    body = json.dumps({"success": False, "error": error, "code": code}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass(frozen=True)
class ConnectionLimits:
    idle_timeout_s: float
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    retry_after_s: int
    # told why the guard closed a connection (metrics)
    on_close: Callable[[str], None] = lambda reason: None

    @classmethod
    def of(cls, settings: CollectorSettings, on_close: Callable[[str], None]) -> ConnectionLimits:
        return cls(
            idle_timeout_s=settings.idle_timeout_s,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_connections=settings.max_connections,
            retry_after_s=settings.retry_after_s,
            on_close=on_close,
        )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None
        self._in_headers = False
        self._in_body = False
        self._header_bytes = 0

    # -- the timers

    def _arm(self, phase: str | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is None or self.transport.is_closing():
            return
        limits = self.limits
        seconds = {
            "idle": limits.idle_timeout_s,
            "headers": limits.header_timeout_s,
            "drain": limits.body_timeout_s,
        }[phase]
        self._deadline = self.loop.call_later(seconds, self._expire, phase)

    def _expire(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if phase == "headers":
            seconds = self.limits.header_timeout_s
            self.transport.write(
                _canned(
                    "408 Request Timeout",
                    f"the request headers did not arrive within {seconds:g}s",
                    "timeout",
                )
            )
        self.limits.on_close({"idle": "idle", "headers": "header_timeout"}.get(phase, "drain"))
        self.transport.close()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # not counted as a connection; connection_lost only needs the transport
            self.transport = transport
            transport.write(
                _canned(
                    "503 Service Unavailable",
                    "too many open connections; retry later",
                    "too_many_connections",
                    f"retry-after: {self.limits.retry_after_s}\r\n",
                )
            )
            transport.close()
            self.limits.on_close("over_limit")
            return
        super().connection_made(transport)
        self._arm("idle")

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # bytes that are not a body being read count towards the headers of the next request
        if not self._in_body:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._in_headers
            and self._header_bytes > MAX_HEADER_BYTES
            and not self.transport.is_closing()
        ):
            self._arm(None)
            self.transport.write(
                _canned(
                    "431 Request Header Fields Too Large",
                    f"the request line and headers exceed {MAX_HEADER_BYTES} bytes",
                    "too_large",
                )
            )
            self.limits.on_close("header_too_large")
            self.transport.close()

    # -- httptools parser callbacks (uvicorn's, extended)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._arm("headers")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._in_body = True
        self._header_bytes = 0
        self._arm(None)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._header_bytes = 0
        if self._phase == "drain":
            self._arm("idle")  # the unread body is over; the connection may serve another request
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if self.transport.is_closing():
            return
        # uvicorn armed its keep-alive timer; the idle phase below is that timer, in float seconds
        self._unset_keepalive_if_required()
        if self._in_headers or pipelined:
            return  # the next request's own phase holds
        self._arm("drain" if self._in_body else "idle")


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn is given (`http=`), bound to one server's limits."""

    class CollectorProtocol(GuardedHttpToolsProtocol):
        pass

    CollectorProtocol.limits = limits
    return CollectorProtocol
