"""Debian's chromium driven by Playwright, for the tests of the pages people use (the console,
the field app, the API docs). A module's tests use `browser` after defining `live`, the app
served over HTTP; the browser is closed before the server stops, which waits for the pages'
open streams."""

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.live import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("GRIDWORK_TEST_ARTIFACTS", "test-artifacts"))

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
    reason="needs Debian's chromium (scripts/run-tests.sh installs it)",
)


@pytest.fixture
async def browser(live: LiveServer) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()
