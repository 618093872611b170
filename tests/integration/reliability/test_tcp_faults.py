"""
Faults below HTTP: a TCP proxy (``support.tcp_proxy``) between the client and the emulator.

Each fault is crossed with the hook's search, the operator writing a local file and the deferred
trigger (``support.paths``). A fault that strikes some requests must end with exactly the
emulator's truth; a fault that strikes every request must end with a typed error within a bounded
time (the test's timeout), leaving nothing at the output path. Every cell proves its fault fired.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.emulator import END, FAST_RETRIES_100_PER_PAGE, START
from support.messages import by_id, duplicates
from support.paths import RUNNERS, Outcome, assert_sensor_summary
from support.tcp_proxy import FaultProxy, ProxyFault

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.exceptions import (
    VoiceTrackConnectionError,
    VoiceTrackError,
    VoiceTrackTransientError,
)

# Slow tier (`make test-all`): every TCP fault against every client, 1.5 min; the hook's own
# fault tests run in the fast tier.
pytestmark = pytest.mark.slow

#: Seconds one cell may take, all retries included; a hang fails the test here.
CELL_TIMEOUT = 180


@dataclass(frozen=True)
class TcpFault:
    """
    One row: a proxy fault, the connection extras it runs with, and for a fault on every request
    the typed error it must end with and a text its message holds.
    """

    name: str
    fault: ProxyFault
    extras: dict[str, Any] = field(default_factory=dict)
    error: type[VoiceTrackError] | None = None
    text: str = ""


#: Waits long enough for the proxy to listen again after a short refusal.
PATIENT = {"max_retry_wait": 0.5, "max_retries": 8}
#: A trickle (a byte every 20 ms) never trips the read timeout; only the total deadline ends it.
TRICKLE_DEADLINE = {"read_timeout": 5, "request_deadline": 1}
#: Few, quick retries: a fault on every request fails fast.
FEW = {"max_retries": 2, "read_timeout": 0.5}

SOME = [
    TcpFault("reset_mid_body", ProxyFault("reset", every=3)),
    TcpFault("body_short_of_content_length", ProxyFault("short", every=3)),
    TcpFault("accepts_never_answers", ProxyFault("silent", every=4), {"read_timeout": 0.5}),
    TcpFault("body_trickled_byte_by_byte", ProxyFault("trickle", every=3), TRICKLE_DEADLINE),
    TcpFault("refused_mid_search_then_back", ProxyFault("refuse", after=2, refuse_for=0.5), PATIENT),
]
EVERY = [
    TcpFault("reset_mid_body", ProxyFault("reset"), FEW, VoiceTrackTransientError, "protocol error"),
    TcpFault(
        "body_short_of_content_length",
        ProxyFault("short"),
        FEW,
        VoiceTrackTransientError,
        "protocol error",
    ),
    TcpFault("accepts_never_answers", ProxyFault("silent"), FEW, VoiceTrackTransientError, "timeout error"),
    TcpFault(
        "body_trickled_byte_by_byte",
        ProxyFault("trickle"),
        {**FEW, **TRICKLE_DEADLINE},
        VoiceTrackTransientError,
        "last failure: deadline error: no complete response within request_deadline=1 s",
    ),
    TcpFault(
        "refused_mid_search",
        ProxyFault("refuse", after=2),
        FEW,
        VoiceTrackConnectionError,
        "unreachable",
    ),
]
PATHS = ["hook", "operator_file", "deferrable_sensor"]


@pytest.fixture
def proxy(emu: EmulatorProcess) -> Iterator[FaultProxy]:
    """A fault proxy in front of the suite's emulator (relaying everything until a test says)."""
    with FaultProxy(emu.url) as proxy:
        yield proxy


def connect_through(
    proxy: FaultProxy, emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, extras: dict[str, Any]
) -> None:
    """Point ``voicetrack_default`` (API and token URL) at the proxy, with fast retries and ``extras``."""
    conn = json.loads(emu.connection_json(**{**FAST_RETRIES_100_PER_PAGE, **extras}))
    conn["host"] = proxy.url
    for key, value in conn["extra"].items():  # the token URL, whatever the extra is called
        if isinstance(value, str) and value.startswith(emu.url):
            conn["extra"][key] = proxy.url + value[len(emu.url) :]
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))


def run_cell(path: str, row: TcpFault, proxy: FaultProxy, request: pytest.FixtureRequest) -> Outcome:
    connect_through(proxy, request.getfixturevalue("emu"), request.getfixturevalue("monkeypatch"), row.extras)
    resources: dict[str, Any] = {"run_dag": request.getfixturevalue("run_dag")}
    if path == "operator_file":
        resources["tmp_path"] = request.getfixturevalue("tmp_path")
    with proxy.faulting(row.fault):
        return RUNNERS[path](**resources)


@pytest.mark.timeout(CELL_TIMEOUT)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("row", SOME, ids=lambda r: r.name)
def test_tcp_fault_on_some_requests_ends_with_exactly_the_truth(
    path: str, row: TcpFault, proxy: FaultProxy, emu: EmulatorProcess, request: pytest.FixtureRequest
) -> None:
    truth = emu.truth(START, END)
    outcome = run_cell(path, row, proxy, request)
    assert outcome.error is None, repr(outcome.error)
    assert proxy.faulted >= 1, "the fault never fired"
    if path == "deferrable_sensor":
        assert outcome.summary is not None
        assert_sensor_summary(outcome.summary, truth, truth)
        return
    assert outcome.messages is not None
    assert duplicates(outcome.messages) == []
    assert by_id(outcome.messages) == truth


@pytest.mark.timeout(CELL_TIMEOUT)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("row", EVERY, ids=lambda r: r.name)
def test_tcp_fault_on_every_request_fails_typed_and_leaves_nothing(
    path: str, row: TcpFault, proxy: FaultProxy, request: pytest.FixtureRequest
) -> None:
    outcome = run_cell(path, row, proxy, request)
    assert outcome.messages is None and outcome.summary is None
    assert outcome.error is not None
    assert row.text in str(outcome.error), str(outcome.error)
    # Retried as a transient failure, within the connection's caps (FEW: max_retries=2).
    assert "giving up after 2 retries" in str(outcome.error), str(outcome.error)
    if path == "deferrable_sensor":
        # A trigger's error crosses to the worker as text in its event; the sensor raises it.
        assert str(outcome.error).startswith("VoiceMessageStatusTrigger failed:")
        assert row.error is not None and row.error.__name__ in str(outcome.error)
    else:
        assert row.error is not None and isinstance(outcome.error, row.error), repr(outcome.error)
    assert outcome.left == []
    assert proxy.faulted >= 1, "the fault never fired"
