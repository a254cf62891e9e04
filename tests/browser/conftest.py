"""Browser fixtures: Debian's Chromium driven by Playwright's sync API (never
`playwright install`), one browser per module, a fresh context per test with every
request recorded so a test can prove the page stays on the gateway."""

from __future__ import annotations

import hashlib
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from calib_core import events
from calib_stack import synthetic
from tests.support.plugin import Plugin
from tests.support.system import ADMIN_TOKEN

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
WIDE, NARROW = 1280, 768
HEIGHT = 900

expect.set_options(timeout=15_000)

#: Elements wider than their box at the current width: the page itself, or a table's frame.
OVERFLOWING = """() => [document.documentElement, ...document.querySelectorAll('.table-wrap')]
    .filter((e) => e.offsetParent !== null || e === document.documentElement)
    .filter((e) => e.scrollWidth > e.clientWidth + 1)
    .map((e) => `${e.tagName.toLowerCase()}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`)"""


def off_main_thread(function, *args):
    """Run ``function`` in a worker thread: the sync Playwright API keeps an event loop
    running on this thread, and the plugin and other helpers use ``asyncio.run``."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def dark_files(
    camera: synthetic.Camera,
    count: int,
    *,
    exposure_s: float = 30.0,
    temperature_c: float = -10.0,
    seed: int = 1,
) -> list[bytes]:
    """``count`` distinct dark FITS files: one simulated dark plus cheap per-frame noise."""
    rng = np.random.default_rng(seed)
    base = synthetic.dark_frame(camera, exposure_s=exposure_s, temperature_c=temperature_c, rng=rng)
    files = []
    for index in range(count):
        noise = rng.integers(0, 8, size=base.shape, dtype=np.uint32)
        header = synthetic.nina_header(
            frame_type="dark",
            camera=camera,
            exposure_s=exposure_s,
            temperature_c=temperature_c + 0.05 * (index % 3),
            set_temperature_c=temperature_c,
            captured_at=datetime.now(UTC) - timedelta(minutes=60 - index),
        )
        pixels = (base.astype(np.uint32) + noise).clip(max=65535).astype(np.uint16)
        files.append(synthetic.fits_bytes(pixels, header))
    return files


def register_all(plugin: Plugin, observatory_id: str, files: list[bytes]) -> None:
    """Upload every file, then announce them all over one NATS connection."""

    def run() -> None:
        messages = []
        for data in files:
            event = events.FrameRegistered(
                event_id=uuid.uuid4().hex,
                observatory_id=observatory_id,
                storage_key=plugin.upload(observatory_id, data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
            messages.append((event, event.event_id))
        plugin.announce(messages)

    off_main_thread(run)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class AdminPage:
    """The admin page in one browser tab, with the actions the tests take."""

    def __init__(self, page: Page, base_url: str):
        self.page = page
        self.base_url = base_url

    def open(self, tab: str = "masters", observatory: str = "") -> None:
        query = f"?obs={observatory}" if observatory else ""
        self.page.goto(f"{self.base_url}/admin/#/{tab}{query}")

    def sign_in(
        self, token: str = ADMIN_TOKEN, tab: str = "masters", observatory: str = ""
    ) -> None:
        self.open(tab, observatory)
        self.page.get_by_label("Access token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("tablist")).to_be_visible()

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name, exact=True).click()
        expect(self.page.get_by_role("tab", name=name, exact=True)).to_have_attribute(
            "aria-selected", "true"
        )

    def screenshot(self, name: str) -> None:
        """``<name>-1280.png`` and ``<name>-768.png`` in test-artifacts/browser/; at both
        widths nothing may stick out sideways (no page or table needs a horizontal scroll)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for width in (WIDE, NARROW):
            self.page.set_viewport_size({"width": width, "height": HEIGHT})
            self.page.screenshot(path=ARTIFACTS / f"{name}-{width}.png", full_page=True)
            overflowing = self.page.evaluate(OVERFLOWING)
            assert overflowing == [], (
                f"{name} at {width} px is wider than the window: {overflowing}"
            )
        self.page.set_viewport_size({"width": WIDE, "height": HEIGHT})


@pytest.fixture
def admin_page(browser, system):
    """A fresh browser context on the page; afterwards, asserts that every request went to
    the gateway (no external network) and that no script error happened."""
    context = browser.new_context(viewport={"width": WIDE, "height": HEIGHT}, accept_downloads=True)
    page = context.new_page()
    requests: list[str] = []
    script_errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        yield AdminPage(page, system.base_url)
    finally:
        context.close()
    outside = [
        url
        for url in requests
        if not url.startswith(system.base_url + "/") and not re.match(r"^(data|blob):", url)
    ]
    assert outside == [], f"the page reached outside the gateway: {outside}"
    assert script_errors == [], f"script errors on the page: {script_errors}"
