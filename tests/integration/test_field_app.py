"""The grid worker's phone app (`/field/`) in a real headless Chromium (Debian's, driven by
Playwright) against the app served over HTTP, in a phone's viewport (390x844) with emulated
geolocation: reports made offline arrive once each with their photo after a reload and an
expired access token; a report the server refuses is kept for the worker and never resent in a
loop; open tickets nearby show before sending; clock-in, a track and a verification from "to
do". Also: the manifest and service worker as browsers need them, no outside URL in any of the
app's files, and the load time on a "Slow 3G" connection. Screenshots of each screen go to
`test-artifacts/field/`.

Playwright's `set_offline` does not cover a service worker's own fetches
(microsoft/playwright#2311), so going offline here also routes every API call to an abort."""

import asyncio
import io
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from PIL import Image
from playwright.async_api import (
    Browser,
    BrowserContext,
    FilePayload,
    Geolocation,
    Page,
    Request,
    Route,
    ViewportSize,
    expect,
)

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.field.router import SHELL, STATIC
from tests.browsers import ARTIFACTS as BROWSER_ARTIFACTS
from tests.browsers import needs_chromium
from tests.helpers import Api
from tests.live import LiveServer

ARTIFACTS = BROWSER_ARTIFACTS / "field"
PHONE = ViewportSize(width=390, height=844)
IN_GC01_1 = Geolocation(latitude=23.035, longitude=113.105, accuracy=12)
OUTSIDE_EVERY_GRID = Geolocation(latitude=23.2, longitude=113.5, accuracy=8)
SENT_WITHIN_MS = 30_000  # the outbox waits 2 s after a lost reply, longer after more

expect.set_options(timeout=10_000)  # a busy 2-core machine runs the suite beside the browser
pytestmark = needs_chromium


@pytest.fixture
def clock() -> FrozenClock:
    """The service's clock at the real time: the phone's own clock dates its reports and track
    points, and the service refuses points in the future or older than 7 days."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def live(world: Database, settings: Settings, clock: FrozenClock) -> Iterator[LiveServer]:
    # Access tokens as in production (15 minutes), so a test can let one expire.
    server = LiveServer(settings.model_copy(update={"access_token_minutes": 15}), clock)
    yield server
    server.stop()


@pytest.fixture
async def api(live: LiveServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        yield Api(client)


@pytest.fixture
def watched() -> Iterator[dict[str, list[str]]]:
    """Errors thrown by the app's scripts, and requests to anywhere but the service: none."""
    seen: dict[str, list[str]] = {"errors": [], "outside": []}
    yield seen
    assert seen["errors"] == []
    assert seen["outside"] == []


async def phone(
    browser: Browser,
    live: LiveServer,
    watched: dict[str, list[str]],
    where: Geolocation = IN_GC01_1,
) -> BrowserContext:
    context = await browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        geolocation=where,
        permissions=["geolocation"],
        locale="zh-CN",
    )

    def request(request: Request) -> None:
        if not request.url.startswith((live.url, "data:", "blob:")):
            watched["outside"].append(request.url)

    context.on("request", request)
    context.on(
        "page", lambda page: page.on("pageerror", lambda e: watched["errors"].append(str(e)))
    )
    return context


async def signed_in(context: BrowserContext, live: LiveServer, path: str = "/field/") -> Page:
    page = await context.new_page()
    await page.goto(f"{live.url}{path}")
    form = page.locator("form[name=signin]")
    await expect(form.locator("input[name=username]")).to_have_attribute("autocomplete", "username")
    await expect(form.locator("input[name=password]")).to_have_attribute(
        "autocomplete", "current-password"
    )
    await form.locator("input[name=username]").fill("worker")
    await form.locator("input[name=password]").fill("gridwork-demo")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#tabs")).to_be_visible()
    # the service worker keeps the app shell from now on
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    return page


