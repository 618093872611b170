"""
Every request the sync hook, the async hook, the operator, the sensor and the trigger send, and every
response the emulator gives them, checked against the OpenAPI contract (``airflow_voicetrack/contract``).

The requests are taken from the emulator's request log (``EmulatorProcess(request_log=N)``): what
went over the socket, not what the client meant to send. Each test drives one component against a
real emulator, then validates every logged exchange with openapi-core (plus: no query parameter the
operation does not declare, since OpenAPI lets unknown ones pass and a wrong name is the failure
that matters most) and checks that the operations it is expected to call were called.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk._shared.module_loading import import_string
from airflow.sdk.exceptions import TaskDeferred
from support.contract import operation_of, request_problems, response_problems
from support.emulator import END, FAST_RETRIES, START

from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook, VoiceTrackHook
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor
from airflow_voicetrack.triggers.voicetrack import VoiceMessageStatusTrigger

DAY = ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")
WEEK = (START, END)
TOKEN = "POST /oauth/token"
SEARCH = "POST /voice/tracking"
MESSAGE = "GET /voice/tracking/{messageId}"
CAMPAIGN = "GET /voice/tracking/campaign/{campaignTrackingId}"
CONVERSATION = "GET /voice/tracking/conversation/{conversationTrackingId}"
LOG_SIZE = 5_000
FILTERS = [
    {"fieldName": "country", "searchTerm": "GR"},
    {"fieldName": "recipient", "searchOperator": "starts_with", "searchTerm": "30"},
]


@pytest.fixture(scope="module")
def logging_emulator() -> Iterator[EmulatorProcess]:
    """2,000 settled messages over the default week; the last 5,000 exchanges logged."""
    with EmulatorProcess(messages=2_000, settle_seconds=0, request_log=LOG_SIZE) as emu:
        yield emu


@pytest.fixture
def emu(logging_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The emulator as ``voicetrack_default`` (50-message pages: every search has several), log empty."""
    logging_emulator.reset()
    conn = logging_emulator.connection_json(**FAST_RETRIES, page_size=50)
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", conn)
    return logging_emulator


def operations(log: list[dict[str, Any]]) -> set[str]:
    found = (operation_of(e["method"], e["path"]) for e in log)
    return {f"{e['method']} {op[0]}" for e, op in zip(log, found, strict=True) if op}


def assert_log_holds_the_contract(emu: EmulatorProcess, expected: set[str]) -> list[dict[str, Any]]:
    """Every logged request and response is valid against the contract; ``expected`` were all called."""
    log = emu.requests()
    assert 0 < len(log) < LOG_SIZE, "the component sent nothing, or more than the log keeps"
    assert expected <= operations(log), f"operations not called: {expected - operations(log)}"
    problems = [p for entry in log for p in request_problems(entry)]
    assert problems == [], "\n".join(problems[:20])
    problems = [p for entry in log for p in response_problems(entry)]
    assert problems == [], "\n".join(problems[:20])
    return log


def campaign_tracking_id() -> str:
    return CAMPAIGNS[0].tracking_id


# -- the sync hook -------------------------------------------------------------------------------


def test_sync_hook_requests_and_responses_hold_the_contract(emu: EmulatorProcess) -> None:
    hook = VoiceTrackHook()
    found = list(hook.search_messages(*DAY, filters=FILTERS, sort="status.date,desc", tagged=True))
    assert found
    assert list(hook.search_messages(*DAY, campaign_tracking_id=campaign_tracking_id()))
    assert hook.count_messages(*DAY, tagged=False) > 0
    first = found[0]
    assert hook.get_message(first["messageId"]) == first
    assert (
        hook.get_messages([first["messageId"], "no-such-message"], missing_ok=True)["no-such-message"] is None
    )
    assert list(hook.get_conversation(first["conversationTrackingId"]))
    assert list(hook.get_campaign_messages(campaign_tracking_id(), sort="messageId"))
    assert hook.test_connection()[0]
    log = assert_log_holds_the_contract(emu, {TOKEN, SEARCH, MESSAGE, CAMPAIGN, CONVERSATION})
    statuses = {e["status"] for e in log}
    assert 404 in statuses  # the unknown message: an error body in the contract too


# -- the async hook ------------------------------------------------------------------------------


