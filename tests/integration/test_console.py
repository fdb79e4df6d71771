"""The web console in a real headless Chromium (Debian's, driven by Playwright) against the app
served over HTTP, with its Content-Security-Policy in force (a violation fails a test, as a
script error does): a dispatcher sees a new report appear in the queue without reloading and
dispatches it, with a validation error shown beside its field first; a supervisor's dashboard
figures follow new reports, and show a grid worker's patrol track of a day on the grid's map;
the stream is opened with stream tickets, never the access token; signing out revokes the
session. Screenshots of each page go to `test-artifacts/console/`."""

import asyncio
import io
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, Request, expect

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from tests.browsers import ARTIFACTS as BROWSER_ARTIFACTS
from tests.browsers import needs_chromium
from tests.helpers import IN_GC01_1, Api
from tests.live import LiveServer

ARTIFACTS = BROWSER_ARTIFACTS / "console"
SEEN_WITHIN_MS = 15_000  # the page learns of a change from its stream, checked every 0.2 s

expect.set_options(timeout=10_000)  # a busy 2-core machine runs the suite beside the browser
pytestmark = needs_chromium


@pytest.fixture
def live(
    request: pytest.FixtureRequest, world: Database, settings: Settings, clock: FrozenClock
) -> Iterator[LiveServer]:
    """The app served; a test may change settings by parametrizing this fixture indirectly."""
    changed = {"console_check_seconds": 0.2, **getattr(request, "param", {})}
    server = LiveServer(settings.model_copy(update=changed), clock)
    yield server
    server.stop()


@pytest.fixture
async def api(live: LiveServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        yield Api(client)


@pytest.fixture
def script_errors() -> Iterator[list[str]]:
    """Errors thrown by the console's scripts in any page, and what its Content-Security-Policy
    refused (the browser reports it on the console): none may be."""
    errors: list[str] = []
    yield errors
    assert errors == []


def watch(page: Page, errors: list[str]) -> None:
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )


