"""The API's reference pages in a real headless Chromium (Debian's, driven by Playwright) on a
closed network: every request to anywhere but the service is refused, and `/docs` (Swagger UI)
and `/redoc` (ReDoc) still render the API's operations, from the files the package serves,
with no script error and no Content-Security-Policy violation. Screenshots go to
`test-artifacts/docs/`."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Route, expect

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from tests.browsers import needs_chromium
from tests.live import LiveServer

ARTIFACTS = Path(os.environ.get("GRIDWORK_TEST_ARTIFACTS", "test-artifacts")) / "docs"
# ReDoc's sidebar shows Redocly's logo from their CDN: the policy blocks it (the page's only
# violation), and ReDoc then leaves the logo out.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"

expect.set_options(timeout=15_000)  # the bundles are large for a busy 2-core machine
pytestmark = needs_chromium


@pytest.fixture
def live(world: Database, settings: Settings, clock: FrozenClock) -> Iterator[LiveServer]:
    server = LiveServer(settings, clock)
    yield server
    server.stop()


class ClosedNetwork:
    """A page that reaches the service and nothing else, and what went wrong in it."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.refused: list[str] = []  # requests to elsewhere
        self.errors: list[str] = []  # script errors and CSP violations

    async def open(self, browser: Browser, path: str) -> Page:
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        await page.route("**/*", self._only_the_service)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        await page.goto(f"{self.live.url}{path}")
        return page

    async def _only_the_service(self, route: Route) -> None:
        if route.request.url.startswith(f"{self.live.url}/"):
            await route.continue_()
        else:
            self.refused.append(route.request.url)
            await route.abort("internetdisconnected")

    def _console(self, message: object) -> None:
        text = getattr(message, "text", "")
        if "Content Security Policy" in text and REDOC_LOGO not in text:
            self.errors.append(text)


@pytest.fixture
def network(live: LiveServer) -> Iterator[ClosedNetwork]:
    network = ClosedNetwork(live)
    yield network
    assert network.errors == []
    assert network.refused == []  # nothing asked of the outside world


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def test_swagger_ui_renders_the_operations_with_no_internet(
    browser: Browser, network: ClosedNetwork
) -> None:
    page = await network.open(browser, "/docs")
    await expect(page.locator(".information-container .title")).to_contain_text("Gridwork")
    tickets = page.locator('.opblock-summary-path[data-path="/api/v1/tickets"]')
    await expect(tickets.first).to_be_visible()
    assert await page.locator(".opblock").count() > 30
    await tickets.first.click()  # opened: its parameters and responses
    await expect(page.locator(".opblock.is-open .parameters-container")).to_be_visible()
    await page.click(".auth-wrapper .authorize")  # signed in through the page, then a call
    dialog = page.locator(".dialog-ux .modal-ux")
    await dialog.locator("input#oauth_username").fill("dispatcher")
    await dialog.locator("input#oauth_password").fill("gridwork-demo")
    await dialog.locator("button.authorize").click()
    await expect(dialog.locator("button", has_text="Logout")).to_be_visible()
    await dialog.locator("button.btn-done").click()
    me = page.locator(".opblock", has=page.locator('[data-path="/api/v1/users/me"]'))
    await me.locator(".opblock-summary-control").click()
    await me.locator("button.try-out__btn").click()
    await me.locator("button.execute").click()
    await expect(me.locator(".live-responses-table td.response-col_status").last).to_have_text(
        "200"
    )
    await expect(me.locator(".live-responses-table")).to_contain_text('"role": "dispatcher"')
    await screenshot(page, "swagger-ui")


async def test_redoc_renders_the_operations_with_no_internet(
    browser: Browser, network: ClosedNetwork
) -> None:
    page = await network.open(browser, "/redoc")
    operations = page.locator('[data-section-id*="/operation/"]')
    await expect(operations.first).to_be_visible()
    assert await operations.count() > 30
    await expect(page.locator("h1").first).to_contain_text("Gridwork")
    search = page.locator('input[placeholder="Search..."]')
    await search.fill("tickets")  # searched in ReDoc's worker
    await expect(page.locator('[data-role="search:results"] li').first).to_be_visible()
    await screenshot(page, "redoc")
