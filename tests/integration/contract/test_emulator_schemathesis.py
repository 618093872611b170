"""
A bounded schemathesis run against the emulator (a real server on 127.0.0.1): requests generated from
the contract (``airflow_voicetrack/contract``) get no 5xx and no response outside the contract.

Bounded: at most :data:`MAX_EXAMPLES` generated requests per operation in the fuzzing phase (plus
schemathesis' deterministic coverage cases: about 590 requests in all), derandomized (the same requests
every run, so a failure reproduces); about 10 s for the five operations on a quiet machine.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from airflow_voicetrack.contract import load_contract
from airflow_voicetrack.emulator.process import EmulatorProcess

MAX_EXAMPLES = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(load_contract())


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[EmulatorProcess, str]]:
    """An emulator with 2,000 messages, and a token for it."""
    with EmulatorProcess(messages=2_000, settle_seconds=0) as emu:
        basic = base64.b64encode(f"{emu.client_id}:{emu.client_secret}".encode()).decode()
        response = requests.post(
            emu.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
            timeout=10,
        )
        response.raise_for_status()
        yield emu, response.json()["access_token"]


@pytest.mark.timeout(120)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_emulator_answers_generated_requests_within_the_contract(
    case: schemathesis.Case, server: tuple[EmulatorProcess, str]
) -> None:
    emu, access_token = server
    if case.path == "/oauth/token":
        basic = base64.b64encode(f"{emu.client_id}:{emu.client_secret}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
    else:
        headers = {"Authorization": f"Bearer {access_token}"}
    case.call_and_validate(base_url=emu.url, headers=headers, checks=CHECKS)