async def usable_report_form(page: Page) -> None:
    form = page.locator("form[name=report]")
    await expect(form.locator("select[name=category_code] option")).not_to_have_count(1)
    await expect(form.locator("button[type=submit]")).to_be_enabled()


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def go(page: Page, screen: str) -> None:
    await page.click(f'#tabs a[href="#/{screen}"]')


def jpeg(width: int, height: int) -> bytes:
    photo = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 60)).save(photo, format="JPEG", quality=70)
    return photo.getvalue()


async def fill_report(
    page: Page, category: str, text: str, photo: bytes | None = None, *, gps: bool = True
) -> None:
    form = page.locator("form[name=report]")
    await form.locator("select[name=category_code]").select_option(category)
    await form.locator("textarea[name=description]").fill(text)
    if photo is not None:
        files = FilePayload(name="IMG_0001.jpg", mimeType="image/jpeg", buffer=photo)
        await form.locator("input[type=file][name=photos]").set_input_files(files)
        await expect(form.locator(".thumbs img")).to_have_count(1)
    if gps:
        await expect(form.locator("[data-accuracy]")).to_contain_text("±12 米")


async def send_report(page: Page) -> None:
    await page.locator("form[name=report] button[type=submit]").click()
    await expect(page.locator("form[name=report] [role=status]")).to_contain_text("已保存到手机")
    await expect(page.locator("form[name=report] textarea[name=description]")).to_have_value("")


async def go_offline(context: BrowserContext) -> None:
    await context.set_offline(True)
    await context.route("**/api/**", lambda route: route.abort("internetdisconnected"))


async def go_online(context: BrowserContext) -> None:
    await context.unroute("**/api/**")
    await context.set_offline(False)