async def signed_in(
    browser: Browser,
    live: LiveServer,
    username: str,
    errors: list[str],
    requested: list[Request] | None = None,
) -> Page:
    """A page of the console signed in as `username`; every request it makes is added to
    `requested` when given."""
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    watch(page, errors)
    if requested is not None:
        page.on("request", lambda request: requested.append(request))
    await page.goto(f"{live.url}/console")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", "gridwork-demo")
    await page.click("button[type=submit]")
    await expect(page.locator("#live.on")).to_be_visible()  # its stream is open
    return page


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_a_dispatcher_sees_a_new_report_live_and_dispatches_it(
    browser: Browser, live: LiveServer, api: Api, script_errors: list[str]
) -> None:
    elsewhere = (await api.ticket_in("dispatched"))["id"]
    page = await signed_in(browser, live, "dispatcher", script_errors)
    new = page.locator('.tab[data-bucket="reported"]')
    await expect(new).to_have_attribute("aria-selected", "true")
    await expect(page.locator(".tab")).to_have_count(8)  # a community has no escalated-in
    await expect(page.locator("#who")).to_contain_text("(调度员)")  # the role, in Chinese
    await expect(new.locator(".count")).to_have_text(re.compile(r"^\d+$"))
    before = await new.locator(".count").text_content()
    await new.evaluate("tab => { tab.dataset.first = 'yes'; }")

    photo = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 90, 40)).save(photo, format="JPEG")
    headers = await api.headers("worker")
    files = {"file": ("manhole.jpg", photo.getvalue(), "image/jpeg")}
    uploaded = await api.client.post("/api/v1/attachments", headers=headers, files=files)
    assert uploaded.status_code == 201, uploaded.text
    ticket = await api.report(
        description="井盖缺失，路口东侧", attachment_ids=[uploaded.json()["id"]]
    )
    row = page.locator(f'tr[data-ticket="{ticket["id"]}"]')
    await expect(row).to_be_visible(timeout=SEEN_WITHIN_MS)
    await expect(row).to_contain_text("井盖缺失")
    assert await new.locator(".count").text_content() == str(int(before or 0) + 1)
    await expect(new).to_have_attribute("data-first", "yes")  # counted again, not drawn again
    await screenshot(page, "queue")
    # A change that leaves the rows shown as they were does not draw them again (marked with a
    # property: an attribute would make the row differ from its new drawing).
    await row.evaluate("row => { row.drawnFirst = true; }")
    in_progress = page.locator('.tab[data-bucket="in_progress"] .count')
    handled = int(await in_progress.text_content() or 0)
    await api.must(elsewhere, "claim", "handler")
    await expect(in_progress).to_have_text(str(handled + 1), timeout=SEEN_WITHIN_MS)
    assert await row.evaluate("row => row.drawnFirst === true")

    await row.click()
    await expect(page.locator(".ticket h1")).to_contain_text(ticket["number"])
    await expect(page.locator(".timeline li")).to_have_count(1)
    await expect(page.locator("#map path")).not_to_have_count(0)  # the grid, with no tiles
    await expect(page.locator('.photos img[src^="blob:"]')).to_have_count(1)
    await expect(page.locator('dd[data-row="grid"]')).to_have_text("GC01-1 · GC01 (社区)")
    await page.click('button[data-action="dispatch"]')
    form = page.locator('form[data-form="dispatch"]')
    offered = form.locator("select[name=department_code] option")
    # The departments of the ticket's community, town (GC) and district (NH), as the API
    # decides: not DL-ZZ, of the other town.
    await expect(offered).to_have_count(5)  # and the category's default
    assert await offered.evaluate_all("options => options.map(o => o.value)") == [
        "",
        "GC-ZZ",
        "NH-CG",
        "NH-SZ",
        "NH-XF",
    ]
    assisting = form.locator("[data-department]")
    await expect(assisting).to_have_count(4)
    await expect(form.locator('[data-department="DL-ZZ"]')).to_have_count(0)
    await form.locator("select[name=department_code]").evaluate(
        "select => select.add(new Option('DL-ZZ', 'DL-ZZ'))"  # as a stale page sends it
    )
    await form.locator("select[name=department_code]").select_option("DL-ZZ")
    await form.locator("button[type=submit]").click()
    error = form.locator('[data-field="department_code"] .field-error')
    await expect(error).to_contain_text("DL-ZZ")
    # The problem's title in Chinese, the API's detail after it.
    await expect(form.locator("[role=alert]")).to_contain_text("提交的内容有误：department DL-ZZ")
    assert (await api.get(f"/api/v1/tickets/{ticket['id']}", "admin")).json()["version"] == 1

    await form.locator("select[name=department_code]").select_option("NH-CG")
    await form.locator("textarea[name=note]").fill("请城管科处理")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".ticket dd").first).to_have_text("已派遣")
    await expect(page.locator(".timeline li")).to_have_count(2)
    await screenshot(page, "ticket")
    await page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, upright
    one_track = re.compile(r"^\S+$")  # one column: the map and photos below the details
    await expect(page.locator(".columns")).to_have_css("grid-template-columns", one_track)
    await screenshot(page, "ticket-tablet")
    stored = (await api.get(f"/api/v1/tickets/{ticket['id']}", "admin")).json()
    assert (stored["status"], stored["department_code"]) == ("dispatched", "NH-CG")


