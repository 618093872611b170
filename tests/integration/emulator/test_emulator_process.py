"""The emulator as a process: start-up time, status progression, arrivals, the helper's API."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from airflow_voicetrack.constants import FINAL_STATUSES, INTERMEDIATE_STATUSES, STATUS_PROGRESSION
from airflow_voicetrack.emulator.process import EmulatorProcess


def token(emu: EmulatorProcess) -> dict[str, str]:
    response = httpx.post(
        emu.token_url, auth=(emu.client_id, emu.client_secret), data={"grant_type": "client_credentials"}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie, exited but not reaped, has)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_serves_100k_messages_and_reports_its_start_up_time() -> None:
    with EmulatorProcess(messages=100_000) as emu:
        # Reported, not asserted: on a shared machine the time says more about the load than about
        # the emulator (README gives the figures measured idle and loaded).
        print(f"\nemulator start-up with 100k messages: {emu.startup_seconds:.2f} s")
        assert emu.startup_seconds is not None and emu.startup_seconds > 0
        headers = token(emu)
        body = httpx.post(
            emu.url + "/voice/tracking", params={"size": 2000, "page": 49}, json=[], headers=headers
        )
        assert body.json()["totalElements"] == 100_000 and body.json()["numberOfElements"] == 2000


def test_stop_terminates_the_process_gracefully() -> None:
    emu = EmulatorProcess(messages=10).start()
    process, url = emu._proc, emu.url
    assert process is not None and alive(process.pid)
    emu.stop()
    assert emu.pid is None
    # Ended by SIGTERM within stop()'s timeout, not killed after it; and no longer serving.
    assert process.returncode in (0, -signal.SIGTERM)
    assert not alive(process.pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/_emulator/health", timeout=5)


def test_connection_json_and_uri_point_at_the_emulator(emu: EmulatorProcess) -> None:
    conn = json.loads(emu.connection_json(page_size=100))
    assert conn == {
        "conn_type": "voicetrack",
        "login": "demo-app-id",
        "password": "demo-app-secret",
        "host": emu.url,
        "extra": {"auth_url": emu.url + "/oauth/token", "page_size": 100},
    }
    uri = urlsplit(emu.connection_uri())
    assert uri.scheme == "voicetrack"


def test_connection_uri_parses_into_a_host_with_its_scheme(emu: EmulatorProcess) -> None:
    from airflow.models.connection import Connection

    conn = Connection(conn_id="voicetrack_default", uri=emu.connection_uri(page_size=100))
    assert (conn.conn_type, conn.host, conn.port) == ("voicetrack", emu.url, None)
    assert emu.url.startswith("http://127.0.0.1:")
    assert (conn.login, conn.password) == ("demo-app-id", "demo-app-secret")
    assert conn.extra_dejson == {"auth_url": emu.token_url, "page_size": 100}
    # The same form Airflow itself writes for such a connection (up to how it encodes the extras).
    same = Connection(
        conn_id="voicetrack_default",
        conn_type="voicetrack",
        host=emu.url,
        login=emu.client_id,
        password=emu.client_secret,
        extra=json.dumps({"auth_url": emu.token_url, "page_size": 100}),
    )
    assert same.get_uri().split("?")[0] == emu.connection_uri(page_size=100).split("?")[0]


def test_every_message_starts_queued_or_further_along() -> None:
    # An hour to settle: every status seen in the test's few seconds is still a stage of the first
    # quarter-hour of a call, so the first look sees Queued however late it comes.
    with EmulatorProcess(messages=300, settle_seconds=3600) as emu:
        emu.reset()
        statuses = Counter(m["status"]["status"] for m in emu.truth())
        assert statuses["Queued"] > 200
        assert set(statuses) <= INTERMEDIATE_STATUSES | FINAL_STATUSES | {"Unknown"}


def test_statuses_only_move_forward_and_all_become_final() -> None:
    final = len(STATUS_PROGRESSION)

    def stages(emu: EmulatorProcess) -> dict[str, int]:
        """messageId -> index of its status in STATUS_PROGRESSION, ``final`` once it is final."""
        rank = {status: i for i, status in enumerate(STATUS_PROGRESSION)}
        return {m["messageId"]: rank.get(m["status"]["status"], final) for m in emu.truth()}

    with EmulatorProcess(messages=300, settle_seconds=6) as emu:
        emu.reset()
        first = stages(emu)
        assert min(first.values()) < final, "some message is still in progress right after the reset"
        seen = [first]
        deadline = time.monotonic() + 60
        while min(seen[-1].values()) < final:
            assert time.monotonic() < deadline, "the messages did not all become final"
            time.sleep(0.5)
            seen.append(stages(emu))
        for before, after in itertools.pairwise(seen):
            assert all(after[mid] >= stage for mid, stage in before.items())
        assert {m["status"]["status"] for m in emu.truth()} <= FINAL_STATUSES | {"Unknown"}
        emu.reset()
        assert {m["status"]["status"] for m in emu.truth()} & INTERMEDIATE_STATUSES


def test_truth_ids_are_the_truths_message_ids(emu: EmulatorProcess) -> None:
    start, end = "2026-11-01T00:00:00Z", "2026-11-01T06:00:00Z"
    assert emu.truth_ids(start, end) == [m["messageId"] for m in emu.truth(start, end)] != []


def test_intermediate_messages_have_no_outcome_yet() -> None:
    with EmulatorProcess(messages=200, settle_seconds=60) as emu:
        pending = [m for m in emu.truth() if m["status"]["status"] in INTERMEDIATE_STATUSES]
        assert pending
        assert all(m["duration"] == 0 and m["recordings"] == [] and "answeredBy" not in m for m in pending)


def test_messages_keep_arriving_at_the_arrival_rate() -> None:
    with EmulatorProcess(messages=100, arrival_rate=20) as emu:
        headers = token(emu)
        began = time.time()
        emu.reset()  # arrivals (20 per second) count from here, however long the start-up took
        time.sleep(1.0)
        params: dict[str, Any] = {
            "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began - 5)),
            "size": 2000,
        }
        body = httpx.post(emu.url + "/voice/tracking", params=params, json=[], headers=headers).json()
        arrived = body["totalElements"]
        assert 10 <= arrived <= 20 * (time.time() - began) + 1
        assert {m["status"]["status"] for m in body["content"]} <= FINAL_STATUSES | {"Unknown"}
        assert len(emu.truth()) >= 100 + arrived
        reset_at = time.time()
        emu.reset()
        arrived_since = len(emu.truth()) - 100
        # Arrivals restart from the reset: at most 20 per second since.
        assert 0 <= arrived_since <= 20 * (time.time() - reset_at) + 1


def test_emulator_stops_when_the_program_that_started_it_is_killed() -> None:
    """A test run killed with SIGKILL (or a CI timeout) must not leave emulators behind."""

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
    assert alive(emulator_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 30
    while alive(emulator_pid):
        if time.monotonic() > deadline:
            os.kill(emulator_pid, signal.SIGKILL)
            raise AssertionError("the emulator outlived the process that started it")
        time.sleep(0.2)


def test_help_shows_the_demo_credentials_the_data_range_and_a_connection() -> None:
    from airflow_voicetrack.emulator.app import EmulatorConfig

    defaults = EmulatorConfig()
    result = subprocess.run(
        [sys.executable, "-m", "airflow_voicetrack.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = " ".join(result.stdout.split())
    assert f"application id {defaults.client_id!r}, secret {defaults.client_secret!r}" in text
    assert f"{defaults.messages} messages created from {defaults.start} to {defaults.end}" in text
    assert '"extra": {"auth_url": "http://127.0.0.1:8099/oauth/token"}' in text


def test_start_up_line_shows_the_credentials_and_the_data_range() -> None:
    with EmulatorProcess(messages=50, start="2026-11-03T00:00:00Z", end="2026-11-04T00:00:00Z") as emu:
        (line,) = [line for line in emu._output if line.startswith("VoiceTrack emulator serving on ")]
    assert line == (
        f"VoiceTrack emulator serving on {emu.url} (application id 'demo-app-id', secret "
        "'demo-app-secret'; 50 messages created 2026-11-03T00:00:00Z to 2026-11-04T00:00:00Z; "
        f"token URL {emu.url}/oauth/token)"
    )
