"""The collector: Segment's HTTP tracking API in front of the tracking topic.

A request is answered 200 only once the broker has acknowledged every one of its events (acks=all);
when that cannot happen within the produce deadline the answer is 503 with Retry-After, so a client
never drops an event that is not in Kafka. A request with any invalid event is refused whole (400 or
413) and nothing of it is produced: the client can fix and resend it without creating duplicates.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.collector.auth import key_from_authorization, key_from_body, source_for
from pipelines.collector.codec import dumps
from pipelines.collector.cors import CorsAllowList
from pipelines.collector.enrich import enrich, partition_key, utc_now_iso
from pipelines.collector.intake import RequestRefused, parse_object, read_body
from pipelines.collector.metrics import Metrics
from pipelines.collector.producer import BrokerUnavailable, EventProducer, Record
from pipelines.collector.validation import Problem, validate_event
from pipelines.config import CollectorSettings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

# segment's endpoints, their one-letter aliases (analytics.js) and the event type each implies;
# None marks the batch endpoints
ENDPOINTS: dict[str, str | None] = {
    "track": "track",
    "page": "page",
    "screen": "screen",
    "identify": "identify",
    "group": "group",
    "alias": "alias",
    "batch": None,
    "import": None,
    "t": "track",
    "p": "page",
    "s": "screen",
    "i": "identify",
    "g": "group",
    "a": "alias",
    "b": None,
}


class Collector:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.producer = EventProducer(settings)
        self.metrics = Metrics()
        self.tracker_js = (STATIC_DIR / "tracker.js").read_bytes()
        self.demo_html = (STATIC_DIR / "demo.html").read_text(encoding="utf-8")

    # -- the tracking api

    async def ingest(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        if name not in ENDPOINTS:
            return JSONResponse({"success": False, "error": f"no endpoint /v1/{name}"}, 404)
        kind = ENDPOINTS[name]
        try:
            source, records = await self._accept(request, kind)
        except RequestRefused as refused:
            self.metrics.event_outcome("rejected", refused.source, refused.events)
            return JSONResponse(refused.body(), refused.status, headers=refused.headers)

        started = time.perf_counter()
        try:
            await self.producer.send(records, headers=[("source", source.encode("utf-8"))])
        except BrokerUnavailable as exc:
            log.warning("answering 503 for %d event(s): %s", len(records), exc)
            self.metrics.event_outcome("failed", source, len(records))
            return JSONResponse(
                {"success": False, "error": f"events not stored, retry later: {exc}"},
                503,
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        self.metrics.produce_latency(time.perf_counter() - started)
        self.metrics.event_outcome("accepted", source, len(records))
        return JSONResponse({"success": True})

    async def _accept(self, request: Request, kind: str | None) -> tuple[str, list[Record]]:
        """Authenticate, read, validate, stamp and serialise, or raise RequestRefused."""
        settings = self.settings
        header_key = key_from_authorization(request.headers.get("authorization"))
        unauthorised = RequestRefused(
            401,
            "missing or unknown write key; send it as the Basic auth user name or as writeKey",
            headers={"WWW-Authenticate": 'Basic realm="trackflow"'},
        )
        # a wrong header key is refused before the body is read
        if (
            request.headers.get("authorization")
            and source_for(settings.write_keys, header_key) is None
        ):
            raise unauthorised

        batch = kind is None
        limit = settings.max_batch_bytes if batch else settings.max_event_bytes
        body = parse_object(await read_body(request, limit, "a batch" if batch else "an event"))
        source = source_for(settings.write_keys, header_key or key_from_body(body))
        if source is None:
            raise unauthorised
        try:
            return source, self._events(request, body, kind)
        except RequestRefused as refused:
            refused.source = source
            raise

    def _events(self, request: Request, body: dict[str, Any], kind: str | None) -> list[Record]:
        """Validate, stamp and serialise the events of a request, or refuse it whole."""
        settings = self.settings
        batch = kind is None
        if batch:
            items = body.get("batch")
            if not isinstance(items, list) or not items:
                raise RequestRefused(
                    400,
                    "invalid batch",
                    [Problem(None, "batch", "batch must be a non-empty array")],
                )
            batch_context = body.get("context")
            if batch_context is not None and not isinstance(batch_context, dict):
                raise RequestRefused(
                    400,
                    "invalid batch",
                    [Problem(None, "context", "context must be a JSON object")],
                    events=len(items),
                )
            sent_at = body.get("sentAt") if isinstance(body.get("sentAt"), str) else None
        else:
            body["type"] = kind
            items, batch_context, sent_at = [body], None, None

        problems = [p for i, item in enumerate(items) for p in validate_event(item, i)]
        if problems:
            raise RequestRefused(400, "invalid events", problems, events=len(items))

        received_at = utc_now_iso()
        client_ip = request.client.host if request.client else None
        user_agent = request.headers.get("user-agent")
        records: list[Record] = []
        oversized: list[Problem] = []
        for i, item in enumerate(items):
            event = enrich(
                item,
                received_at=received_at,
                client_ip=client_ip,
                user_agent=user_agent,
                ip_mode=settings.ip_mode,
                batch_context=batch_context,
                batch_sent_at=sent_at,
            )
            value = dumps(event)
            # the limit holds for the message as stored, the size the warehouse checks too
            if len(value) > settings.max_event_bytes:
                limit = settings.max_event_bytes
                oversized.append(Problem(i, "", f"event is larger than the limit of {limit} bytes"))
            records.append((partition_key(event), value))
        if oversized:
            raise RequestRefused(413, "events too large", oversized, events=len(items))
        return records

    # -- operations

    async def health(self, request: Request) -> Response:
        problem = await self.producer.check()
        if problem is None:
            return JSONResponse(
                {"status": "ok", "broker": "reachable", "topic": self.producer.topic}
            )
        return JSONResponse(
            {"status": "unavailable", "broker": "unreachable", "error": problem},
            503,
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )

    async def metrics_text(self, request: Request) -> Response:
        return PlainTextResponse(
            self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    # -- static

    async def tracker(self, request: Request) -> Response:
        return Response(
            self.tracker_js,
            media_type="application/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    async def demo(self, request: Request) -> Response:
        # the demo page carries the first source's write key, as any page using the tracker would
        key = next(iter(self.settings.write_keys))
        page = self.demo_html.replace("{{WRITE_KEY}}", html.escape(key, quote=True))
        return Response(page, media_type="text/html; charset=utf-8")

    async def root(self, request: Request) -> Response:
        return RedirectResponse("/demo")


class RequestMetrics:
    """Counts every answer by endpoint and status, including refusals made by the CORS layer."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    @staticmethod
    def endpoint(path: str) -> str:
        if path.startswith("/v1/") and path[4:] in ENDPOINTS:
            return path
        if path in ("/health", "/metrics", "/tracker.js", "/demo", "/"):
            return path
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = self.endpoint(scope["path"])

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.request(endpoint, message["status"])
            await send(message)

        await self.app(scope, receive, counting_send)