async def test_the_supervisor_dashboard_follows_new_reports(
    browser: Browser, live: LiveServer, api: Api, script_errors: list[str]
) -> None:
    page = await signed_in(browser, live, "supervisor", script_errors)
    reported = page.locator('[data-kpi="reported"] strong')
    await expect(reported).to_be_visible()
    before = int(await reported.text_content() or 0)
    await expect(page.locator("canvas#trend")).to_be_visible()
    await page.evaluate("document.querySelector('.dash-tabs').dataset.first = 'yes'")

    await api.report(description="路灯不亮")
    await expect(reported).to_have_text(str(before + 1), timeout=SEEN_WITHIN_MS)
    # Only the figures were drawn again: a click on a tab is never lost to the redraw.
    await expect(page.locator(".dash-tabs")).to_have_attribute("data-first", "yes")
    # The last 12 months up to the service's (November 2026), whether or not they had tickets.
    labels = await page.evaluate("Chart.getChart('trend').data.labels")
    assert labels == ["2025-12", *(f"2026-{month:02d}" for month in range(1, 12))]
    per_month = await page.evaluate("Chart.getChart('trend').data.datasets[2].data")
    assert len(per_month) == 12 and per_month[-1] >= 1 and sum(per_month) == before + 1
    await expect(page.locator(".ranking tbody tr").first).to_contain_text("桂城街道")  # its town
    await screenshot(page, "dashboard")

    await page.click("#lang")  # English, on the same page
    await expect(page.locator('[data-kpi="closure_rate"] span')).to_have_text("Closure rate")
    async with page.expect_download() as download:
        await page.click('button[data-export="csv"]')
    saved = await (await download.value).path()
    header = (await asyncio.to_thread(Path(saved).read_text, encoding="utf-8-sig")).splitlines()[0]
    assert "reported" in header


async def test_the_supervisor_appraises_grid_workers_and_departments(
    browser: Browser, live: LiveServer, api: Api, script_errors: list[str]
) -> None:
    """The appraisal tabs: league tables with names, each score's breakdown adding up to it, a
    worker's last 12 months, and the exports."""
    await api.ticket_in("rated")  # reported and verified by `worker`, handled by NH-CG
    await api.ticket_in("rejected")
    page = await signed_in(browser, live, "supervisor", script_errors)
    await page.click('[data-tab="appraisal/grid_workers"]')
    worker = page.locator('.league tr[data-key="worker"]')
    await expect(worker).to_contain_text("网格员")  # the display name, not only the username
    await expect(worker.locator('[data-col="reports"]')).to_have_text("2")
    await expect(worker.locator('[data-col="valid_rate"]')).to_have_text("50.0%")
    await page.click('button[data-explain="worker"]')
    terms = page.locator('tr[data-breakdown="worker"] tr[data-term]')
    await expect(terms).to_have_count(4)
    await expect(terms.first).to_contain_text("1 / 2")
    total = await page.locator('tr[data-breakdown="worker"] tfoot td').last.text_content()
    assert total == await worker.locator('[data-col="score"]').text_content()
    await screenshot(page, "appraisal-grid-workers")

    await page.click('button[data-trend="worker"]')
    await expect(page.locator('canvas#appraisal-trend[data-drawn="worker"]')).to_be_visible()
    labels = await page.evaluate("Chart.getChart('appraisal-trend').data.labels")
    assert labels == ["2025-12", *(f"2026-{month:02d}" for month in range(1, 12))]
    scores = await page.evaluate("Chart.getChart('appraisal-trend').data.datasets[0].data")
    assert scores[:-1] == [None] * 11 and scores[-1] is not None  # reported this month only

    async with page.expect_download() as download:
        await page.click('button[data-export="csv"]')
    saved = await (await download.value).path()
    header = (await asyncio.to_thread(Path(saved).read_text, encoding="utf-8-sig")).splitlines()[0]
    assert "用户名" in header and "有效上报率得分" in header  # in the language of the console

    await page.click('[data-tab="appraisal/departments"]')
    department = page.locator('.league tr[data-key="NH-CG"]')
    await expect(department).to_contain_text("南海区城市管理和综合执法局")
    await expect(department.locator('[data-col="handled"]')).to_have_text("1")
    await expect(department.locator('[data-col="closure_rate"]')).to_have_text("100.0%")
    await page.fill("input[name=from]", "2026-11-24")  # a period ending before it starts
    await page.fill("input[name=last]", "2026-11-20")
    await page.click(".period button[type=submit]")
    await expect(page.locator(".appraisal .error")).to_contain_text("to must be after from")
    await screenshot(page, "appraisal-departments")


