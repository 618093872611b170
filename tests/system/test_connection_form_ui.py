"""
The connection form as a user meets it: Airflow's own web UI in a real (headless) Chromium.

Airflow's API server alone serves the UI (editing and testing a connection needs no scheduler);
Playwright drives Debian's Chromium (:mod:`support.browser`). The test adds a "Routee Voice
Tracking" connection to the emulator through the form, reads back what Airflow stored, reopens
it, presses Test, then saves a wrong secret and presses Test again. The filled form is saved as
``test-artifacts/connection-form.png`` and ``connection-form-extras.png``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from airflow_deployment import AirflowDeployment
from playwright.sync_api import Page, expect
from support.browser import chromium, new_page, screenshot

from airflow_voicetrack.constants import DEFAULT_TOKEN_URL
from airflow_voicetrack.emulator.process import EmulatorProcess

# The API server starts in ~30 s on a loaded machine; each browser step waits 30 s at most.
pytestmark = [pytest.mark.browser, pytest.mark.system, pytest.mark.timeout(300)]

CONN_ID = "voicetrack_ui"
WRONG_SECRET = "wrong-secret-4f1c"


@pytest.fixture(scope="module")
def airflow(deployment_factory: Callable[..., AirflowDeployment], tmp_path_factory) -> AirflowDeployment:
    """Airflow's API server (and UI) alone, with the Test button enabled."""
    dags: Path = tmp_path_factory.mktemp("no-dags")
    return deployment_factory(dags, {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}, api_server_only=True)


@pytest.fixture
def page(airflow: AirflowDeployment) -> Iterator[Page]:
    with chromium() as browser:
        # Tall enough that a screenshot holds the whole Add Connection dialog.
        yield new_page(browser, airflow.url, height=2400)


def _row_button(page: Page, name: str) -> None:
    page.get_by_role("row").filter(has_text=CONN_ID).get_by_role("button", name=name).click()


def _test_result(page: Page, outcome: str) -> str:
    """
    Press Test on the connection's row; return the text of the notification it raises.

    :param outcome: the notification's title, "Successful" or "Failed"; each is raised once by the
        test, and earlier notifications may still be on screen (a wrong outcome times out here,
        showing the notifications in the failure message).
    """
    _row_button(page, "Test Connection")
    toast = page.get_by_role("status").filter(has_text=f"Test Connection {outcome}")
    expect(toast).to_be_visible()
    return toast.inner_text()


def test_add_reopen_and_test_the_connection_in_airflows_ui(
    airflow: AirflowDeployment, emulator_session: EmulatorProcess, page: Page
) -> None:
    emu = emulator_session
    port = str(urlsplit(emu.url).port)

    # Add the connection through the form.
    page.goto("/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.locator("input[name=connection_id]").fill(CONN_ID)
    page.get_by_role("combobox").fill("Routee")
    page.get_by_role("option", name="Routee Voice Tracking").click()
    page.locator("input[name=host]").fill(emu.url)
    page.locator("input[name=port]").fill(port)
    page.locator("input[name=login]").fill(emu.client_id)
    page.locator("input[name=password]").fill(emu.client_secret)
    expect(page.get_by_text("Port (for Test)", exact=True)).to_be_visible()
    screenshot(page, "connection-form")
    # The extras are a second section of the form, which closes the first when it opens.
    page.get_by_text("Extra Fields", exact=True).click()
    page.locator("input[name=element_auth_url]").fill(emu.token_url)
    # What the user reads: labels, and the defaults the hook applies to empty fields.
    expect(page.get_by_text("Token URL", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Default: {DEFAULT_TOKEN_URL}")).to_be_visible()
    expect(page.get_by_text("Turn off only for test servers. Default: true.")).to_be_visible()
    screenshot(page, "connection-form-extras")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text=CONN_ID)).to_be_visible()

    # What Airflow stored: the token URL in clear, untouched fields empty (no frozen defaults).
    stored = airflow.api("GET", f"/connections/{CONN_ID}")
    assert (stored["host"], stored["port"], stored["login"]) == (emu.url, int(port), emu.client_id)
    extra = json.loads(stored["extra"])
    assert extra.pop("auth_url") == emu.token_url
    assert set(extra.values()) <= {None}, extra

    # Reopen it: the token URL is readable, not "***".
    _row_button(page, "Edit Connection")
    page.get_by_text("Extra Fields", exact=True).click()
    expect(page.locator("input[name=element_auth_url]")).to_have_value(emu.token_url)
    page.get_by_role("button", name="Close").click()

    # Test: a token and a search against the emulator.
    result = _test_result(page, "Successful")
    assert "Connection works: got a token" in result, result

    # A wrong secret: a clear failure that does not echo the secret.
    _row_button(page, "Edit Connection")
    page.locator("input[name=password]").fill(WRONG_SECRET)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    result = _test_result(page, "Failed")
    screenshot(page, "connection-test-wrong-secret", full_page=False)
    assert "Credentials rejected" in result, result
    assert WRONG_SECRET not in result and emu.client_secret not in result
