"""A headless Chromium driven by Playwright, for tests of Airflow's web UI.

Playwright comes from the package index (the ``test`` extra); its own browser download cannot be
reached from here, so it drives Debian's ``chromium`` package instead, which ``.ci/run`` installs
with apt (``make browser`` does the same on a developer machine). Screenshots go to
:data:`ARTIFACTS` (ignored by git) so that a failed run can be looked at afterwards.

Usage::

    with chromium() as browser:
        page = new_page(browser, base_url)
        ...
        screenshot(page, "connection-form")

or, for one page, ``with chromium_page() as page:``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
#: Where screenshots of browser tests are saved (``test-artifacts/`` at the repo root).
ARTIFACTS = REPO / "test-artifacts"
#: Debian's Chromium; ``VOICETRACK_CHROMIUM`` overrides it.
CHROMIUM = os.environ.get("VOICETRACK_CHROMIUM", "/usr/bin/chromium")
#: Flags for a root user in a container: no sandbox (it needs user namespaces), no /dev/shm
#: (often 64 MB in containers, too small for the renderer), no GPU.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu")
#: Longest wait for one Playwright action or assertion, in milliseconds; keeps a broken page from
#: hanging a test until pytest's own timeout.
ACTION_TIMEOUT_MS = 30_000
# ``expect(...)`` assertions wait as long as actions (Playwright's default is 5 s): pressing Test
# runs a token request and a search in the API server, which takes longer on a loaded machine.
expect.set_options(timeout=ACTION_TIMEOUT_MS)


def chromium_path() -> str:
    """
    :return: the Chromium binary to drive.
    :raises RuntimeError: naming the package to install when there is none.
    """
    path = shutil.which(CHROMIUM)
    if path is None:
        raise RuntimeError(
            f"no Chromium at {CHROMIUM}: install Debian's package with `apt-get install -y chromium` "
            "(`make browser` does it) or point VOICETRACK_CHROMIUM at a Chromium binary"
        )
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """Start a headless Chromium (and Playwright's driver) and stop both on exit, always."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=list(CHROMIUM_ARGS), timeout=ACTION_TIMEOUT_MS * 2
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium_page(width: int = 1280, height: int = 800) -> Iterator[Page]:
    """
    One page of a headless Chromium, closed (browser and driver) on exit.

    :param width: viewport width in CSS pixels (screenshots get this size).
    :param height: viewport height.
    """
    with chromium() as browser:
        yield new_page(browser, None, width=width, height=height)


def new_page(browser: Browser, base_url: str | None, *, width: int = 1280, height: int = 1000) -> Page:
    """
    A page in a fresh context (its own cookies) whose relative ``goto`` paths start at ``base_url``.

    :param width: of the viewport, in CSS pixels.
    :param height: of the viewport: a tall one lets a screenshot hold a whole dialog.
    """
    context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    return context.new_page()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as ``test-artifacts/<name>.png`` and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
