"""A real headless Chromium (Debian's) with the tracker: the whole path from a click to DuckDB,
a page hidden mid-batch (beacon), a collector outage during a click, a reload while offline, a
write key over its rate limit (429: back off for Retry-After, keep the events, send them once)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from pipelines.broker import EmbeddedBroker, free_port
from pipelines.collector.server import STATIC_DIR
from pipelines.config import KafkaSettings
from pipelines.ingest import ingest
from pipelines.warehouse import Warehouse
from tests.collector.conftest import collector_settings
from tests.collector.helpers import (
    WEB_KEY,
    LiveCollector,
    ThreadedServer,
    drain,
    events,
    wait_for_events,
)
from tests.helpers import query, scalar

pytestmark = pytest.mark.timeout(120)

CHROMIUM = "/usr/bin/chromium"
SITE_PAGE = """<!doctype html>
<html><head><title>Shop</title>
<script src="TRACKER" data-write-key="KEY" data-host="HOST" data-flush-interval="FLUSH"></script>
<script>trackflow.init({retryBase: 200, retryMax: 1000});</script>
</head><body>
<button id="myButton">Buy</button>
<script>
document.getElementById('myButton').addEventListener('click',
  function () { trackflow.track('button_click', { buttonId: 'myButton' }); });
</script>
</body></html>"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing; install it with 'apt-get install -y chromium'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    ctx = chromium.new_context()
    yield ctx
    ctx.close()


class Shop(ThreadedServer):
    """Someone's site embedding the tracker, on its own origin. Its tracker.js comes from the
    collector, or (own_tracker) from the site itself, as a page cached or served by a CDN still
    loads while the collector is down."""

    def __init__(self, collector_url: str, flush_ms: int, own_tracker: bool) -> None:
        super().__init__()
        tracker = f"{self.url}/tracker.js" if own_tracker else f"{collector_url}/tracker.js"
        self.html = (
            SITE_PAGE.replace("TRACKER", tracker)
            .replace("KEY", WEB_KEY)
            .replace("HOST", collector_url)
            .replace("FLUSH", str(flush_ms))
        )

    def app(self) -> ASGIApp:
        script = (STATIC_DIR / "tracker.js").read_text()

        async def shop(request: Request) -> StarletteResponse:
            return HTMLResponse(self.html)

        async def tracker(request: Request) -> StarletteResponse:
            return StarletteResponse(script, media_type="application/javascript")

        return Starlette(routes=[Route("/shop", shop), Route("/tracker.js", tracker)])


def queued(page: Page) -> int:
    return int(
        page.evaluate(
            """() => {
              const tab = JSON.parse(sessionStorage.getItem('trackflow:tab'));
              const saved = JSON.parse(localStorage.getItem('trackflow:q:' + tab));
              return saved ? saved.q.length : 0;
            }"""
        )
    )


def clicks(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in found if e.get("event") == "button_click"]


def test_demo_page_click_reaches_duckdb(
    context: BrowserContext, broker: EmbeddedBroker, topic: str, warehouse: Warehouse
) -> None:
    settings = collector_settings(broker.bootstrap, topic, demo_page=True)
    with LiveCollector(settings) as live:
        page = context.new_page()
        page.goto(f"{live.url}/demo")
        page.click("#myButton")
        anonymous_id = page.evaluate("trackflow.anonymousId()")
        found = wait_for_events(broker.bootstrap, topic, lambda es: len(clicks(es)) == 1)

    [click] = clicks(found)
    assert click["type"] == "track"
    assert click["properties"] == {"buttonId": "myButton"}
    assert click["anonymousId"] == anonymous_id
    assert click["context"]["page"]["path"] == "/demo"
    assert click["context"]["library"]["name"] == "trackflow.js"
    assert click["context"]["ip"] == "127.0.0.0"
    assert "HeadlessChrome" in click["context"]["userAgent"]
    assert click["sentAt"] and click["receivedAt"] and click["messageId"]
    [view] = [e for e in found if e["type"] == "page"]
    assert view["properties"]["title"] == "trackflow demo"

    result = ingest(KafkaSettings(bootstrap_servers=broker.bootstrap, topics=(topic,)), warehouse)
    assert result.rejected == 0
    rows = query(
        warehouse,
        """
        select message_id, anonymous_id, json_extract_string(properties, '$.buttonId')
        from raw.tracking_events where event = 'button_click'
        """,
    )
    assert rows == [(click["messageId"], anonymous_id, "myButton")]