def create_app(settings: CollectorSettings | None = None) -> Starlette:
    settings = settings or CollectorSettings.from_env()
    collector = Collector(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await collector.producer.start()
        try:
            yield
        finally:
            # uvicorn has waited for in-flight requests; what the producer still holds goes out now
            await collector.producer.close(settings.shutdown_timeout_s)

    routes = [
        Route("/v1/{endpoint}", collector.ingest, methods=["POST"]),
        Route("/health", collector.health, methods=["GET"]),
        Route("/metrics", collector.metrics_text, methods=["GET"]),
        Route("/tracker.js", collector.tracker, methods=["GET"]),
    ]
    if settings.demo_page:
        routes += [
            Route("/demo", collector.demo, methods=["GET"]),
            Route("/", collector.root, methods=["GET"]),
        ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.collector = collector
    app.add_middleware(CorsAllowList, origins=settings.cors_origins)
    app.add_middleware(RequestMetrics, metrics=collector.metrics)
    return app


def serve(host: str, port: int, settings: CollectorSettings | None = None) -> None:
    """Run the collector under uvicorn until SIGINT/SIGTERM, then drain in-flight events."""
    settings = settings or CollectorSettings.from_env()
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        # requests still waiting for acks finish before the producer is flushed and closed
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        proxy_headers=True,
        access_log=False,
        log_level="info",
    )
    uvicorn.Server(config).run()
