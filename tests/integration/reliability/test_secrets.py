"""
No credential ever leaves the hook: an end-to-end run at DEBUG level (operator to a file, operator to
XCom, deferrable sensor), failing runs (a wrong secret; 401 on every call), and connection tests that
fail and succeed; then every place a secret could land is scanned: task output and log records,
files under AIRFLOW_HOME's logs folder, XComs, rendered template fields and trigger rows in the
metadata DB, and the text of every exception.

Needles: the application secret (and a wrong one), the Basic header value ``base64(id:secret)``,
and every access token the emulator issued. The emulator does not list the tokens it issued, so
they are recorded as the hook reads them (the hook module's ``parse_token`` wrapped to keep each
value); as a backstop, no ``Bearer <value>`` appears anywhere either.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.dags import Run
from support.emulator import START

import airflow_voicetrack.protocol.auth as token_module
from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
from airflow_voicetrack.protocol import Token
from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor

CLIENT_ID = "reliability-app-4411"
SECRET = "Rel1ability-S3cret-9f4c2e-never-log-me"
WRONG_SECRET = "Wr0ng-S3cret-51be07-never-log-me-either"
DAY_END = "2026-11-02T00:00:00Z"
HOUR_END = "2026-11-01T02:00:00Z"
BEARER = re.compile(r"Bearer\s+(?!\*\*\*)[A-Za-z0-9_\-.~+/]{8,}")


def basic(secret: str) -> str:
    return base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()


@pytest.fixture(scope="module")
def secret_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(messages=600, seed=5, client_id=CLIENT_ID, client_secret=SECRET) as emu:
        yield emu


@pytest.fixture
def semu(secret_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    secret_emulator.reset()
    monkeypatch.setenv(
        "AIRFLOW_CONN_VOICETRACK_DEFAULT",
        secret_emulator.connection_json(max_retry_wait=0.05, max_retries=2, page_size=50),
    )
    return secret_emulator


@pytest.fixture
def issued_tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every access token the hooks (sync and async) read from the token endpoint during the test."""
    tokens: list[str] = []
    read = token_module.parse_token

    def recording(body: bytes, now: float) -> Token:
        token = read(body, now)
        tokens.append(token.value)
        return token

    # token_flow, which both hooks run, reads the token endpoint's answer with this function
    monkeypatch.setattr(token_module, "parse_token", recording)
    return tokens


@pytest.fixture
def debug_logging(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> pytest.LogCaptureFixture:
    monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    for name in ("airflow.task", "airflow_voicetrack", "urllib3", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def exception_texts(errors: dict[str, list[BaseException]]) -> list[str]:
    return [
        "".join(traceback.format_exception(error)) + repr(error) + repr(getattr(error, "__dict__", {}))
        for found in errors.values()
        for error in found
    ]


def metadata_rows(dag_ids: list[str]) -> list[str]:
    """XComs, rendered template fields and trigger rows of ``dag_ids``, as text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    rows: list[str] = []
    with create_session() as session:
        for xcom in session.scalars(select(XComModel).where(XComModel.dag_id.in_(dag_ids))):
            rows.append(
                f"xcom {xcom.dag_id}.{xcom.task_id}.{xcom.key}: {json.dumps(xcom.value, default=str)}"
            )
        rtifs = select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.dag_id.in_(dag_ids))
        for rtif in session.scalars(rtifs):
            rows.append(
                f"rendered {rtif.dag_id}.{rtif.task_id}: {json.dumps(rtif.rendered_fields, default=str)}"
            )
        for trigger in session.scalars(select(Trigger)):
            rows.append(f"trigger {trigger.classpath}: {json.dumps(trigger.kwargs, default=str)}")
    return rows


def log_files() -> list[str]:
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return [f"{p}: {p.read_text(errors='replace')}" for p in logs.rglob("*") if p.is_file()]


def leaks(haystack: list[str], needles: list[str]) -> list[str]:
    found = [
        f"{needle[:6]}... in {text[:200]!r}" for text in haystack for needle in needles if needle in text
    ]
    found += [
        f"{match.group()[:12]}... in {text[:200]!r}" for text in haystack for match in BEARER.finditer(text)
    ]
    return found


def test_no_secret_reaches_logs_xcom_rendered_fields_or_errors(
    semu: EmulatorProcess,
    run_dag: Callable[..., Run],
    issued_tokens: list[str],
    debug_logging: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    texts: list[str] = []
    rows: list[str] = []

    def run(build: Callable[[], None]) -> Run:
        result = run_dag(build)
        texts.extend(exception_texts(result.errors))
        # Each run of the DAG replaces the last one's rows: read them now.
        rows.extend(metadata_rows([result.dag_run.dag_id]))
        return result

    def tasks() -> None:
        VoiceTrackingOperator(
            task_id="to_file",
            date_start=START,
            date_end=DAY_END,
            output_path=f"file://{tmp_path}/{{{{ ds }}}}/",
        )
        VoiceTrackingOperator(task_id="to_xcom", date_start=START, date_end=HOUR_END)
        VoiceMessageStatusSensor(
            task_id="wait", date_start=START, date_end=DAY_END, deferrable=True, poke_interval=0.2, timeout=60
        )

    # 1. Everything works, at DEBUG level.
    good = run(tasks)
    assert good.states == {"to_file": "success", "to_xcom": "success", "wait": "success"}, good.errors
    ok, message = VoiceTrackHook().test_connection()
    assert ok, message
    texts.append(message)

    # 2. The API rejects every call: tokens are issued, then refused.
    semu.set_faults(unauthorized_rate=1.0)
    refused = run(tasks)
    assert refused.states == {"to_file": "failed", "to_xcom": "failed", "wait": "failed"}
    ok, message = VoiceTrackHook().test_connection()
    assert not ok and "Credentials rejected" in message
    texts.append(message)
    semu.clear_faults()

    # 3. A wrong application secret: the token endpoint refuses it.
    wrong = json.loads(semu.connection_json(max_retries=0))
    wrong["password"] = WRONG_SECRET
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(wrong))
    rejected = run(tasks)
    assert set(rejected.states.values()) == {"failed"}
    ok, message = VoiceTrackHook().test_connection()
    assert not ok and "Credentials rejected" in message
    texts.append(message)

    output = capfd.readouterr()
    records = [logging.Formatter().format(record) for record in debug_logging.records]
    haystack = [output.out, output.err, *records, *texts, *rows, *log_files()]

    # The scan reaches what it should: DEBUG records, the run's log lines, its XComs, its rendered fields.
    assert any(record.levelno == logging.DEBUG for record in debug_logging.records)
    assert "Extracted" in output.out + output.err + "".join(records)
    assert any(row.startswith("xcom") and "messageId" in row for row in rows)
    assert any(row.startswith("rendered") and "2026-11-03" in row for row in rows)
    assert len(texts) >= 6
    # Tokens were issued and used: at least one per run that reached the API, plus the refreshes.
    assert len(set(issued_tokens)) >= 4, issued_tokens

    needles = [SECRET, WRONG_SECRET, basic(SECRET), basic(WRONG_SECRET), *set(issued_tokens)]
    assert leaks(haystack, needles) == []