def event_posts(page: Page) -> list[dict[str, Any]]:
    """The bodies of the page's POST /api/v1/events, as they are sent."""
    bodies: list[dict[str, Any]] = []

    def seen(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/api/v1/events"):
            bodies.append(json.loads(request.post_data or "{}"))

    page.on("request", seen)
    return bodies


async def tickets_described(api: Api, text: str) -> list[dict[str, Any]]:
    items = (await api.get("/api/v1/tickets?limit=500", "admin")).json()["items"]
    return [ticket for ticket in items if ticket["description"] == text]


async def test_reports_made_offline_arrive_once_each_with_their_photo(
    browser: Browser,
    live: LiveServer,
    api: Api,
    clock: FrozenClock,
    watched: dict[str, list[str]],
) -> None:
    """Two reports filed offline, one with a photo; the page reloaded offline; then, back
    online with an access token that expired meanwhile and the reply to the report with the
    photo lost on the way: each report arrives exactly once, the photo attached (uploaded
    once), in the grid of the position."""
    context = await phone(browser, live, watched)
    page = await signed_in(context, live)
    await usable_report_form(page)
    await expect(page.locator('#tabs a[aria-current] [data-t="tab.report"]')).to_be_visible()
    await screenshot(page, "report")
    posts = event_posts(page)

    await go_offline(context)
    await expect(page.locator("#net")).to_have_text("离线")
    first, second = "路边垃圾堆放（离线上报一）", "人行道井盖破损（离线上报二，带照片）"
    await fill_report(page, "garbage", first)
    await send_report(page)
    await expect(page.locator("form[name=report] [role=status]")).to_have_text(
        "已保存到手机，联网后自动发送"
    )
    await fill_report(page, "manhole", second, jpeg(2400, 1800))
    await page.locator("form[name=report] input[name=urgent]").check()
    await screenshot(page, "report-filled-offline")
    await send_report(page)
    await expect(page.locator("#tabs .count")).to_have_text("2")

    await go(page, "queue")
    queue = page.locator("ul.queue li")
    await expect(queue).to_have_count(2)
    await expect(queue.nth(0)).to_contain_text(first)
    await expect(queue.nth(1)).to_contain_text("照片 1 张")
    await screenshot(page, "queue-offline")

    await page.reload()  # offline: the service worker serves the app shell
    await expect(page.locator("ul.queue li")).to_have_count(2)
    await expect(page.locator("ul.queue li").nth(1)).to_contain_text(second)
    assert await tickets_described(api, first) == []

    clock.advance(timedelta(minutes=20))  # a long offline spell: the access token expired
    api = Api(api.client)  # and the test's own tokens too
    lost: list[str] = []

    async def lose_reply_with_photo(route: Route) -> None:
        """The report with the photo reaches the server, but the first reply never reaches
        the phone."""
        response = await route.fetch()
        if (
            response.status == 201
            and "attachment_ids" in (route.request.post_data or "")
            and not lost
        ):
            lost.append(route.request.url)
            await route.abort("connectionreset")
        else:
            await route.fulfill(response=response)

    await context.route("**/api/v1/events", lose_reply_with_photo)
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/attachments") else None)
    answers: list[int] = []
    page.on("response", lambda r: answers.append(r.status) if r.url.endswith("/events") else None)
    posts.clear()  # tried while offline: never reached the server
    await go_online(context)
    await expect(page.locator("ul.queue li")).to_have_count(0, timeout=SENT_WITHIN_MS)
    await expect(page.locator("[data-summary]")).to_have_text("全部已发送")
    assert lost, "the first reply was lost on the way"

    one, two = await tickets_described(api, first), await tickets_described(api, second)
    assert len(one) == 1 and len(two) == 1, (one, two)
    assert one[0]["grid_code"] == two[0]["grid_code"] == "GC01-1"
    assert (one[0]["category_code"], two[0]["category_code"], two[0]["urgent"]) == (
        "garbage",
        "manhole",
        True,
    )
    photos = (await api.get(f"/api/v1/tickets/{two[0]['id']}/attachments", "admin")).json()
    assert [(p["width"], p["height"], p["stage"]) for p in photos] == [(1600, 1200, "report")]
    assert (await api.get(f"/api/v1/tickets/{one[0]['id']}/attachments", "admin")).json() == []
    # In order: the first met the expired token and went again with a new one; the second, its
    # reply lost, went again with the same client_id and the photo's id, not a new upload.
    ids = [body["client_id"] for body in posts]
    assert ids[0] == ids[1] != ids[2] == ids[3] and len(ids) == 4, ids
    assert answers == [401, 201, 200]
    assert len(uploads) == 1
    assert posts[2]["attachment_ids"] == posts[3]["attachment_ids"] == [photos[0]["id"]]
    assert posts[0]["location_source"] == "gps" and posts[0]["accuracy_m"] == 12

    await go(page, "mine")  # both appear in "my reports"
    for ticket in (one[0], two[0]):
        await expect(page.locator(f'ul.tickets a[data-ticket="{ticket["id"]}"]')).to_be_visible()
    await screenshot(page, "mine")
    await page.locator(f'ul.tickets a[data-ticket="{two[0]["id"]}"]').click()
    await expect(page.locator(".timeline li")).to_have_count(1)
    await expect(page.locator(".thumbs img")).to_have_count(1)
    await screenshot(page, "ticket")
    await context.close()


async def test_a_report_the_server_refuses_is_kept_for_the_worker_and_not_resent(
    browser: Browser, live: LiveServer, api: Api, watched: dict[str, list[str]]
) -> None:
    """A report from a point far from every grid: the server answers 422, which the app cannot
    fix by itself. The report stays on the phone as needing attention, with the server's
    message, through a reload, and is never sent again by itself; the worker edits it (the
    place) and sends it, under the same client_id."""
    context = await phone(browser, live, watched, where=OUTSIDE_EVERY_GRID)
    page = await signed_in(context, live)
    await usable_report_form(page)
    posts = event_posts(page)
    text = "河道边有人倾倒建筑垃圾"
    await fill_report(page, "garbage", text, gps=False)
    await expect(page.locator("[data-accuracy]")).to_contain_text("±8 米")
    await send_report(page)

    await go(page, "queue")
    item = page.locator('ul.queue li[data-state="attention"]')
    await expect(item).to_have_count(1)
    await expect(item.locator("[data-error]")).to_contain_text("from every grid")
    await expect(page.locator("#tabs .count.attention")).to_have_text("1")
    await screenshot(page, "queue-attention")
    await page.wait_for_timeout(6_000)  # longer than the first waits of the backoff
    assert len(posts) == 1
    await page.reload()
    await expect(page.locator('ul.queue li[data-state="attention"]')).to_have_count(1)
    await page.wait_for_timeout(3_000)
    assert len(posts) == 1
    assert await tickets_described(api, text) == []

    await context.set_geolocation(IN_GC01_1)  # the worker walks to the place
    await page.locator("ul.queue [data-edit]").click()
    form = page.locator("form[name=report]")
    await expect(form.locator("textarea[name=description]")).to_have_value(text)
    await form.locator("[data-gps]").click()
    await expect(form.locator("[data-accuracy]")).to_contain_text("±12 米")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#tabs .count")).to_have_text("", timeout=SENT_WITHIN_MS)
    [ticket] = await tickets_described(api, text)
    assert ticket["grid_code"] == "GC01-1"
    assert [body["client_id"] for body in posts] == [posts[0]["client_id"]] * 2
    await context.close()


async def test_open_tickets_nearby_show_before_the_report_is_sent(
    browser: Browser, live: LiveServer, api: Api, watched: dict[str, list[str]]
) -> None:
    """An open ticket 30 m away appears under the form before sending; the worker then sets
    the point on the map, which the report records as set on the map."""
    there = await api.report(category_code="manhole", description="井盖缺失，路口东侧")
    context = await phone(
        browser, live, watched, where=Geolocation(latitude=23.03527, longitude=113.105, accuracy=12)
    )
    page = await signed_in(context, live)
    posts = event_posts(page)
    nearby = page.locator(f'.nearby li[data-ticket="{there["id"]}"]')
    await expect(nearby).to_contain_text(there["number"])
    await expect(nearby).to_contain_text("井盖缺失")
    await expect(nearby).to_contain_text(re.compile(r"\b(2\d|3\d) 米"))
    await expect(page.locator(".nearby h2")).to_have_text("附近已有 1 个工单")
    await page.locator(".nearby").scroll_into_view_if_needed()
    await screenshot(page, "report-nearby")
    for width in (360, 430):  # the phones it is made for: nothing wider than the screen
        await page.set_viewport_size(ViewportSize(width=width, height=800))
        assert await page.evaluate("document.documentElement.scrollWidth") == width
    await page.set_viewport_size(PHONE)
    targets = page.locator(
        "form[name=report] :is(button, label.button, label.switch):visible, #tabs a"
    )
    heights = [(await t.bounding_box() or {"height": 0})["height"] for t in await targets.all()]
    assert len(heights) == 11 and min(heights) >= 48, heights  # big enough for a thumb

    await expect(page.locator("#map .leaflet-marker-icon")).to_be_visible()
    await page.locator("#map").click(position={"x": 250, "y": 70})
    await expect(page.locator("[data-accuracy]")).to_have_text("已在地图上选定位置")
    await fill_report(page, "garbage", "路口西侧垃圾满溢", gps=False)
    await send_report(page)
    await expect(page.locator("#tabs .count")).to_have_text("", timeout=SENT_WITHIN_MS)
    [body] = posts
    assert body["location_source"] == "map" and "accuracy_m" not in body
    assert (body["lat"], body["lon"]) != (23.03527, 113.105)
    assert len(await tickets_described(api, "路口西侧垃圾满溢")) == 1
    await context.close()


async def test_clock_in_a_track_and_a_verification_from_to_do(
    browser: Browser, live: LiveServer, api: Api, clock: FrozenClock, watched: dict[str, list[str]]
) -> None:
    """The worker clocks in (the server says: inside the own grid), walks a short track
    (sampled every 0.4 s through the page's test hook instead of every 30 s), ends the patrol,
    then verifies (核查) a ticket of the grid in feedback from "to do", with a note and a
    photo."""
    ticket = await api.ticket_in("feedback", description="垃圾桶满溢未清运（待核查）")
    context = await phone(browser, live, watched)
    page = await signed_in(context, live, "/field/?track_ms=400#/patrol")
    await expect(page.locator("h1")).to_have_text("巡查打卡")
    await page.locator("[data-clock-in]").click()
    await expect(page.locator('[data-inside="true"]')).to_contain_text("GC01-1")
    for step in range(1, 6):  # about 33 m north each time
        north = Geolocation(latitude=23.035 + 0.0003 * step, longitude=113.105, accuracy=12)
        await context.set_geolocation(north)
        await page.wait_for_timeout(700)
    await expect(page.locator("[data-points]")).not_to_have_attribute(
        "data-points", re.compile(r"^[0-3]$")
    )
    await screenshot(page, "patrol")
    await page.locator("[data-stop]").click()
    await expect(page.locator("[data-clock-in]")).to_be_visible()
    await expect(page.locator("#tabs .count")).to_have_text("", timeout=SENT_WITHIN_MS)
    today = clock.now().astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    track = (await api.get(f"/api/v1/patrol/tracks?worker=worker&date={today}", "worker")).json()
    assert track["geometry"]["type"] == "LineString", track
    assert track["properties"]["points"] >= 5
    assert track["properties"]["distance_m"] >= 100
    clock_ins = (await api.get("/api/v1/clock-ins", "worker")).json()["items"]
    assert [(c["grid_code"], c["inside_grid"]) for c in clock_ins] == [("GC01-1", True)]

    await go(page, "todo")
    row = page.locator(f'ul.todo a[data-ticket="{ticket["id"]}"]')
    await expect(row).to_contain_text("待核查")
    await screenshot(page, "todo")
    await row.click()
    await expect(page.locator("h1 [data-status]")).to_have_text("已反馈")
    await page.locator('button[data-action="verify"]').click()
    form = page.locator('form[name=action][data-action="verify"]')
    await expect(form.locator("input[name=passed][value=true]")).to_be_checked()
    await form.locator("textarea[name=note]").fill("现场已清理干净")
    files = FilePayload(name="check.jpg", mimeType="image/jpeg", buffer=jpeg(800, 600))
    await form.locator("input[name=photos]").set_input_files(files)
    await expect(form.locator(".thumbs img")).to_have_count(1)
    await screenshot(page, "verify")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("h1 [data-status]")).to_have_text("已结案", timeout=SENT_WITHIN_MS)
    await expect(page.locator(".timeline")).to_contain_text("现场已清理干净")
    await screenshot(page, "ticket-verified")
    stored = (await api.get(f"/api/v1/tickets/{ticket['id']}", "admin")).json()
    assert stored["status"] == "closed"
    photos = (await api.get(f"/api/v1/tickets/{ticket['id']}/attachments", "admin")).json()
    assert [p["stage"] for p in photos] == ["verify"]

    await page.click("#lang")  # English on request
    await expect(page.locator("h1 [data-status]")).to_have_text("closed")
    await go(page, "report")
    await expect(page.locator("form[name=report] button[type=submit]")).to_have_text("Send report")
    await page.click("#lang")
    await context.close()