async def test_the_supervisor_sees_a_workers_track_on_the_grid_map(
    browser: Browser,
    live: LiveServer,
    api: Api,
    clock: FrozenClock,
    settings: Settings,
    script_errors: list[str],
) -> None:
    """The worker walks east through GC01-1 for 20 minutes this morning (by the app's frozen
    clock), clocking in at the start; the supervisor opens the grid's tracks of the day."""
    now = clock.now()
    points = [
        {
            "at": (now - timedelta(minutes=30 - 5 * i)).isoformat(),
            "lat": 23.035 + 0.0005 * (i % 2),
            "lon": 113.105 + 0.001 * i,
            "accuracy_m": 8,
        }
        for i in range(5)
    ]
    stored = await api.post("/api/v1/patrol/tracks", "worker", {"points": points})
    assert stored.json() == {"stored": 5, "ignored": 0}, stored.text
    lat, lon = IN_GC01_1
    body = {"client_id": str(uuid.uuid4()), "lat": lat, "lon": lon, "at": points[0]["at"]}
    assert (await api.post("/api/v1/clock-ins", "worker", body)).status_code == 201
    day = now.astimezone(ZoneInfo(settings.timezone)).date().isoformat()
    track = (await api.get(f"/api/v1/patrol/tracks?worker=worker&date={day}", "supervisor")).json()
    figures = track["properties"]
    assert (track["geometry"]["type"], figures["points"]) == ("LineString", 5)
    stats = (await api.get(f"/api/v1/stats/patrol?org_unit=NH&date={day}", "supervisor")).json()
    minutes = {item["grid_code"]: item["track_minutes"] for item in stats["items"]}
    assert minutes["GC01-1"] == figures["minutes_in_grid"] == 20

    page = await signed_in(browser, live, "supervisor", script_errors)
    row = page.locator('.coverage tr[data-grid="GC01-1"]')
    await expect(row.locator('[data-col="track_minutes"]')).to_have_text("20")
    await row.locator("button[data-track]").click()
    panel = page.locator(".track")
    await expect(panel.locator('button[data-worker="worker"]')).to_have_attribute(
        "aria-pressed", "true"
    )  # the one worker seen there that day, shown first
    await expect(panel.locator("path.track-line")).to_have_count(1)
    await expect(panel.locator("path.track-start")).to_have_count(1)
    await expect(panel.locator("path.track-end")).to_have_count(1)
    await expect(panel.locator('[data-figure="points"]')).to_have_text(str(figures["points"]))
    metres = figures["distance_m"]
    assert 100 < metres < 1000  # five points about 100 m apart
    await expect(panel.locator('[data-figure="distance"]')).to_have_text(f"{int(metres + 0.5)} m")
    await expect(panel.locator('[data-figure="minutes"]')).to_have_text("20 分钟")
    await screenshot(page, "patrol-track")

    await panel.locator("input[name=worker]").fill("worker2")  # typed: no track that day
    await panel.locator("button[type=submit]").click()
    await expect(panel.locator('[data-figure="points"]')).to_have_text("0")
    await expect(panel.locator("path.track-line")).to_have_count(0)
    await expect(panel.locator('button[data-worker="worker"]')).to_have_attribute(
        "aria-pressed", "false"
    )
    await expect(panel.locator(".empty")).to_have_text("当日无轨迹（少于 2 个点）")

    await page.click("#lang")  # English: the dashboard is drawn again, the tracks closed
    await expect(panel.locator("h3")).to_have_count(0)
    await row.locator("button[data-track]").click()
    await expect(panel.locator("h3")).to_contain_text("Patrol tracks of GC01-1")
    await expect(panel.locator('[data-figure="minutes"]')).to_have_text("20 min")
    await expect(panel.locator("path.track-line")).to_have_count(1)


