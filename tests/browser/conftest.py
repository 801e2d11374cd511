"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium; never `playwright install`) through
the console's real pages, served with a real worker against the loopback fakes (the `make demo` set-up).

Screenshots land in artifacts/screenshots/ (CI keeps them). Without Chromium the tests skip, saying how to
install it; under CI a skip is a failure, as for the other back ends.
"""

import io
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.demo import Demo

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's fifteen executions, served on a free port with a real worker."""
    with Demo(port=0, instance_path=tmp_path_factory.mktemp("demo"), out=io.StringIO()) as running:
        running.run()
        yield running


@pytest.fixture(scope="session")
def browser():
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        skip_or_fail("Debian's chromium is not installed: `make chromium` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile (no cookies) per test, phone-sized when the test asks for it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
