"""
``make airflow`` (``python -m example_dags.airflow_ui``) seen through Airflow's own web UI.

The entry point starts the emulator and Airflow's four services as a newcomer would; a real
Chromium (Playwright) logs in with the credentials it printed, finds the example DAGs, waits for a
daily extraction run to succeed and reads that task's log in the UI. The record count in the log is
checked against the emulator's own data. Screenshots go to ``.airflow/artifacts/make-airflow/``
with ``timings.json`` (seconds from start until the UI showed the first successful run). SIGTERM
then stops everything the entry point started.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from airflow_deployment import REPO, wait_until
from playwright.sync_api import Page
from support.browser import chromium_page

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

ARTIFACTS = REPO / ".airflow" / "artifacts" / "make-airflow"
EXTRACT, GATE, BACKFILL = (
    "example_voicetrack_extract",
    "example_voicetrack_gate",
    "example_voicetrack_backfill",
)
STARTUP_TIMEOUT_S = 300
#: How long the UI may take to show a finished run once Airflow is up.
RUN_TIMEOUT_S = 300
#: How long one page may take to show its data on a loaded machine.
UI_TIMEOUT_MS = 60_000
SUMMARY = re.compile(r"Extracted (\d+) messages in \d+ pages, \d+ bytes to (\S+)")


@dataclass
class MakeAirflow:
    """The running entry point: its process, what it printed, and where it serves."""

    process: subprocess.Popen[str]
    started: float
    lines: list[str] = field(default_factory=list)
    url: str = ""
    password: str = ""
    emulator_url: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def printed(self, pattern: str) -> re.Match[str] | None:
        assert self.process.poll() is None, "make airflow exited:\n" + "\n".join(self.lines)
        return next((m for line in self.lines if (m := re.search(pattern, line))), None)

    def seconds(self) -> float:
        return time.monotonic() - self.started


@pytest.fixture(scope="module")
def output_dir() -> Iterator[Path]:
    # tempfile's plain /tmp/voicetrack-output-XXXX names nothing of this machine, so the asset
    # screenshots (whose URI is the output folder) can go into the README as they are.
    path = Path(tempfile.mkdtemp(prefix="voicetrack-output-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def make_airflow(tmp_path_factory: pytest.TempPathFactory, output_dir: Path) -> Iterator[MakeAirflow]:
    """``python -m example_dags.airflow_ui`` on a free port, stopped with SIGTERM at module end."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    command = [sys.executable, "-m", "example_dags.airflow_ui", "--port", "0", "--days", "3"]
    home = tmp_path_factory.mktemp("make-airflow-home")
    running = MakeAirflow(
        subprocess.Popen(
            [*command, "--home", str(home), "--output", str(output_dir)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
        time.monotonic(),
    )
    threading.Thread(target=running.read, daemon=True).start()
    try:
        up = wait_until(
            lambda: running.printed(r"Airflow is up after \d+ s:\s+(\S+)"),
            timeout=STARTUP_TIMEOUT_S,
            what="make airflow to print the URL",
        )
        running.url = up.group(1)
        running.timings["airflow_up_s"] = running.seconds()
        login = running.printed(r"Log in as 'admin', password '([^']+)'")
        assert login is not None, running.lines
        running.password = login.group(1)
        emulator = running.printed(r"Emulator serving on (http://127\.0\.0\.1:\d+)")
        assert emulator is not None, running.lines
        running.emulator_url = emulator.group(1)
        yield running
    finally:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=120)
        (ARTIFACTS / "timings.json").write_text(json.dumps(running.timings, indent=2) + "\n")
        (ARTIFACTS / "make-airflow.out").write_text("\n".join(running.lines) + "\n")


@pytest.fixture(scope="module")
def page(make_airflow: MakeAirflow) -> Iterator[Page]:
    """A browser page logged in to the UI with the user and password ``make airflow`` printed."""
    with chromium_page() as page:
        page.goto(make_airflow.url + "/")
        page.locator("input[name=username]").fill("admin")
        page.locator("input[name=password]").fill(make_airflow.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"^(?!.*/auth/login)"), timeout=60_000)
        yield page