async def test_the_closed_loop_runs_through_the_console(
    browser: Browser, live: LiveServer, api: Api, script_errors: list[str]
) -> None:
    """Check, confirm, dispatch with an assisting department, assist, claim, feedback, verify,
    reopen and urge, each by its user through the console's own buttons and forms, except the
    grid worker's confirmation: the console is not for grid workers (their phone app is; the
    console's stream refuses them), so the worker confirms through the API."""
    ticket = await api.report(description="楼道堆放杂物（群众来电）")
    tid = ticket["id"]
    status = 'dd[data-row="status"]'

    dispatcher = await signed_in(browser, live, "dispatcher", script_errors)
    await dispatcher.locator(f'tr[data-ticket="{tid}"]').click()
    await act(dispatcher, "request_check", "请网格员现场核实")
    await expect(dispatcher.locator(status)).to_have_text("核实中")
    await dispatcher.click("text=返回队列")
    await dispatcher.click('.tab[data-bucket="checking"]')
    await dispatcher.locator(f'tr[data-ticket="{tid}"]').click()

    worker_todo = (await api.get("/api/v1/tickets?awaiting=me", "worker")).json()["items"]
    assert tid in [item["id"] for item in worker_todo]
    await api.must(tid, "confirm", "worker", {"note": "现场属实"})
    await expect(dispatcher.locator(status)).to_have_text("已上报", timeout=SEEN_WITHIN_MS)
    await expect(dispatcher.locator('dd[data-row="checked_at"]')).not_to_have_text("—")

    await dispatcher.click('a[href="#/todo"]')  # a reported ticket of the dispatcher's unit
    await expect(dispatcher.locator(f'tr[data-ticket="{tid}"]')).to_be_visible()
    await screenshot(dispatcher, "todo")
    await dispatcher.locator(f'tr[data-ticket="{tid}"]').click()
    await dispatcher.click('button[data-action="dispatch"]')
    form = dispatcher.locator('form[data-form="dispatch"]')
    await form.locator("select[name=department_code]").select_option("NH-CG")
    await expect(form.locator('[data-department="NH-CG"]')).to_be_hidden()  # the lead
    await expect(form.locator('[data-department="DL-ZZ"]')).to_have_count(0)  # another town's
    stale = (  # the box of a department the form no longer offers, as a stale page sends it
        '<label data-department="DL-ZZ">DL-ZZ'
        '<input type="checkbox" name="assisting_department_codes" value="DL-ZZ"></label>'
    )
    await form.locator("fieldset.assisting").evaluate(
        "(fieldset, html) => fieldset.insertAdjacentHTML('afterbegin', html)", stale
    )
    await form.locator('[data-department="DL-ZZ"] input').check()
    await form.locator("button[type=submit]").click()
    error = form.locator('[data-field="assisting_department_codes"] .field-error')
    await expect(error).to_contain_text("DL-ZZ")
    await screenshot(dispatcher, "dispatch-assisting")
    await form.locator('[data-department="DL-ZZ"] input').uncheck()
    await form.locator('[data-department="NH-SZ"] input').check()
    await form.locator("textarea[name=note]").fill("城管主办，市政协办")
    await form.locator("button[type=submit]").click()
    await expect(dispatcher.locator(status)).to_have_text("已派遣")
    await expect(dispatcher.locator('li[data-assist="NH-SZ"]')).to_have_class("pending")

    handler2 = await signed_in(browser, live, "handler2", script_errors)
    await handler2.click('a[href="#/todo"]')  # its assisting part is pending
    await handler2.locator(f'tr[data-ticket="{tid}"]').click()
    await expect(handler2.locator(".actions button[data-action]")).to_have_count(1)
    await handler2.click('button[data-action="assist"]')
    assist = handler2.locator('form[data-form="assist"]')
    await assist.locator("textarea[name=note]").fill("   ")  # blank to the API
    await assist.locator("button[type=submit]").click()
    await expect(assist.locator('[data-field="note"] .field-error')).not_to_be_empty()
    await assist.locator("textarea[name=note]").fill("已疏通楼道排水口，配合完成")
    await assist.locator("button[type=submit]").click()
    done = handler2.locator('li[data-assist="NH-SZ"]')
    await expect(done).to_have_class("done")
    await expect(done).to_contain_text("已疏通楼道排水口")
    await expect(handler2.locator(".actions .empty")).to_be_visible()  # nothing more to do
    await screenshot(handler2, "ticket-assists")
    await handler2.click('a[href="#/todo"]')
    await expect(handler2.locator(".todo .empty")).to_have_text("暂无工单")
    await handler2.close()

    handler = await signed_in(browser, live, "handler", script_errors)
    await handler.click('a[href="#/todo"]')
    await handler.locator(f'tr[data-ticket="{tid}"]').click()
    await act(handler, "claim")
    await expect(handler.locator(status)).to_have_text("处置中")
    await act(handler, "feedback", "杂物已清运")
    await expect(handler.locator(status)).to_have_text("已反馈")
    await handler.close()

    await expect(dispatcher.locator(status)).to_have_text("已反馈", timeout=SEEN_WITHIN_MS)
    await dispatcher.click("text=返回队列")  # fed back: in the bucket of tickets to verify
    to_verify = dispatcher.locator('.tab[data-bucket="feedback"]')
    await expect(to_verify).to_contain_text("待核查")
    await to_verify.click()
    await dispatcher.locator(f'tr[data-ticket="{tid}"]').click()
    await act(dispatcher, "verify")
    await expect(dispatcher.locator(status)).to_have_text("已结案")
    await act(dispatcher, "reopen", "回访不满意，重新办理")
    await expect(dispatcher.locator(status)).to_have_text("已派遣")
    await expect(dispatcher.locator('dd[data-row="reopen_count"]')).to_have_text("1")
    await expect(dispatcher.locator('.ticket h1 [data-badge="reopened"]')).to_have_text("重办 ×1")

    supervisor = await signed_in(browser, live, "supervisor", script_errors)
    await expect(supervisor.locator('[data-kpi="reopen_rate"] strong')).to_have_text("100.0%")
    await supervisor.click('a[href="#/queue"]')
    await supervisor.click('.tab[data-bucket="dispatched"]')
    await supervisor.locator(f'tr[data-ticket="{tid}"]').click()
    await expect(supervisor.locator(".actions button[data-action]")).to_have_count(1)
    await act(supervisor, "urge", "群众反映强烈，请加快处置")
    await expect(supervisor.locator('dd[data-row="urge_count"]')).to_have_text("1")
    timeline = supervisor.locator(".timeline")
    for label in ("发起核实", "核实属实", "协办回复", "重办", "督办", "已上报 → 核实中"):
        await expect(timeline).to_contain_text(label)
    await expect(timeline).to_contain_text("市政")  # the assisting department, by name
    await screenshot(supervisor, "ticket-closed-loop")
    await supervisor.click("#lang")
    for label in ("Request a check", "Answer as assisting department", "Reopen", "Urge"):
        await expect(timeline).to_contain_text(label)
    await expect(timeline).to_contain_text("reported → being checked")
    await supervisor.click("#lang")
    await supervisor.click('a[href="#/todo"]')  # a supervisor's is empty: urged tickets instead
    await expect(supervisor.locator(".todo .empty").first).to_have_text("暂无工单")
    await supervisor.click('.todo a[href="#/queue"]')
    await expect(supervisor.locator('.tab[data-bucket="urged"]')).to_have_attribute(
        "aria-selected", "true"
    )
    row = supervisor.locator(f'tr[data-ticket="{tid}"]')
    await expect(row.locator('[data-badge="urged"]')).to_have_text("督办 ×1")
    await screenshot(supervisor, "queue-urged")

    stored = (await api.get(f"/api/v1/tickets/{tid}", "admin")).json()
    assert (stored["status"], stored["department_code"]) == ("dispatched", "NH-CG")
    assert (stored["urge_count"], stored["reopen_count"]) == (1, 1)
    assert [(a["department_code"], a["note"]) for a in stored["assists"]] == [
        ("NH-SZ", "已疏通楼道排水口，配合完成")
    ]