def test_async_hook_requests_and_responses_hold_the_contract(emu: EmulatorProcess) -> None:
    async def drive() -> None:
        hook = VoiceTrackAsyncHook()
        try:
            found = [m async for m in hook.search_messages(*DAY, filters=FILTERS, sort="to,asc")]
            assert found
            assert [
                m
                async for m in hook.search_messages(
                    None, None, campaign_tracking_id=campaign_tracking_id(), tagged=True
                )
            ]
            assert await hook.count_messages(*DAY, filters=FILTERS) == len(found)
            assert (await hook.get_message(found[0]["messageId"]))["messageId"] == found[0]["messageId"]
            assert await hook.get_messages([found[0]["messageId"], "no-such-message"], missing_ok=True)
        finally:
            await hook.close()

    asyncio.run(drive())
    assert_log_holds_the_contract(emu, {TOKEN, SEARCH, MESSAGE})


# -- the operator, through dag.test() ------------------------------------------------------------


def test_operator_requests_and_responses_hold_the_contract(
    emu: EmulatorProcess, run_dag: Any, tmp_path: Path
) -> None:
    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract",
            date_start=DAY[0],
            date_end=DAY[1],
            filters=FILTERS[:1],
            campaign_tracking_id=campaign_tracking_id(),
            sort="status.date",
            output_path=f"file://{tmp_path}/day.jsonl",
        )
        VoiceTrackingOperator(task_id="extract_untagged", tagged=False, date_start=DAY[0], date_end=DAY[1])

    run = run_dag(build)
    assert run.states == {"extract": "success", "extract_untagged": "success"}
    assert run.results["extract"]["records"] > 0
    assert_log_holds_the_contract(emu, {TOKEN, SEARCH})


# -- the sensor and its trigger -------------------------------------------------------------------


def test_sensor_requests_and_responses_hold_the_contract(emu: EmulatorProcess, run_dag: Any) -> None:
    ids = [m["messageId"] for m in emu.truth(*DAY)[:3]]

    def build() -> None:
        VoiceMessageStatusSensor(
            task_id="wait_search",
            date_start=DAY[0],
            date_end=DAY[1],
            campaign_tracking_id=campaign_tracking_id(),
            filters=FILTERS[:1],
            failure_statuses={"Failed"},
            failure_threshold=0.99,
            poke_interval=0.2,
            timeout=30,
        )
        VoiceMessageStatusSensor(task_id="wait_ids", message_ids=ids, poke_interval=0.2, timeout=30)

    run = run_dag(build)
    assert run.states == {"wait_search": "success", "wait_ids": "success"}
    assert_log_holds_the_contract(emu, {TOKEN, SEARCH, MESSAGE})


def first_event(**sensor_kwargs: Any) -> dict[str, Any]:
    """The first event of the trigger a deferrable sensor hands over, rebuilt from its serialization."""
    sensor = VoiceMessageStatusSensor(task_id="wait", deferrable=True, poke_interval=0.2, **sensor_kwargs)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})  # type: ignore[arg-type]
    classpath, kwargs = info.value.trigger.serialize()
    trigger: VoiceMessageStatusTrigger = import_string(classpath)(**kwargs)

    async def run() -> dict[str, Any]:
        return (await anext(trigger.run())).payload

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


def test_trigger_requests_and_responses_hold_the_contract(emu: EmulatorProcess) -> None:
    event = first_event(
        date_start=DAY[0], date_end=DAY[1], campaign_tracking_id=campaign_tracking_id(), filters=FILTERS[:1]
    )
    assert event["status"] == "success"
    ids = [m["messageId"] for m in emu.truth(*DAY)[:3]]
    assert first_event(message_ids=ids)["status"] == "success"
    assert_log_holds_the_contract(emu, {TOKEN, SEARCH, MESSAGE})


# -- responses under faults, and error statuses ---------------------------------------------------


def test_responses_to_a_search_under_faults_hold_the_contract(emu: EmulatorProcess) -> None:
    emu.set_faults(
        rate_limit_rate=0.2, forbidden_rate=0.1, unauthorized_rate=0.1, error_burst=1, error_every=4
    )
    found = list(VoiceTrackHook().search_messages(*WEEK))  # 2,000 messages: 40 pages and more
    assert len(found) == len(emu.truth(*WEEK))
    log = assert_log_holds_the_contract(emu, {TOKEN, SEARCH})
    # 429, 401, 403 and every 5xx the bursts rotate through (500 JSON, 502/503/504 HTML) were answered
    assert {401, 403, 429, 500, 502, 503, 504} <= {e["status"] for e in log}