async def test_the_sign_in_screen(
    browser: Browser, live: LiveServer, watched: dict[str, list[str]]
) -> None:
    context = await phone(browser, live, watched)
    page = await context.new_page()
    await page.goto(f"{live.url}/field")  # redirected to the app's scope
    assert page.url == f"{live.url}/field/"
    form = page.locator("form[name=signin]")
    await form.locator("input[name=username]").fill("worker")
    await form.locator("input[name=password]").fill("wrong-password")
    await form.locator("button[type=submit]").click()
    await expect(form.locator("[role=alert]")).to_have_text("用户名或密码错误")
    await screenshot(page, "signin")
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    cdp = await context.new_cdp_session(page)  # what Chrome makes of the manifest
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [] and manifest["manifest"]["display"] == "kStandalone"
    installable = await cdp.send("Page.getInstallabilityErrors")
    # installable, but for the test's browser context, which is a private (incognito) one
    reasons = [error["errorId"] for error in installable["installabilityErrors"]]
    assert reasons in ([], ["in-incognito"])
    await context.close()


async def test_the_manifest_and_service_worker_are_served_as_browsers_need(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/field/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'rel="manifest" href="/field/manifest.webmanifest"' in page.text
    assert (await client.get("/field", follow_redirects=False)).headers["location"] == "/field/"

    manifest = await client.get("/field/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    data = manifest.json()
    assert (data["scope"], data["start_url"], data["display"]) == (
        "/field/",
        "/field/#/report",
        "standalone",
    )
    for icon in data["icons"]:
        served = await client.get(icon["src"])
        assert served.headers["content-type"] == "image/png"
        width, height = Image.open(io.BytesIO(served.content)).size
        assert f"{width}x{height}" == icon["sizes"]

    worker = await client.get("/field/sw.js")
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["cache-control"] == "no-cache"
    assert "__SHELL__" not in worker.text and "__VERSION__" not in worker.text
    assert "/api/" not in SHELL
    for url in SHELL:  # everything the service worker keeps is there
        assert (await client.get(url)).status_code == 200, url
    assert "/field/static/vendor/leaflet/leaflet.js" in SHELL
    gzipped = await client.get(
        "/field/static/vendor/leaflet/leaflet.js", headers={"Accept-Encoding": "gzip"}
    )
    assert gzipped.headers["content-encoding"] == "gzip"


# An outside URL may appear in a licence comment, as an XML namespace (not fetched), or as
# Leaflet's own credit link on the map; nothing is ever fetched from elsewhere.
NOT_FETCHED = {"http://www.w3.org/2000/svg", "https://leafletjs.com"}


def test_no_file_of_the_app_names_an_outside_url() -> None:
    app_dir = STATIC.parent
    files = [p for p in app_dir.rglob("*") if p.is_file() and p.suffix != ".png"]
    assert any(p.name == "leaflet.js" for p in files)
    for path in files:
        if path.name == "LICENSE":
            continue
        text = path.read_text(encoding="utf-8")
        # comments of stylesheets and licence comments (`/* @preserve ... */`) of scripts
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S) if path.suffix == ".css" else text
        text = re.sub(r"/\*\s*@preserve.*?\*/", "", text, flags=re.S)
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
        vendored = "vendor" in path.parts
        assert urls <= (NOT_FETCHED if vendored else set()), (path, urls)


SLOW_3G = {  # Chrome's "Slow 3G" preset
    "offline": False,
    "latency": 400 * 5,
    "downloadThroughput": 500 * 1024 / 8 * 0.8,
    "uploadThroughput": 500 * 1024 / 8 * 0.8,
}


class Traffic:
    """What a page fetched over the (throttled) network, through the DevTools protocol: the
    bytes of each response as they came over the wire, the app's files and the API's apart;
    answers of the service worker count apart."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self.bytes: dict[str, int] = {}
        self.open: set[str] = set()
        self.from_worker: set[str] = set()

    async def attach(self, context: BrowserContext, page: Page) -> None:
        cdp = await context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self.sent)
        cdp.on("Network.responseReceived", self.received)
        cdp.on("Network.loadingFinished", self.finished)
        cdp.on("Network.loadingFailed", lambda event: self.open.discard(event["requestId"]))
        await cdp.send("Network.enable")
        await cdp.send("Network.emulateNetworkConditions", SLOW_3G)

    def sent(self, event: dict[str, Any]) -> None:
        self.urls[event["requestId"]] = event["request"]["url"]
        self.open.add(event["requestId"])

    def received(self, event: dict[str, Any]) -> None:
        if event["response"].get("fromServiceWorker"):
            self.from_worker.add(event["requestId"])

    def finished(self, event: dict[str, Any]) -> None:
        self.open.discard(event["requestId"])
        self.bytes[event["requestId"]] = int(event.get("encodedDataLength", 0))

    async def settled(self) -> None:
        for _ in range(600):
            if not self.open:
                return
            await asyncio.sleep(0.1)

    def kib(self, api: bool) -> float:
        """KiB of the API's answers (and the app's settings), or of the app's own files."""

        def data(rid: str) -> bool:
            url = self.urls.get(rid, "")
            return "/api/" in url or url.endswith("/field/config.json")

        sizes = [
            s for rid, s in self.bytes.items() if rid not in self.from_worker and data(rid) == api
        ]
        return sum(sizes) / 1024