@pytest.fixture
def collector_port() -> int:
    return free_port()


@pytest.fixture
def shop_factory(collector_port: int) -> Iterator[Callable[..., Shop]]:
    shops: list[Shop] = []

    def make(flush_ms: int, own_tracker: bool) -> Shop:
        shops.append(Shop(f"http://127.0.0.1:{collector_port}", flush_ms, own_tracker).start())
        return shops[-1]

    yield make
    for shop in shops:
        shop.stop()


def test_page_hidden_mid_batch_delivers_by_beacon(
    context: BrowserContext,
    broker: EmbeddedBroker,
    topic: str,
    collector_port: int,
    shop_factory: Callable[..., Shop],
) -> None:
    # a batch waits a minute: only hiding the page can send it sooner
    shop = shop_factory(flush_ms=60_000, own_tracker=False)
    settings = collector_settings(broker.bootstrap, topic, cors_origins=(shop.url,))
    beacons: list[str] = []
    context.on("request", lambda r: beacons.append(r.url) if r.resource_type == "ping" else None)
    with LiveCollector(settings, collector_port) as live:
        page = context.new_page()
        page.goto(f"{shop.url}/shop?utm_source=newsletter&utm_campaign=spring")
        page.click("#myButton")
        assert queued(page) == 2
        assert drain(broker.bootstrap, topic) == []

        # the tab goes to the background
        page.evaluate(
            """() => {
              Object.defineProperty(document, 'visibilityState', {value: 'hidden'});
              document.dispatchEvent(new Event('visibilitychange'));
            }"""
        )
        found = wait_for_events(broker.bootstrap, topic, lambda es: len(es) == 2)
        assert len(found) == 2 and queued(page) == 0
        assert beacons and beacons[0] == f"{live.url}/v1/batch"
        [click] = clicks(found)
        assert click["context"]["campaign"] == {"source": "newsletter", "name": "spring"}

        # and the page is left with a click still in its batch
        page.click("#myButton")
        page.goto("about:blank")
        found = wait_for_events(broker.bootstrap, topic, lambda es: len(clicks(es)) == 2)
    # delivered within seconds though a batch may wait a minute: by the beacon sent on pagehide
    # (playwright does not report requests of a document being unloaded, so no count here)
    assert len(clicks(found)) == 2
    assert len({e["messageId"] for e in found}) == len(found) == 3


def test_collector_outage_during_click_delivers_once_after_it_returns(
    context: BrowserContext,
    broker: EmbeddedBroker,
    topic: str,
    warehouse: Warehouse,
    collector_port: int,
    shop_factory: Callable[..., Shop],
) -> None:
    shop = shop_factory(flush_ms=200, own_tracker=True)
    settings = collector_settings(broker.bootstrap, topic, cors_origins=(shop.url,))
    failed: list[str] = []
    context.on("requestfailed", lambda r: failed.append(r.url))
    live = LiveCollector(settings, collector_port).start()
    try:
        page = context.new_page()
        page.goto(f"{shop.url}/shop")
        wait_for_events(broker.bootstrap, topic, lambda es: len(es) == 1)

        live.stop()
        page.click("#myButton")
        deadline = time.monotonic() + 10
        while len(failed) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert len(failed) >= 2, "the tracker should have tried and retried meanwhile"
        assert queued(page) == 1

        live = LiveCollector(settings, collector_port).start()
        wait_for_events(broker.bootstrap, topic, lambda es: len(clicks(es)) >= 1)
        page.wait_for_timeout(1500)  # time for any duplicate to show up
        assert queued(page) == 0
    finally:
        live.stop()

    found = events(drain(broker.bootstrap, topic))
    assert len(clicks(found)) == 1
    result = ingest(KafkaSettings(bootstrap_servers=broker.bootstrap, topics=(topic,)), warehouse)
    assert (result.loaded, result.rejected) == (2, 0)
    n = scalar(warehouse, "select count(*) from raw.tracking_events where event = 'button_click'")
    assert n == 1


