"""The collector: Segment's HTTP tracking API in front of the tracking topic.

A request is answered 200 only once the broker has acknowledged every one of its events (acks=all);
when that cannot happen within the produce deadline the answer is 503 with Retry-After, so a client
never drops an event that is not in Kafka. A request with any invalid event is refused whole (400 or
413) and nothing of it is produced: the client can fix and resend it without creating duplicates.
A valid request whose write key is over COLLECTOR_RATE_LIMIT is refused whole too (429 with
Retry-After, `ratelimit.py`).

The event loop only moves bytes: the body is read here, then parsed, checked, stamped and
serialised in worker threads (`accept.py`); events the screen cannot vouch for (`screen.py`) are
checked by the warehouse's own validator (`rules.py`); then the events are produced.
"""

from __future__ import annotations

import asyncio
import gc
import html
import ipaddress
import logging
import math
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from uvicorn.config import STARTUP_FAILURE
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from pipelines.collector.accept import Call, Stamped, prepare
from pipelines.collector.auth import key_from_authorization, source_for
from pipelines.collector.connections import ConnectionLimits, guarded_protocol
from pipelines.collector.cors import CorsAllowList
from pipelines.collector.counting import RequestMetrics
from pipelines.collector.intake import (
    MAX_LISTED_PROBLEMS,
    RequestRefused,
    is_gzip,
    read_body,
    unauthorised,
)
from pipelines.collector.metrics import Metrics
from pipelines.collector.producer import BrokerUnavailable, EventProducer
from pipelines.collector.ratelimit import RateLimiter
from pipelines.collector.rules import WarehouseRules
from pipelines.collector.validation import Problem
from pipelines.collector.workers import bind, supervise
from pipelines.config import CollectorSettings
from pipelines.tracking_plan import load_plan

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

FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def _is_local(request: Request) -> bool:
    """A request from this machine that did not come through a proxy."""
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
    return loopback and not any(h in request.headers for h in FORWARDING_HEADERS)