def show(page: Page, url: str, *expected: str) -> str:
    """
    Open ``url``, wait until the UI has fetched its data, and return the page's text.

    :param expected: texts to wait for (the UI renders its frame before its data arrives).
    """
    page.goto(url)
    page.wait_for_load_state("networkidle")
    for text in expected:
        page.get_by_text(text).first.wait_for(timeout=UI_TIMEOUT_MS)
    return page.inner_text("body")


def snap(page: Page, name: str) -> None:
    page.wait_for_timeout(1_500)  # charts and grid animate in
    page.screenshot(path=ARTIFACTS / f"{name}.png")


def successful_run(page: Page, url: str, dag_id: str) -> str | None:
    """The id of a run the DAG's Runs tab lists as Success, if any."""
    show(page, f"{url}/dags/{dag_id}/runs", "Dag Run ID")
    for row in page.locator("tbody tr").all():
        if "Success" in row.inner_text():
            href = row.locator(f"a[href*='/dags/{dag_id}/runs/']").first.get_attribute("href")
            assert href is not None
            return href.rstrip("/").split("/runs/")[1].split("/")[0]
    return None


def test_the_ui_lists_the_example_dags(make_airflow: MakeAirflow, page: Page) -> None:
    text = show(page, f"{make_airflow.url}/dags", "example_voicetrack")

    for dag_id in (EXTRACT, GATE, BACKFILL):
        assert dag_id in text
    snap(page, "dags")


def test_the_gate_sensor_shows_deferred_then_success(make_airflow: MakeAirflow, page: Page) -> None:
    run_id = wait_until(
        lambda: _first_run_id(page, make_airflow.url, GATE), timeout=120, what=f"a {GATE} run in the UI"
    )
    sensor = f"{make_airflow.url}/dags/{GATE}/runs/{run_id}/tasks/wait_for_calls"
    seen: list[str] = []

    def finished() -> bool:
        text = show(page, sensor, "wait_for_calls")
        state = re.search(r"\b(Deferred|Success|Failed|Running|Queued|Scheduled|Up For Retry)\b", text)
        if state and (not seen or seen[-1] != state.group(1)):
            seen.append(state.group(1))
            if state.group(1) == "Deferred":
                show(page, f"{make_airflow.url}/dags/{GATE}/runs/{run_id}", "wait_for_calls")
                snap(page, "gate-sensor-deferred")
        return bool(seen) and seen[-1] in ("Success", "Failed")

    wait_until(finished, timeout=RUN_TIMEOUT_S, what="the gate sensor to finish", every=2)
    make_airflow.timings["gate_sensor_done_s"] = make_airflow.seconds()
    assert seen[-1] == "Success", seen
    assert "Deferred" in seen, f"the UI never showed the sensor deferred: {seen}"
    snap(page, "gate-sensor-success")


def _first_run_id(page: Page, url: str, dag_id: str) -> str | None:
    show(page, f"{url}/dags/{dag_id}/runs", "Dag Run ID")
    link = page.locator(f"tbody a[href*='/dags/{dag_id}/runs/']").first
    if not link.count():
        return None
    href = link.get_attribute("href")
    return href.rstrip("/").split("/runs/")[1].split("/")[0] if href else None