def test_offline_queue_survives_a_reload(
    context: BrowserContext,
    broker: EmbeddedBroker,
    topic: str,
    collector_port: int,
    shop_factory: Callable[..., Shop],
) -> None:
    shop = shop_factory(flush_ms=200, own_tracker=True)
    settings = collector_settings(broker.bootstrap, topic, cors_origins=(shop.url,))
    page = context.new_page()
    # the collector is not running: the page view and the click wait in the queue
    page.goto(f"{shop.url}/shop")
    page.click("#myButton")
    page.wait_for_timeout(500)
    assert queued(page) == 2
    page.reload()
    assert queued(page) == 3
    with LiveCollector(settings, collector_port):
        wait_for_events(broker.bootstrap, topic, lambda es: len(es) >= 3)
        page.wait_for_timeout(1000)
        assert queued(page) == 0
    found = events(drain(broker.bootstrap, topic))
    assert sorted(e["type"] for e in found) == ["page", "page", "track"]
    assert len({e["messageId"] for e in found}) == 3
    assert len({e["anonymousId"] for e in found}) == 1


def test_tracker_backs_off_on_429_for_retry_after_and_delivers_once(
    context: BrowserContext,
    broker: EmbeddedBroker,
    topic: str,
    collector_port: int,
    shop_factory: Callable[..., Shop],
) -> None:
    # one event per 4 s for the site's write key: the page view takes it, the click is refused
    shop = shop_factory(flush_ms=200, own_tracker=False)
    settings = collector_settings(
        broker.bootstrap, topic, cors_origins=(shop.url,), rate_limit=0.25
    )
    # every answer to a batch: status, Retry-After as the page's script could read it, and when
    # the browser sent the request (its own clock, so the test's load does not blur the gap)
    answers: list[tuple[int, str | None, float]] = []

    def on_response(response: Response) -> None:
        if response.url.endswith("/v1/batch"):
            answers.append(
                (
                    response.status,
                    response.headers.get("retry-after"),
                    response.request.timing["startTime"],
                )
            )

    def until(n: int, page: Page) -> None:
        deadline = time.monotonic() + 30
        while len(answers) < n:
            assert time.monotonic() < deadline, answers
            page.wait_for_timeout(50)

    context.on("response", on_response)
    with LiveCollector(settings, collector_port):
        page = context.new_page()
        page.goto(f"{shop.url}/shop")
        until(1, page)
        assert answers[0][0] == 200

        page.click("#myButton")
        until(2, page)
        status, retry_after, refused_at = answers[1]
        assert status == 429 and retry_after is not None, answers
        wait_s = int(retry_after)
        assert wait_s >= 2
        assert queued(page) == 1  # kept, not dropped
        page.click("#myButton")  # joins the queue; nothing goes out before Retry-After
        assert queued(page) == 2
        wait_for_events(broker.bootstrap, topic, lambda es: len(clicks(es)) == 2)
        until(3, page)
        page.wait_for_timeout(500)  # time for any further request to show up
        assert queued(page) == 0

    # one retry, both clicks in it, sent no sooner than the collector asked
    assert [a[0] for a in answers] == [200, 429, 200]
    assert answers[2][2] - refused_at >= wait_s * 1000
    stored = events(drain(broker.bootstrap, topic))
    assert len(clicks(stored)) == 2 and len(stored) == 3
    assert len({e["messageId"] for e in stored}) == 3


ASYNC_PAGE = """<!doctype html><html><head>
<script>window.trackflow = window.trackflow || {q: []};
['track', 'identify', 'page'].forEach(function (m) {
  trackflow[m] = trackflow[m] || function () { trackflow.q.push([m, arguments]); };
});</script>
<script async src="/tracker.js" data-write-key="KEY" data-flush-interval="300"></script>
<script>trackflow.identify('user-9', {plan: 'pro'}); trackflow.track('early', {a: 1});</script>
</head><body></body></html>"""


def test_async_snippet_replays_calls_made_before_load(
    context: BrowserContext, broker: EmbeddedBroker, topic: str
) -> None:
    settings = collector_settings(broker.bootstrap, topic)
    with LiveCollector(settings) as live:
        html = ASYNC_PAGE.replace("KEY", WEB_KEY)
        context.route(f"{live.url}/async", lambda r: r.fulfill(body=html, content_type="text/html"))
        page = context.new_page()
        page.goto(f"{live.url}/async")
        found = wait_for_events(broker.bootstrap, topic, lambda es: len(es) >= 3)
    assert [e["type"] for e in found] == ["identify", "track", "page"]
    assert all(e["userId"] == "user-9" for e in found)
    assert found[0]["traits"] == {"plan": "pro"}