@pytest.mark.parametrize("live", [{"console_stream_seconds": 1.0}], indirect=True)
async def test_each_connection_of_the_stream_takes_a_new_ticket_never_the_access_token(
    browser: Browser, live: LiveServer, api: Api, script_errors: list[str]
) -> None:
    """Streams of a second here: the page reconnects every two or so, each time with a ticket
    asked for just before, and no URL it requests ever holds the access token."""
    requested: list[Request] = []
    page = await signed_in(browser, live, "dispatcher", script_errors, requested)

    def streams() -> list[str]:
        return [r.url for r in requested if urlsplit(r.url).path == "/console/stream"]

    for _ in range(100):
        if len(streams()) >= 3:
            break
        await asyncio.sleep(0.1)
    tickets = [parse_qs(urlsplit(url).query)["ticket"][0] for url in streams()]
    assert len(tickets) >= 3 and len(set(tickets)) == len(tickets)  # a new one each time
    asked = [r for r in requested if r.url.endswith("/console/stream-ticket")]
    assert len(asked) >= len(tickets) and {r.method for r in asked} == {"POST"}
    token = await page.evaluate("sessionStorage.getItem('gridwork.token')")
    assert token and not [r.url for r in requested if token in r.url]
    assert not [r.url for r in requested if "token=" in r.url]

    ticket = await api.report(description="共享单车乱停放")  # still seen live
    row = page.locator(f'tr[data-ticket="{ticket["id"]}"]')
    await expect(row).to_be_visible(timeout=SEEN_WITHIN_MS)