def test_an_extraction_run_succeeds_and_its_log_shows_the_summary(
    make_airflow: MakeAirflow, page: Page
) -> None:
    run_id = wait_until(
        lambda: successful_run(page, make_airflow.url, EXTRACT),
        timeout=RUN_TIMEOUT_S,
        what=f"a successful {EXTRACT} run in the UI",
        every=2,
    )
    make_airflow.timings["successful_run_seen_in_ui_s"] = make_airflow.seconds()
    # The entry point reports each finished run as soon as the REST API (the UI's source) has it.
    reported = make_airflow.printed(rf"\[\s*(\d+) s\] {EXTRACT}: run \S+ success")
    assert reported is not None, make_airflow.lines
    make_airflow.timings["first_successful_run_reported_s"] = float(reported.group(1))

    task = f"{make_airflow.url}/dags/{EXTRACT}/runs/{run_id}/tasks/extract_voice_messages"
    log = show(page, task, "Extracted")
    summary = SUMMARY.search(log)
    assert summary is not None, log[-3000:]
    snap(page, "extract-task-log")
    records, path = int(summary.group(1)), summary.group(2)
    interval = re.search(r"voicetrack_(\d{8}T\d{6}Z)_(\d{8}T\d{6}Z)\.jsonl$", path)
    assert interval is not None, path
    truth = _truth(make_airflow.emulator_url, *interval.groups())
    assert records == len(truth) > 0


def _truth(emulator_url: str, start: str, end: str) -> list[dict[str, Any]]:
    """The emulator's own messages of an interval given as the output file names it."""

    def iso(compact: str) -> str:
        return (
            f"{compact[:4]}-{compact[4:6]}-{compact[6:8]}T{compact[9:11]}:{compact[11:13]}:{compact[13:15]}Z"
        )

    response = httpx.post(
        f"{emulator_url}/_emulator/truth",
        params={"from": iso(start), "to": iso(end)},
        json=[],
        timeout=60,
    )
    response.raise_for_status()
    return list(response.json()["content"])


def test_the_fan_out_shows_one_mapped_task_per_window(make_airflow: MakeAirflow, page: Page) -> None:
    run_id = wait_until(
        lambda: successful_run(page, make_airflow.url, BACKFILL),
        timeout=RUN_TIMEOUT_S,
        what=f"a successful {BACKFILL} run in the UI",
        every=3,
    )
    show(page, f"{make_airflow.url}/dags/{BACKFILL}/runs/{run_id}", "total_records")

    rows = [row.inner_text() for row in page.locator("tbody tr").all()]
    mapped = [row for row in rows if row.split()[:1] == ["extract_window"]]
    triggered = make_airflow.printed(rf"Triggered {BACKFILL}: (\S+) to (\S+) in (\d+) h windows")
    assert triggered is not None, make_airflow.lines
    start, end = (datetime.fromisoformat(value.replace("Z", "+00:00")) for value in triggered.group(1, 2))
    windows = math.ceil((end - start) / timedelta(hours=int(triggered.group(3))))
    assert len(mapped) == windows, rows
    assert all("Success" in row for row in mapped), mapped
    snap(page, "backfill-mapped-tasks")


def test_the_grid_and_the_asset_with_its_events(make_airflow: MakeAirflow, page: Page) -> None:
    show(page, f"{make_airflow.url}/dags/{EXTRACT}", "extract_voice_messages", "Created Asset Events")
    snap(page, "extract-grid")

    show(page, f"{make_airflow.url}/assets", "voicetrack/daily")
    href = page.locator("a[href*='/assets/']", has_text="voicetrack/daily").first.get_attribute("href")
    assert href is not None
    text = show(page, make_airflow.url + href, EXTRACT)

    assert "voicetrack/daily" in text
    snap(page, "asset-daily")


def test_sigterm_stops_everything_it_started(make_airflow: MakeAirflow) -> None:
    parent = psutil.Process(make_airflow.process.pid)
    started = [" ".join(child.cmdline()) for child in parent.children()]
    # The emulator and Airflow's four services (the API server renames itself "airflow api_server").
    for name in ("airflow_voicetrack.emulator", "api.server", "scheduler", "dag-processor", "triggerer"):
        assert sum(bool(re.search(name, command)) for command in started) == 1, (name, started)
    family = parent.children(recursive=True)

    make_airflow.process.send_signal(signal.SIGTERM)

    assert make_airflow.process.wait(timeout=120) == 0
    _, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], [p.cmdline() for p in alive]
    wait_until(lambda: "Stopped." in make_airflow.lines, timeout=10, what="the last line")
