"""The report in a real headless Chromium (Debian's), with the network blocked: every chart is
drawn, no console error, the funnel labels show the mart's counts; a screenshot is saved to
test-artifacts/report.png (and to docs/report.png with TRACKFLOW_UPDATE_SCREENSHOT=1)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from pipelines.report import ReportSummary, build_report
from pipelines.warehouse import DuckDBFile
from tests.report.conftest import REPO_ROOT, embedded

pytestmark = pytest.mark.timeout(300)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
README_SCREENSHOT = REPO_ROOT / "docs" / "report.png"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing; install it with 'apt-get install -y chromium'")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


class Opened:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []


@pytest.fixture
def open_report(chromium: Browser) -> Iterator:
    contexts = []

    def _open(path: Path) -> Opened:
        ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(ctx)
        page = ctx.new_page()
        opened = Opened(page)
        page.on("console", lambda m: m.type == "error" and opened.errors.append(m.text))
        page.on("pageerror", lambda e: opened.errors.append(str(e)))

        def block(route) -> None:  # type: ignore[no-untyped-def]
            opened.requests.append(route.request.url)
            route.abort()

        # anything but the file itself would need a network: refuse it and remember it
        page.route(lambda url: not url.startswith("file://"), block)
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready]", state="attached", timeout=60_000)
        return opened

    yield _open
    for ctx in contexts:
        ctx.close()


def test_every_chart_renders_without_errors(report: ReportSummary, open_report) -> None:
    data = embedded(report.path)
    opened = open_report(report.path)
    page = opened.page
    assert page.evaluate("document.body.dataset.ready") == "true", opened.errors
    assert opened.errors == []
    assert opened.requests == []
    assert data["charts"], "the demo data gives charts"
    for chart_id in data["charts"]:
        el = page.locator(f'.chart[data-chart="{chart_id}"]')
        assert el.count() == 1, chart_id
        assert el.get_attribute("data-rendered") == "true", chart_id
        # vega draws marks into an svg; an empty chart has none
        assert (
            el.locator(
                "svg.marks .mark-rect path, svg.marks .mark-line path, svg.marks .mark-symbol path"
            ).count()
            > 0
        ), chart_id

    # the funnel chart shows the step counts of the data (from the marts)
    main = next(f for f in data["funnels"] if f["entered"])
    texts = page.locator(f'.chart[data-chart="funnel:{main["name"]}"] svg text').all_text_contents()
    for step in main["steps"]:
        assert any(t.startswith(f"{step['reached']:,}") for t in texts), (step, texts)
    # tiles show the headline numbers
    sessions = page.locator('[data-metric="sessions"] .value').text_content()
    assert sessions == f"{data['headline']['sessions']:,}"

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    if os.environ.get("TRACKFLOW_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, README_SCREENSHOT)


def test_empty_warehouse_shows_no_data_yet(tmp_path: Path, open_report) -> None:
    summary = build_report(DuckDBFile(tmp_path / "nothing.duckdb"), tmp_path / "report.html")
    opened = open_report(summary.path)
    page = opened.page
    assert page.evaluate("document.body.dataset.ready") == "true"
    assert opened.errors == [] and opened.requests == []
    assert page.locator("#no-data h2").text_content() == "No data yet"
    assert "does not exist yet" in (page.locator("#no-data").text_content() or "")
    assert page.locator(".chart").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-empty.png"), full_page=True)
