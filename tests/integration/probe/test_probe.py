"""The API probe against the emulator: every assumption holds there, and each emulator deviation
(an API that breaks one assumption) is reported as not holding, within the request budget; a service
that ignores our parameter names (``--lenient-params --date-params dateStart,dateEnd``) is named."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_voicetrack import probe
from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.probe import FAILS, HOLDS, UNCLEAR, Finding, ProbeClient
from airflow_voicetrack.protocol import Settings

SECRET = "probe-test-secret-51c9"
#: The checks' rows, in order, by the start of their assumption.
ROWS = (
    "Dates are sent in UTC",
    "One search accepts a range of a day or more",
    "Searches reach back further than 7 days",
    "The date filter is honoured",
    "The date range's parameters are named from, to",
    "The campaign filter is honoured",
    "Pages hold up to 2000 messages",
    "Sort syntax",
    "The range is half-open",
    "Several filters combine with AND",
    "The boolean parameter is tagged",
    "Unknown is final",
    "A 429 says in Retry-After",
)


@pytest.fixture(scope="module")
def recent_emulator() -> Iterator[EmulatorProcess]:
    """3,000 messages over the 20 days before now, as a service with our parameter names."""
    with recent() as emu:
        yield emu


def recent(**kwargs: Any) -> EmulatorProcess:
    """3,000 messages over the 20 days before now: the probe searches back from now."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return EmulatorProcess(
        messages=3000,
        seed=19,
        start=(now - timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        end=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        client_secret=SECRET,
        **kwargs,
    )


@pytest.fixture(scope="module")
def mismatched_emulator() -> Iterator[EmulatorProcess]:
    """The same data, served by a service that reads dateStart/dateEnd and ignores unknown parameters."""
    with recent(lenient_params=True, date_params=("dateStart", "dateEnd")) as emu:
        yield emu


@pytest.fixture
def emu(recent_emulator: EmulatorProcess) -> EmulatorProcess:
    recent_emulator.reset()
    return recent_emulator


def settings_of(url: str, token_url: str) -> Settings:
    return Settings.from_connection(
        conn_id="test",
        host=url,
        port=None,
        login="demo-app-id",
        password=SECRET,
        extra={"auth_url": token_url},
        overrides={},
    )


def settings(emu: EmulatorProcess) -> Settings:
    return settings_of(emu.url, emu.token_url)


def run_probe(emu: EmulatorProcess) -> dict[str, Finding]:
    client = ProbeClient(settings(emu), max_wait=0.05)
    try:
        findings = probe.run(client, unknown_wait=0.5)
    finally:
        client.close()
    assert [f.assumption for f in findings] == [
        next(f.assumption for f in findings if f.assumption.startswith(row)) for row in ROWS
    ]
    return {row: next(f for f in findings if f.assumption.startswith(row)) for row in ROWS}


def results(findings: dict[str, Finding]) -> dict[str, str]:
    return {row: finding.result for row, finding in findings.items()}


def only_searches_and_a_token_within_the_budget(emu: EmulatorProcess) -> None:
    stats = emu.stats()
    assert set(stats["requests"]) == {"POST /oauth/token", "POST /voice/tracking"}, stats
    assert stats["total"] <= probe.DEFAULT_MAX_REQUESTS


def test_every_assumption_holds_against_the_emulator(emu: EmulatorProcess) -> None:
    findings = run_probe(emu)
    expected = dict.fromkeys(ROWS, HOLDS)
    expected["A 429 says in Retry-After"] = UNCLEAR  # the emulator sends none unless told to
    assert results(findings) == expected, findings
    only_searches_and_a_token_within_the_budget(emu)
    # The evidence is the emulator's own data.
    truth = emu.truth()
    boundary = findings["The range is half-open"].evidence
    assert "ending at it: not found; ending 1 ms later: found" in boundary
    assert any(m["messageId"] in boundary for m in truth)
    assert f"all: {len(truth)}" in findings["The boolean parameter is tagged"].evidence
    dates = findings["The date filter is honoured"].evidence
    assert "3653 days ago: 0 messages" in dates and f"widest: {len(truth)} messages" in dates
    assert findings["The date range's parameters are named from, to"].evidence == ("from/to are honoured")
    assert f"without it: {len(truth)} messages" in findings["The campaign filter is honoured"].evidence