def call(emu: EmulatorProcess, method: str, path: str, *, body: bytes | None = None, **headers: str) -> int:
    request = urllib.request.Request(emu.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def token(emu: EmulatorProcess) -> str:
    basic = base64.b64encode(f"{emu.client_id}:{emu.client_secret}".encode()).decode()
    request = urllib.request.Request(
        emu.token_url,
        data=b"grant_type=client_credentials",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


def test_error_responses_of_every_operation_hold_the_contract(emu: EmulatorProcess) -> None:
    bearer = {"Authorization": f"Bearer {token(emu)}", "Content-Type": "application/json"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = {**form, "Authorization": "Basic " + base64.b64encode(b"demo-app-id:wrong").decode()}
    right = base64.b64encode(f"{emu.client_id}:{emu.client_secret}".encode()).decode()
    calls = [
        (
            "POST",
            "/oauth/token",
            b"grant_type=client_credentials",
            wrong,
            401,
        ),
        ("POST", "/oauth/token", b"grant_type=password", {**form, "Authorization": f"Basic {right}"}, 400),
        ("POST", "/voice/tracking?size=5000", b"[]", bearer, 400),
        ("POST", "/voice/tracking", b'[{"fieldName": "nope", "searchTerm": "x"}]', bearer, 400),
        ("POST", "/voice/tracking", b"[]", {"Content-Type": "application/json"}, 401),
        ("POST", "/voice/tracking?page=1&size=7", b"[]", bearer, 200),
        ("GET", "/voice/tracking/no-such-message", None, bearer, 404),
        ("GET", "/voice/tracking/no-such-message", None, {"Authorization": "Bearer expired"}, 401),
        ("GET", "/voice/tracking/campaign/x?size=0", None, bearer, 400),
        ("GET", "/voice/tracking/campaign/x?sort=nope", None, bearer, 400),
        ("GET", "/voice/tracking/campaign/unknown", None, bearer, 200),
        ("GET", "/voice/tracking/conversation/x?page=-1", None, bearer, 400),
        ("GET", "/voice/tracking/conversation/unknown", None, {}, 401),
    ]
    emu.reset_stats()
    for method, path, body, headers, status in calls:
        assert call(emu, method, path, body=body, **headers) == status, (method, path)
    log = emu.requests()
    assert [e["status"] for e in log] == [status for *_, status in calls]
    problems = [p for entry in log for p in response_problems(entry)]
    assert problems == [], "\n".join(problems)


# -- the log itself ------------------------------------------------------------------------------


def test_the_request_log_holds_no_secret(emu: EmulatorProcess) -> None:
    access_token = token(emu)
    assert call(emu, "GET", "/voice/tracking/x", Authorization=f"Bearer {access_token}") == 404
    assert list(VoiceTrackHook().search_messages(*DAY, limit=5))
    log = emu.requests()
    text = json.dumps(log)
    basic = base64.b64encode(f"{emu.client_id}:{emu.client_secret}".encode()).decode()
    for secret in (emu.client_secret, basic, access_token):
        assert secret not in text
    assert all("authorization" not in {h.lower() for h in e["headers"]} for e in log)
    assert {e["auth_scheme"] for e in log} == {"Basic", "Bearer"}
    tokens = [json.loads(e["response_body"]) for e in log if e["path"] == "/oauth/token"]
    assert len(tokens) == 2 and all(t["access_token"] == "<redacted>" for t in tokens)


def test_the_request_log_is_emptied_by_a_stats_reset_and_bounded() -> None:
    with EmulatorProcess(messages=10, request_log=3) as emu:
        bearer = f"Bearer {token(emu)}"
        for i in range(5):
            call(emu, "GET", f"/voice/tracking/m{i}", Authorization=bearer)
        assert [e["path"] for e in emu.requests()] == [f"/voice/tracking/m{i}" for i in (2, 3, 4)]
        emu.reset_stats()
        assert emu.requests() == []
    with EmulatorProcess(messages=10) as emu, pytest.raises(RuntimeError, match="request_log=N"):
        emu.requests()


def test_an_unknown_path_or_method_gets_the_api_error_body(emu: EmulatorProcess) -> None:
    # A messageId holding an encoded "/" reaches no route: the answer is still the API's error body.
    bearer = f"Bearer {token(emu)}"
    for method, path, status in [
        ("GET", "/voice/tracking/a%2Fb", 404),
        ("GET", "/voice/nothing", 404),
        ("DELETE", "/voice/tracking", 405),
    ]:
        request = urllib.request.Request(emu.url + path, method=method, headers={"Authorization": bearer})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == status
        assert info.value.headers["content-type"] == "application/json"
        body = json.loads(info.value.read())
        assert body["code"] == f"{status}000000" and path.split("%")[0] in body["developerMessage"]
