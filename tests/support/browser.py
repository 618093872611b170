"""A real browser for UI tests: Playwright driving Debian's Chromium (``apt-get install chromium``).

``playwright install`` cannot download browsers here, so the system's Chromium is launched
directly; ``--no-sandbox`` because tests may run as root in CI containers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def chromium_page(width: int = 1280, height: int = 800) -> Iterator[Page]:
    """
    One page of a headless Chromium, closed (browser and driver) on exit.

    :param width: viewport width in CSS pixels (screenshots get this size).
    :param height: viewport height.
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