def test_a_service_that_ignores_our_date_names_is_named(mismatched_emulator: EmulatorProcess) -> None:
    mismatched_emulator.reset()
    findings = run_probe(mismatched_emulator)
    dates = findings["The date filter is honoured"]
    names = findings["The date range's parameters are named from, to"]
    assert (dates.result, names.result) == (FAILS, FAILS), findings
    assert "3653 days ago: 3000 messages" in dates.evidence and "whole history" in dates.evidence
    assert "the service honours dateStart/dateEnd, the provider sends from/to" in names.evidence
    assert "with dateStart/dateEnd: 3653 days ago: 0 messages" in names.evidence
    # trackingId is the service's own name: the campaign filter still works.
    assert findings["The campaign filter is honoured"].result == HOLDS
    # What relies on the date filter cannot tell, rather than report a wrong result.
    assert findings["The range is half-open"].result == UNCLEAR
    only_searches_and_a_token_within_the_budget(mismatched_emulator)


def test_a_strict_service_with_the_other_names_is_named_too() -> None:
    # Without --lenient-params our names get a 400: every search of the ladder is refused.
    with recent(date_params=("dateStart", "dateEnd")) as emu:
        findings = run_probe(emu)
        only_searches_and_a_token_within_the_budget(emu)
    names = findings["The date range's parameters are named from, to"]
    assert names.result == FAILS
    assert "unknown parameter" in names.evidence
    assert "the service honours dateStart/dateEnd, the provider sends from/to" in names.evidence
    assert findings["The date filter is honoured"].result == UNCLEAR


def test_a_service_that_ignores_tracking_id_fails_the_campaign_row() -> None:
    # The emulator always reads trackingId, so a service that ignores it is played by a client that
    # answers every search with the same page.
    class IgnoresTrackingId(ProbeClient):
        def search(self, *args: Any, **kwargs: Any) -> probe.Page:
            return probe.Page(200, 3000, [], 1)

    client = IgnoresTrackingId(settings_of("http://127.0.0.1:9", "http://127.0.0.1:9/oauth/token"))
    ctx = probe.Context(now_ms=0, data_range=(31, probe.Page(200, 3000)))
    (finding,) = probe.check_campaign_filter(client, ctx)
    client.close()
    assert finding.result == FAILS
    assert "3000 messages; without it: 3000 messages: the campaign filter is not applied" in finding.evidence


@pytest.mark.parametrize(
    ("deviation", "broken"),
    [
        ({"inclusive_date_end": 1}, "The range is half-open"),
        ({"filters_combine": "or"}, "Several filters combine with AND"),
        ({"max_page_size": 1000}, "Pages hold up to 2000 messages"),
        ({"rate_limit_rate": 0.1, "retry_after_mode": "none"}, "A 429 says in Retry-After"),
    ],
)
def test_an_api_breaking_one_assumption_is_reported_as_not_holding(
    emu: EmulatorProcess, deviation: dict[str, Any], broken: str
) -> None:
    emu.set_faults(**deviation)
    findings = run_probe(emu)
    expected = dict.fromkeys(ROWS, HOLDS)
    expected["A 429 says in Retry-After"] = UNCLEAR
    expected[broken] = FAILS
    assert results(findings) == expected, findings
    only_searches_and_a_token_within_the_budget(emu)


def test_inclusive_date_end_evidence_names_the_duplicate_on_a_boundary(emu: EmulatorProcess) -> None:
    emu.set_faults(inclusive_date_end=1)
    evidence = run_probe(emu)["The range is half-open"].evidence
    assert "ending at it: found; ending 1 ms later: found" in evidence
    assert "both adjacent windows" in evidence