async def test_load_time_on_a_slow_3g_connection(
    browser: Browser, live: LiveServer, client: httpx.AsyncClient, watched: dict[str, list[str]]
) -> None:
    """Time from opening /field/ to a usable report form (its categories in, its button
    enabled) under Chrome's "Slow 3G", first visit (sign-in included: the worker's typing takes
    no time here) and repeat visit (the service worker and the phone's copies in place), with
    the bytes that came over the network. Printed and written to
    test-artifacts/field/slow-3g.txt."""
    context = await phone(browser, live, watched)

    async def visit(path: str, sign_in: bool) -> tuple[float, float, float, Traffic]:
        page = await context.new_page()
        traffic = Traffic()
        await traffic.attach(context, page)
        started = time.perf_counter()
        await page.goto(f"{live.url}{path}", wait_until="commit", timeout=120_000)
        signin = 0.0
        if sign_in:
            form = page.locator("form[name=signin]")
            await expect(form.locator("button[type=submit]")).to_be_visible(timeout=120_000)
            signin = time.perf_counter() - started
            await form.locator("input[name=username]").fill("worker")
            await form.locator("input[name=password]").fill("gridwork-demo")
            await form.locator("button[type=submit]").click()
        options = page.locator("form[name=report] select[name=category_code] option")
        await expect(options).not_to_have_count(1, timeout=120_000)
        await expect(page.locator("form[name=report] button[type=submit]")).to_be_enabled()
        usable = time.perf_counter() - started
        await expect(page.locator("#map.leaflet-container")).to_be_visible(timeout=120_000)
        mapped = time.perf_counter() - started
        await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        await traffic.settled()
        await page.close()
        return signin, usable, mapped, traffic

    first_signin, first, first_map, first_traffic = await visit("/field/", sign_in=True)
    _, repeat, repeat_map, repeat_traffic = await visit("/field/#/report", sign_in=False)
    shell = 0  # what the service worker keeps, as it comes over the network (compressed)
    for url in SHELL:
        response = await client.get(url, headers={"Accept-Encoding": "gzip"})
        shell += response.num_bytes_downloaded
    lines = [
        'Chrome\'s "Slow 3G" (2000 ms latency, 400 kbit/s down and up), phone 390x844:',
        f"first visit: sign-in form usable after {first_signin:.1f} s; report form usable "
        f"after {first:.1f} s (sign-in included), map after {first_map:.1f} s; "
        f"{first_traffic.kib(api=False):.1f} KiB of the app's files and "
        f"{first_traffic.kib(api=True):.1f} KiB of data (API, settings) over the network "
        f"(the service worker then keeps the whole shell: {shell / 1024:.1f} KiB compressed, "
        "revalidated where the page already has it)",
        f"repeat visit: report form usable after {repeat:.1f} s, map after {repeat_map:.1f} s; "
        f"{repeat_traffic.kib(api=False):.1f} KiB of the app's files and "
        f"{repeat_traffic.kib(api=True):.1f} KiB of data (API, settings) over the network "
        f"({len(repeat_traffic.from_worker)} responses from the service worker)",
    ]
    print("\n" + "\n".join(lines))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "slow-3g.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert repeat < first and repeat_traffic.kib(api=False) == 0
    await context.close()