class Collector:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.producer = EventProducer(settings)
        self.metrics = Metrics(settings.metrics_dir)
        self.limiter = (
            RateLimiter(settings.rate_limit, settings.write_keys)
            if settings.rate_limit is not None
            else None
        )
        self.rules = WarehouseRules(settings.max_event_bytes)
        plan_file = settings.tracking_plan.plan_file
        # a bad plan raises PlanError here, before the collector serves anything
        self.plan = load_plan(plan_file) if plan_file is not None else None
        self.workers = ThreadPoolExecutor(settings.cpu_threads, thread_name_prefix="collector-cpu")
        self.tracker_js = (STATIC_DIR / "tracker.js").read_bytes()
        self.demo_html = (STATIC_DIR / "demo.html").read_text(encoding="utf-8")
        self._broker_ok = True

    def close(self) -> None:
        self.workers.shutdown(wait=False, cancel_futures=True)
        self.rules.close()

    # -- the tracking api

    async def ingest(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        if name not in ENDPOINTS:
            return JSONResponse(
                {"success": False, "error": f"no endpoint /v1/{name[:40]}", "code": "not_found"},
                404,
            )
        try:
            stamped = await self._accept(request, ENDPOINTS[name])
        except RequestRefused as refused:
            self.metrics.event_outcome("rejected", refused.source, refused.events)
            return JSONResponse(refused.body(), refused.status, headers=refused.headers)

        source, records = stamped.source, stamped.records
        # checked and counted on the event loop, between the last check and the first send: the
        # whole request is taken or refused, and nothing refused is produced
        if self.limiter is not None and (
            wait := self.limiter.take(stamped.write_key, len(records))
        ):
            self.metrics.rate_limited(source, len(records))
            return self._rate_limited(wait)
        started = time.perf_counter()
        try:
            await self.producer.send(records, headers=[("source", source.encode("utf-8"))])
        except BrokerUnavailable as exc:
            log.warning("answering 503 for %d event(s): %s", len(records), exc)
            self.metrics.event_outcome("failed", source, len(records))
            if self.limiter is not None:
                # not accepted: the client sends them again, and should not pay twice
                self.limiter.give_back(stamped.write_key, len(records))
            return JSONResponse(
                {"success": False, "error": "events not stored, retry later", "code": "broker"},
                503,
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        self.metrics.produce_latency(time.perf_counter() - started)
        self.metrics.event_outcome("accepted", source, len(records))
        if stamped.plan_warnings:  # stored all the same; the app's developers should know
            return JSONResponse(
                {
                    "success": True,
                    "plan_violation_count": len(stamped.plan_warnings),
                    "plan_violations": [
                        p.as_dict() for p in stamped.plan_warnings[:MAX_LISTED_PROBLEMS]
                    ],
                }
            )
        return JSONResponse({"success": True})

    def _rate_limited(self, wait_s: int) -> Response:
        return JSONResponse(
            {
                "success": False,
                "error": f"this write key is over its limit of {self.settings.rate_limit:g} "
                f"events per second; nothing of this request was stored, retry in {wait_s}s",
                "code": "rate_limited",
            },
            429,
            headers={"Retry-After": str(wait_s)},
        )

    async def _accept(self, request: Request, kind: str | None) -> Stamped:
        """Authenticate, read, check, stamp and serialise, or raise RequestRefused."""
        settings = self.settings
        header_key = key_from_authorization(request.headers.get("authorization"))
        # a wrong header key is refused before the body is read
        if (
            request.headers.get("authorization")
            and source_for(settings.write_keys, header_key) is None
        ):
            raise unauthorised()
        gzipped = is_gzip(request)
        batch = kind is None
        limit = settings.max_batch_bytes if batch else settings.max_event_bytes
        body = await read_body(
            request, limit, "a batch" if batch else "an event", settings.body_timeout_s
        )
        call = Call(
            kind=kind,
            body=body,
            gzipped=gzipped,
            header_key=header_key,
            client_ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
        loop = asyncio.get_running_loop()
        stamped = await loop.run_in_executor(self.workers, prepare, call, settings, self.plan)
        problems = await self._warehouse_problems(stamped)
        if problems:
            status = 413 if all(p.code == "too_large" for p in problems) else 400
            refused = RequestRefused(
                status, "invalid events", problems, events=len(stamped.records)
            )
            refused.source = stamped.source
            raise refused
        return stamped

    async def _warehouse_problems(self, stamped: Stamped) -> list[Problem]:
        """What the warehouse's validator says of the events the screen could not vouch for."""
        if not stamped.unsure:
            return []
        found = await self.rules.check([stamped.records[i] for i in stamped.unsure])
        # back to the events' places in the request
        return [replace(p, index=stamped.unsure[p.index or 0]) for p in found]

    # -- operations

    async def health(self, request: Request) -> Response:
        # terse for anyone; the broker's address and error are for /health/details
        problem = await self._broker_problem()
        if problem is None:
            return JSONResponse({"status": "ok"})
        return JSONResponse(
            {"status": "unavailable"},
            503,
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )

    async def health_details(self, request: Request) -> Response:
        if not _is_local(request):
            return JSONResponse(
                {
                    "success": False,
                    "error": "health details are served to this machine only (not via a proxy)",
                    "code": "forbidden",
                },
                403,
            )
        problem = await self._broker_problem()
        details: dict[str, Any] = {
            "status": "ok" if problem is None else "unavailable",
            "broker": "reachable" if problem is None else "unreachable",
            "topic": self.producer.topic,
        }
        if problem is not None:
            details["error"] = problem
        return JSONResponse(details, 200 if problem is None else 503)

    async def _broker_problem(self) -> str | None:
        problem = await self.producer.check()
        # the reason goes to the log (once per change), not to whoever asks /health
        if problem is not None and self._broker_ok:
            log.warning("health: broker unavailable: %s", problem)
        elif problem is None and not self._broker_ok:
            log.info("health: broker reachable again")
        self._broker_ok = problem is None
        return problem

    async def metrics_text(self, request: Request) -> Response:
        body, content_type = self.metrics.render(request.headers.get("accept"))
        # the content type is prometheus_client's for the format it wrote; set as is, not amended
        return Response(body, headers={"Content-Type": content_type, "Vary": "Accept"})

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
            collector.close()

    routes = [
        Route("/v1/{endpoint}", collector.ingest, methods=["POST"]),
        Route("/health", collector.health, methods=["GET"]),
        Route("/health/details", collector.health_details, methods=["GET"]),
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
    app.add_middleware(RequestMetrics, metrics=collector.metrics, endpoints=frozenset(ENDPOINTS))
    if settings.trusted_proxies:
        # outermost, so CORS, the metrics and the ip rule all see the client the proxy names;
        # uvicorn's own proxy_headers (which trusts loopback by default) stays off
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    return app


def uvicorn_config(
    settings: CollectorSettings, host: str, port: int, **overrides: Any
) -> uvicorn.Config:
    """The collector's app on uvicorn, with the connection guard and no forwarded-header trust
    beyond COLLECTOR_TRUSTED_PROXIES."""
    app = create_app(settings)
    collector: Collector = app.state.collector
    options: dict[str, Any] = {
        "http": guarded_protocol(
            ConnectionLimits.of(settings, collector.metrics.connection_closed)
        ),
        # the guard replaces uvicorn's keep-alive timer with its idle deadline (float seconds)
        "timeout_keep_alive": max(1, math.ceil(settings.idle_timeout_s)),
        # requests still waiting for acks finish before the producer is flushed and closed
        "timeout_graceful_shutdown": int(settings.shutdown_timeout_s),
        "proxy_headers": False,
        "access_log": False,
        "log_level": "info",
    }
    options.update(overrides)
    return uvicorn.Config(app, host=host, port=port, **options)


def _freeze_startup_heap() -> None:
    """Keep the objects made while starting (modules, the app) out of garbage collections.

    The collector allocates many objects per event (kafka-python makes a future per record), which
    at full load triggered a full collection about every 1.5 s; each walked the ~80k objects of the
    imported libraries and held the GIL for 80-100 ms (on a loaded 2-core machine), so every
    request in flight waited. Frozen, they are never walked again.
    """
    gc.collect()
    gc.freeze()


def run_worker(settings: CollectorSettings, host: str, port: int) -> None:
    """One of COLLECTOR_WORKERS processes (`workers.py`), on a socket of its own bound to the port
    its parent holds."""
    try:
        server = uvicorn.Server(uvicorn_config(settings, host, port))
        sock = bind(host, port)
    except Exception:
        log.exception("a collector worker could not start")
        sys.exit(STARTUP_FAILURE)
    _freeze_startup_heap()
    server.run(sockets=[sock])


def serve(host: str, port: int, settings: CollectorSettings | None = None) -> None:
    """Run the collector under uvicorn until SIGINT/SIGTERM, then drain in-flight events; with
    COLLECTOR_WORKERS above 1, that many processes on the one port."""
    settings = settings or CollectorSettings.from_env()
    if settings.workers > 1:
        supervise(settings, host, port, run_worker)
        return
    server = uvicorn.Server(uvicorn_config(settings, host, port))
    _freeze_startup_heap()
    server.run()
