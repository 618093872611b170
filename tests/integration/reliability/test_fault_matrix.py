"""
The fault matrix: every fault the emulator can inject, crossed with every way data leaves the API.

Paths (``support.paths``): the hook's search, the operator writing a local file, the operator
writing to S3 (moto's server over HTTP) and the deferrable sensor. A transient fault must end with exactly the
emulator's truth: nothing lost, nothing twice (records added while paging: everything that existed
before, nothing that did not exist after). A permanent fault must end with a typed error that says
what is wrong, and nothing at the output path. Every cell also proves its fault fired. The same
table is in ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.emulator import END, FAST_RETRIES_100_PER_PAGE, START, api_requests
from support.messages import by_id, duplicates
from support.paths import RUNNERS, Outcome, assert_sensor_summary

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.exceptions import (
    VoiceTrackAuthError,
    VoiceTrackError,
    VoiceTrackResponseError,
    VoiceTrackTransientError,
)

# Slow tier (`make test-all`): every fault against every client, 1.5 min; the hook's own fault
# tests run in the fast tier.
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Fault:
    """
    One row of the matrix.

    :param name: the test id.
    :param faults: emulator fault settings (``PUT /_emulator/faults``).
    :param extras: connection extras on top of :data:`FAST_RETRIES_100_PER_PAGE`.
    :param error: for a permanent fault, the typed error the hook and operator raise.
    :param text: for a permanent fault, text its message (and the sensor's) must hold.
    :param proof: how the test checks the fault fired: ``retried`` (more searches than a clean run),
        ``tokens`` (more than one token issued), ``grew`` (the data set grew), ``rejected_once`` (one
        token request, refused, not retried) or ``none``.
    :param recover_after: clear the faults this many seconds after the first request.
    :param wrong_secret: connect with a wrong application secret.
    """

    name: str
    faults: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    error: type[VoiceTrackError] | None = None
    text: str = ""
    proof: str = "retried"
    recover_after: float | None = None
    wrong_secret: bool = False


#: One concurrent page at a time: the emulator's 401/403 rates hit every n-th call *globally*, so with
#: concurrent pages one call could meet two in a row, which the hook (rightly) reads as a real rejection.
ONE_AT_A_TIME = {"max_concurrency": 1}
#: Permanent faults: few retries, so each cell fails fast.
FEW_RETRIES = {"max_retries": 2}

TRANSIENT = [
    Fault("no_fault", proof="none"),
    Fault("token_expires_mid_run", {"token_lifetime": 1, "latency_ms": 150}, proof="tokens"),
    Fault("401_storm_then_recovery", {"unauthorized_rate": 0.5}, ONE_AT_A_TIME, proof="tokens"),
    Fault("one_403_per_call", {"forbidden_rate": 0.25}, ONE_AT_A_TIME, proof="tokens"),
    # Calls 4, 9, 14, ... get a 403 and their repeats (calls 5, 10, 15, ...) a 401: one request
    # refused one way then the other, as in a credential rotation; it needs a second token refresh.
    Fault(
        "403_then_401_on_one_request",
        {"forbidden_rate": 0.25, "unauthorized_rate": 0.2},
        ONE_AT_A_TIME,
        proof="tokens",
    ),
    Fault("429_retry_after_seconds", {"rate_limit_rate": 0.25, "retry_after_mode": "seconds"}),
    Fault("429_retry_after_http_date", {"rate_limit_rate": 0.25, "retry_after_mode": "date"}),
    Fault("429_without_retry_after", {"rate_limit_rate": 0.25, "retry_after_mode": "none"}),
    Fault("5xx_bursts", {"error_burst": 3, "error_every": 10}),
    Fault("dropped_connections", {"drop_rate": 0.2}),
    Fault("read_timeouts_then_recovery", {"latency_ms": 600}, {"read_timeout": 0.25}, recover_after=1.0),
    Fault("malformed_json", {"malformed_rate": 0.2}),
    Fault("truncated_bodies", {"truncated_rate": 0.2}),
    Fault("contradicting_envelope", {"inconsistent_rate": 0.2}),
    Fault("records_added_while_paging", {"insert_during_paging": 5}, proof="grew"),
]
PERMANENT = [
    Fault(
        "wrong_credentials",
        wrong_secret=True,
        error=VoiceTrackAuthError,
        text="Bad credentials",
        proof="rejected_once",
    ),
    Fault(
        "401_on_every_call",
        {"unauthorized_rate": 1.0},
        error=VoiceTrackAuthError,
        text="authentication failed (credentials)",
        proof="tokens",
    ),
    Fault(
        "403_on_every_call",
        {"forbidden_rate": 1.0},
        error=VoiceTrackAuthError,
        text="authentication failed (permissions)",
        proof="tokens",
    ),
    Fault(
        "429_forever",
        {"rate_limit_rate": 1.0},
        FEW_RETRIES,
        error=VoiceTrackTransientError,
        text="last failure: HTTP 429",
    ),
    Fault(
        "5xx_forever",
        {"error_burst": 100_000, "error_status": 503},
        FEW_RETRIES,
        error=VoiceTrackTransientError,
        text="last failure: HTTP 503",
    ),
    Fault(
        "connections_always_dropped",
        {"drop_rate": 1.0},
        FEW_RETRIES,
        error=VoiceTrackTransientError,
        text="last failure: protocol error",
    ),
    Fault(
        "read_timeout_on_every_call",
        {"latency_ms": 500},
        {**FEW_RETRIES, "read_timeout": 0.2},
        error=VoiceTrackTransientError,
        text="last failure: timeout error",
        proof="none",
    ),
    Fault(
        "always_malformed_json",
        {"malformed_rate": 1.0},
        FEW_RETRIES,
        error=VoiceTrackResponseError,
        text="not valid JSON",
    ),
    Fault(
        "always_truncated",
        {"truncated_rate": 1.0},
        FEW_RETRIES,
        error=VoiceTrackTransientError,
        text="last failure: protocol error",
    ),
    Fault(
        "always_contradicting_envelope",
        {"inconsistent_rate": 1.0},
        FEW_RETRIES,
        error=VoiceTrackResponseError,
        text="contradicting page envelope",
    ),
]
PATHS = ["hook", "operator_file", "operator_s3", "deferrable_sensor"]


# -- set-up and checks ----------------------------------------------------------------------------


@contextmanager
def clear_faults_later(emu: EmulatorProcess, seconds: float | None) -> Iterator[None]:
    """Clear the emulator's faults ``seconds`` after it has seen its first request (if set)."""
    if seconds is None:
        yield
        return
    stop = threading.Event()

    def clear() -> None:
        while api_requests(emu) == 0:
            if stop.wait(0.02):
                return
        if not stop.wait(seconds):
            emu.clear_faults()

    thread = threading.Thread(target=clear, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def connect(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    """Point ``voicetrack_default`` at the emulator with the fault's extras (and secret)."""
    conn = json.loads(emu.connection_json(**{**FAST_RETRIES_100_PER_PAGE, **fault.extras}))
    if fault.wrong_secret:
        conn["password"] = "not-the-application-secret"
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))


def run_cell(path: str, fault: Fault, request: pytest.FixtureRequest) -> Outcome:
    emu: EmulatorProcess = request.getfixturevalue("emu")
    connect(emu, request.getfixturevalue("monkeypatch"), fault)
    resources: dict[str, Any] = {"run_dag": request.getfixturevalue("run_dag")}
    if path == "operator_file":
        resources["tmp_path"] = request.getfixturevalue("tmp_path")
    if path == "operator_s3":
        resources["s3"] = request.getfixturevalue("s3")
    if fault.faults:
        emu.set_faults(**fault.faults)
    with clear_faults_later(emu, fault.recover_after):
        return RUNNERS[path](**resources)


def assert_fault_fired(fault: Fault, emu: EmulatorProcess, outcome: Outcome, before: int) -> None:
    stats = emu.stats()
    if fault.proof == "tokens":
        assert stats["tokens_issued"] >= 2, stats
    elif fault.proof == "rejected_once":
        # Wrong credentials are not retried: one token request, no token, no API call.
        assert (stats["requests"], stats["tokens_issued"]) == ({"POST /oauth/token": 1}, 0), stats
    elif fault.proof == "grew":
        assert len(emu.truth(START, END)) > before
    elif fault.proof == "retried" and outcome.error is None:
        # Every request beyond one per page and one per token was a retry.
        assert outcome.pages is not None
        assert stats["total"] > outcome.pages + stats["tokens_issued"], stats
    elif fault.proof == "retried":
        # A permanent failure after retries: the first call was repeated.
        assert stats["total"] >= 3, stats


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault", TRANSIENT, ids=lambda f: f.name)
def test_transient_fault_ends_with_exactly_the_truth(
    path: str, fault: Fault, request: pytest.FixtureRequest, emu: EmulatorProcess
) -> None:
    before = emu.truth(START, END)
    outcome = run_cell(path, fault, request)
    after = emu.truth(START, END)
    assert outcome.error is None, repr(outcome.error)
    assert_fault_fired(fault, emu, outcome, len(before))
    if path == "deferrable_sensor":
        assert outcome.summary is not None
        assert_sensor_summary(outcome.summary, before, after)
        return
    assert outcome.messages is not None
    assert duplicates(outcome.messages) == []
    if fault.proof == "grew":
        got = {m["messageId"] for m in outcome.messages}
        assert {m["messageId"] for m in before} <= got
        assert by_id(outcome.messages) == [m for m in after if m["messageId"] in got]
    else:
        assert before == after
        assert by_id(outcome.messages) == after


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault", PERMANENT, ids=lambda f: f.name)
def test_permanent_fault_fails_typed_and_leaves_no_object(
    path: str, fault: Fault, request: pytest.FixtureRequest, emu: EmulatorProcess
) -> None:
    outcome = run_cell(path, fault, request)
    assert outcome.messages is None and outcome.summary is None
    assert outcome.error is not None
    assert fault.text in str(outcome.error)
    if path == "deferrable_sensor":
        # A trigger's error crosses to the worker as text in its event; the sensor raises it.
        assert str(outcome.error).startswith("VoiceMessageStatusTrigger failed:")
    else:
        assert fault.error is not None
        assert isinstance(outcome.error, fault.error), repr(outcome.error)
    assert outcome.left == []
    assert_fault_fired(fault, emu, outcome, 0)
