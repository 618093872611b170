"""The documentation site as a reader meets it: built with warnings as errors, served on 127.0.0.1,
every page opened in Chromium, every internal link, anchor and image followed.

It saves screenshots of the home page and of an API page to ``docs/images/`` (``site-home.png``,
``site-api.png``), where the README and the report show them.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
from support.browser import chromium, new_page

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[3]
IMAGES = REPO / "docs" / "images"
#: Every page of the nav must be reached by the crawl (a page only in the files would be orphaned).
NAV_PAGES = {
    "index.html",
    "getting-started.html",
    "connection.html",
    "guides/hourly-to-s3.html",
    "guides/gating.html",
    "guides/backfills.html",
    "guides/pools.html",
    "guides/personal-data.html",
    "guides/probe.html",
    "guides/emulator.html",
    "reference/hook.html",
    "reference/operator.html",
    "reference/sensor.html",
    "reference/limits.html",
    "reliability.html",
    "scaling.html",
    "reference/benchmarks.html",
    "api/index.html",
    "api/hooks.html",
    "api/operator.html",
    "api/sensor.html",
    "api/trigger.html",
    "api/exceptions.html",
    "api/protocol.html",
    "api/emulator.html",
    "development.html",
    "changelog.html",
}


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as ``make docs`` builds it (``--strict``: a warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1, as a static file server serves it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_every_internal_link_anchor_and_image_resolves(base_url: str) -> None:
    broken: list[str] = []
    visited: set[str] = set()
    queue = [base_url + "index.html"]
    anchors: dict[str, set[str]] = {}  # page URL -> element ids on it
    wanted: list[tuple[str, str, str]] = []  # (from page, target page, fragment)
    with chromium() as browser:
        page = new_page(browser, base_url)
        while queue:
            url = queue.pop()
            if url in visited:
                continue
            visited.add(url)
            response = page.goto(url)
            if response is None or response.status != 200:
                broken.append(f"{url}: HTTP {None if response is None else response.status}")
                continue
            if not url.endswith(".html"):
                continue  # a file the site links to (an image, a download): it loads, enough
            anchors[url] = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
            for image in page.eval_on_selector_all(
                "img", "els => els.map(e => [e.currentSrc || e.src, e.complete && e.naturalWidth > 0])"
            ):
                if not image[1]:
                    broken.append(f"{url}: image {image[0]} does not load")
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                target, fragment = urldefrag(href)
                if not target.startswith(base_url):
                    continue  # an external site: not followed (no network here)
                if target.endswith("/"):
                    target += "index.html"
                if fragment:
                    wanted.append((url, target, fragment))
                queue.append(target)
    for source, target, fragment in wanted:
        if target in anchors and fragment not in anchors[target]:
            broken.append(f"{source}: no #{fragment} on {target}")
    assert broken == [], "\n".join(broken)
    reached = {urlsplit(url).path.lstrip("/") for url in visited}
    assert reached >= NAV_PAGES, sorted(NAV_PAGES - reached)


def test_screenshots_of_the_home_page_and_an_api_page(base_url: str) -> None:
    with chromium() as browser:
        page = new_page(browser, base_url, width=1280, height=900)
        page.goto("index.html")
        assert page.locator("h1").first.inner_text().startswith("airflow-provider-voicetrack")
        page.screenshot(path=str(IMAGES / "site-home.png"))
        page.goto("api/operator.html")
        # The reference is generated from the docstrings: the class, its arguments, their docs.
        heading = '[id="airflow_voicetrack.operators.voicetrack.VoiceTrackingOperator"]'
        assert page.locator(heading).count() == 1
        assert "overwrite_each_run" in page.locator("body").inner_text()
        page.screenshot(path=str(IMAGES / "site-api.png"))
    assert (IMAGES / "site-home.png").stat().st_size > 10_000
    assert (IMAGES / "site-api.png").stat().st_size > 10_000