async def test_signing_out_revokes_the_session_on_the_server(
    browser: Browser, live: LiveServer, api: Api, script_errors: list[str]
) -> None:
    page = await signed_in(browser, live, "dispatcher", script_errors)
    refresh = await page.evaluate("sessionStorage.getItem('gridwork.refresh')")
    async with page.expect_request("**/api/v1/auth/logout") as asked:
        await page.click("#logout")
    request = await asked.value
    assert request.method == "POST" and request.post_data_json == {"refresh_token": refresh}
    await expect(page.locator("form.login")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    answered = await request.response()
    assert answered is not None and answered.status == 204
    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    reused = await api.client.post("/api/v1/auth/token", data=form)
    assert reused.status_code in (400, 401), reused.text  # revoked


async def test_signing_out_works_when_the_server_cannot_be_told(
    browser: Browser, live: LiveServer, script_errors: list[str]
) -> None:
    page = await signed_in(browser, live, "dispatcher", script_errors)
    await page.route("**/api/v1/auth/logout", lambda route: route.abort())
    await page.click("#logout")
    await expect(page.locator("form.login")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    await page.goto(f"{live.url}/console#/queue")  # signed out: the sign-in form, not the queue
    await expect(page.locator("form.login")).to_be_visible()


async def test_a_refused_sign_in_is_told_in_chinese_with_the_apis_detail(
    browser: Browser, live: LiveServer, script_errors: list[str]
) -> None:
    page = await browser.new_page()
    watch(page, script_errors)
    await page.goto(f"{live.url}/console")
    await page.fill("input[name=username]", "dispatcher")
    await page.fill("input[name=password]", "not-the-password")
    await page.click("button[type=submit]")
    message = page.locator(".login [role=alert]")
    await expect(message).to_have_text(re.compile(r"^用户名或密码错误：[ -~]+$"))  # then English


async def act(page: Page, action: str, note: str = "") -> None:
    """Takes `action` on the ticket shown through its button and form; the caller then waits
    for what it changed."""
    await page.click(f'button[data-action="{action}"]')
    form = page.locator(f'form[data-form="{action}"]')
    if note:
        await form.locator("textarea[name=note]").fill(note)
    await form.locator("button[type=submit]").click()
    await expect(form).to_have_count(0)  # taken: the page is drawn again