def test_429_with_retry_after_holds(emu: EmulatorProcess) -> None:
    emu.set_faults(rate_limit_rate=0.1, retry_after_mode="seconds", retry_after=0)
    finding = run_probe(emu)["A 429 says in Retry-After"]
    assert finding.result == HOLDS
    assert "Retry-After: 0" in finding.evidence


def test_a_range_limit_under_a_day_fails_and_leaves_the_rest_untold(emu: EmulatorProcess) -> None:
    emu.set_faults(max_range_days=0.5)
    findings = run_probe(emu)
    assert findings[ROWS[1]].result == FAILS
    assert (
        "must not be longer than 0.5 days" in findings["One search accepts a range of a day or more"].evidence
    )
    assert {row: r for row, r in results(findings).items() if row != ROWS[1]} == dict.fromkeys(
        [row for row in ROWS if row != ROWS[1]], UNCLEAR
    )


def test_a_small_budget_stops_the_probe_and_says_so(emu: EmulatorProcess) -> None:
    client = ProbeClient(settings(emu), max_requests=12)
    findings = probe.run(client, unknown_wait=0)
    client.close()
    assert emu.stats()["total"] == 12
    assert any("the request budget (12) ran out" in f.evidence for f in findings)


def command_line(emu: EmulatorProcess, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_voicetrack.probe", "--unknown-wait", "0.5", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.mark.slow  # a subprocess importing Airflow, ~3-6 s
def test_command_line_without_airflow_connection_prints_the_table(emu: EmulatorProcess) -> None:
    done = command_line(
        emu,
        *("--host", emu.url, "--auth-url", emu.token_url, "--app-id", emu.client_id),
        env={"VOICETRACK_APP_SECRET": SECRET},
    )
    assert done.returncode == 0, done.stderr
    assert "| assumption | how it was tested | result | evidence |" in done.stdout
    assert done.stdout.count("| holds |") == len(ROWS) - 1
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.slow  # a subprocess importing Airflow, ~3-6 s
def test_command_line_with_conn_id_reads_the_airflow_connection_and_exits_1_when_one_fails(
    emu: EmulatorProcess,
) -> None:
    emu.set_faults(inclusive_date_end=1)
    done = command_line(
        emu, "--conn-id", "probe_target", env={"AIRFLOW_CONN_PROBE_TARGET": emu.connection_json()}
    )
    assert done.returncode == 1, done.stderr
    assert "| **does not hold** |" in done.stdout
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.slow  # a subprocess importing Airflow, ~3-6 s
def test_command_line_exits_1_when_our_names_are_not_honoured(mismatched_emulator: EmulatorProcess) -> None:
    mismatched_emulator.reset()
    done = command_line(
        mismatched_emulator,
        "--conn-id",
        "probe_target",
        env={"AIRFLOW_CONN_PROBE_TARGET": mismatched_emulator.connection_json()},
    )
    assert done.returncode == 1, done.stderr
    assert "| The date filter is honoured | " in done.stdout
    assert "the service honours dateStart/dateEnd, the provider sends from/to" in done.stdout


def test_command_line_refuses_missing_credentials_before_any_request(emu: EmulatorProcess) -> None:
    done = command_line(emu, "--host", emu.url, "--app-id", "x", env={"VOICETRACK_APP_SECRET": ""})
    assert done.returncode == 2
    assert "set the environment variable VOICETRACK_APP_SECRET" in done.stderr
    assert emu.stats()["total"] == 0


@pytest.mark.slow  # a subprocess importing Airflow, ~3-6 s
def test_wrong_credentials_stop_the_probe_with_status_2_without_the_secret(emu: EmulatorProcess) -> None:
    wrong = "wrong-secret-never-print-me"
    done = command_line(
        emu,
        *("--host", emu.url, "--auth-url", emu.token_url, "--app-id", emu.client_id),
        env={"VOICETRACK_APP_SECRET": wrong},
    )
    assert done.returncode == 2
    assert "could not start" in done.stderr and "401" in done.stderr
    assert wrong not in done.stdout + done.stderr
