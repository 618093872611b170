"""The emulator as a process: start-up time, status progression, arrivals, the helper's API."""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from airflow_voicetrack.constants import FINAL_STATUSES, INTERMEDIATE_STATUSES, STATUS_PROGRESSION
from airflow_voicetrack.emulator.process import EmulatorProcess


def token(emu: EmulatorProcess) -> dict[str, str]:
    response = httpx.post(
        emu.token_url, auth=(emu.client_id, emu.client_secret), data={"grant_type": "client_credentials"}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_starts_fast_with_100k_messages() -> None:
    with EmulatorProcess(messages=100_000) as emu:
        print(f"\nemulator start-up with 100k messages: {emu.startup_seconds:.2f} s")
        assert emu.startup_seconds is not None and emu.startup_seconds < 5
        headers = token(emu)
        body = httpx.post(
            emu.url + "/voice/tracking", params={"size": 2000, "page": 49}, json=[], headers=headers
        )
        assert body.json()["totalElements"] == 100_000 and body.json()["numberOfElements"] == 2000


def test_stop_terminates_the_process() -> None:
    emu = EmulatorProcess(messages=10).start()
    pid = emu.pid
    assert pid is not None
    emu.stop()
    assert emu.pid is None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        # A reaped child no longer exists; os.kill must have failed by now.
        raise AssertionError("emulator process still running")


def test_connection_json_and_uri_point_at_the_emulator(emu: EmulatorProcess) -> None:
    conn = json.loads(emu.connection_json(page_size=100))
    assert conn == {
        "conn_type": "voicetrack",
        "login": "demo-app-id",
        "password": "demo-app-secret",
        "host": emu.url,
        "extra": {"token_url": emu.url + "/oauth/token", "page_size": 100},
    }
    uri = urlsplit(emu.connection_uri())
    assert uri.scheme == "voicetrack"


def test_connection_uri_parses_into_a_host_with_its_scheme(emu: EmulatorProcess) -> None:
    from airflow.models.connection import Connection

    conn = Connection(conn_id="voicetrack_default", uri=emu.connection_uri(page_size=100))
    assert (conn.conn_type, conn.host, conn.port) == ("voicetrack", emu.url, None)
    assert emu.url.startswith("http://127.0.0.1:")
    assert (conn.login, conn.password) == ("demo-app-id", "demo-app-secret")
    assert conn.extra_dejson == {"token_url": emu.token_url, "page_size": 100}
    # The same form Airflow itself writes for such a connection (up to how it encodes the extras).
    same = Connection(
        conn_id="voicetrack_default",
        conn_type="voicetrack",
        host=emu.url,
        login=emu.client_id,
        password=emu.client_secret,
        extra=json.dumps({"token_url": emu.token_url, "page_size": 100}),
    )
    assert same.get_uri().split("?")[0] == emu.connection_uri(page_size=100).split("?")[0]


def test_statuses_progress_to_final_within_settle_seconds() -> None:
    with EmulatorProcess(messages=300, settle_seconds=3) as emu:
        early = {m["status"]["status"] for m in emu.truth()}
        assert early & INTERMEDIATE_STATUSES
        assert "Queued" in early
        first = {m["messageId"]: m["status"]["status"] for m in emu.truth()}
        time.sleep(1.5)
        middle = {m["messageId"]: m["status"]["status"] for m in emu.truth()}
        order = [*STATUS_PROGRESSION, "final"]
        rank = {s: i for i, s in enumerate(order)}
        for mid, status in middle.items():
            before = rank.get(first[mid], len(order) - 1)
            assert rank.get(status, len(order) - 1) >= before
        time.sleep(1.7)
        settled = emu.truth()
        assert {m["status"]["status"] for m in settled} <= FINAL_STATUSES | {"Unknown"}
        emu.reset()
        assert {m["status"]["status"] for m in emu.truth()} & INTERMEDIATE_STATUSES


def test_intermediate_messages_have_no_outcome_yet() -> None:
    with EmulatorProcess(messages=200, settle_seconds=60) as emu:
        pending = [m for m in emu.truth() if m["status"]["status"] in INTERMEDIATE_STATUSES]
        assert pending
        assert all(m["duration"] == 0 and m["recordings"] == [] and "answeredBy" not in m for m in pending)


def test_messages_keep_arriving_at_the_arrival_rate() -> None:
    with EmulatorProcess(messages=100, arrival_rate=20) as emu:
        began = time.time()
        headers = token(emu)
        time.sleep(1.0)
        params: dict[str, Any] = {
            "dateStart": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began - 5)),
            "size": 2000,
        }
        body = httpx.post(emu.url + "/voice/tracking", params=params, json=[], headers=headers).json()
        arrived = body["totalElements"]
        assert 10 <= arrived <= 20 * (time.time() - began + 2)
        assert {m["status"]["status"] for m in body["content"]} <= FINAL_STATUSES | {"Unknown"}
        assert len(emu.truth()) >= 100 + arrived
        emu.reset()
        assert len(emu.truth()) < 100 + 10


def test_emulator_stops_when_the_program_that_started_it_is_killed() -> None:
    """A test run killed with SIGKILL (or a CI timeout) must not leave emulators behind."""
    import signal
    import subprocess
    import sys

    starter = (
        "from airflow_voicetrack.emulator.process import EmulatorProcess\n"
        "import time\n"
        "emu = EmulatorProcess(messages=100).start()\n"
        "print(emu._proc.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    emulator_pid = int(parent.stdout.readline())
    os.kill(emulator_pid, 0)  # serving
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(emulator_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(emulator_pid, signal.SIGKILL)
    raise AssertionError("the emulator outlived the process that started it")
