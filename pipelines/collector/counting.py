"""Every answer counted by endpoint and status, a failure of the collector's own included.

Starlette answers an unhandled exception with 500 in its ServerErrorMiddleware, the outermost
layer, outside any middleware an app adds: a counter there never sees that 500. So this layer
answers it itself (JSON, counted, logged with its traceback) and the exception stops here.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.collector.metrics import Metrics

log = logging.getLogger(__name__)

PAGES = ("/health", "/health/details", "/metrics", "/tracker.js", "/demo", "/")


class RequestMetrics:
    """Counts every answer by endpoint and status, including refusals made by the CORS layer."""

    def __init__(self, app: ASGIApp, metrics: Metrics, endpoints: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = endpoints

    def endpoint(self, path: str) -> str:
        if path.startswith("/v1/") and path[4:] in self.endpoints:
            return path
        if path in PAGES:
            return path
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = self.endpoint(scope["path"])
        started = False

        async def counting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.metrics.request(endpoint, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            if started:
                raise  # too late for an answer: the server closes the connection
            failure = JSONResponse(
                {
                    "success": False,
                    "error": "the collector failed; nothing of this request was stored, retry",
                    "code": "internal",
                },
                500,
            )
            await failure(scope, receive, counting_send)
